//! `warden dev`: the product on embedded defaults, for a first look and for
//! local development. Everything lives under one data directory.

pub mod sample;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};
use crate::identity::IdentityConfig;

/// Default address of the dev issuer (discovery, JWKS) that `warden dev`
/// starts beside the gateway.
pub const ISSUER_LISTEN: &str = "127.0.0.1:8788";

/// The audit log's origin in dev mode.
pub const AUDIT_ORIGIN: &str = "warden-dev/audit";

/// Creates the audit keys of `warden dev` in `data_dir` unless they exist.
pub fn ensure_audit_keys(data_dir: &Path) -> Result<(), crate::audit::AuditError> {
    let files = crate::audit::KeyFiles::in_dir(data_dir);
    if files.signing_key.exists() {
        return Ok(());
    }
    crate::audit::keygen(AUDIT_ORIGIN, &files, !files.hmac_key.exists()).map(drop)
}

/// The baseline policy files built into the binary (`policies/*.cedar`).
pub const BASELINE_POLICIES: &[(&str, &str)] = &[
    ("roles.cedar", include_str!("../../policies/roles.cedar")),
    (
        "guardrails.cedar",
        include_str!("../../policies/guardrails.cedar"),
    ),
];

/// The policy directory of `warden dev`: `DIR/policies`, created with the
/// baseline policies on first use and left alone afterwards (edit it and
/// the running gateway reloads it).
pub fn ensure_policies(data_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = data_dir.join("policies");
    if !dir.exists() {
        let staging = data_dir.join(".policies.new");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)?;
        for (name, text) in BASELINE_POLICIES {
            std::fs::write(staging.join(name), text)?;
        }
        std::fs::rename(&staging, &dir)?;
    }
    Ok(dir)
}

/// The embedded configuration of `warden dev`: the gateway on `listen`, in
/// front of the sample upstream (this same executable started as `warden dev
/// sample-upstream`), trusting `identity` (the dev issuer's), deciding with
/// the policies in `policies`.
pub fn config(
    listen: SocketAddr,
    executable: &Path,
    identity: IdentityConfig,
    data_dir: &Path,
    policies: &Path,
) -> Result<Config, ConfigError> {
    // The identity table is set from the typed value below; the text only
    // carries a valid stand-in so that the rest is validated as usual.
    let text = format!(
        r#"
[server]
listen = "{listen}"

[identity]
allow_anonymous = true

[store]
path = "warden.db"

[audit]
signing_key = "audit-signing.key"
hmac_key = "audit-hmac.key"

[policy]
dir = "policies"

[upstreams.sample]
command = {executable:?}
args = ["dev", "sample-upstream"]
"#,
        executable = executable.display().to_string(),
    );
    let source = Path::new("<warden dev defaults>");
    let mut config = Config::parse(&text, source)?;
    config.store.path = data_dir.join("warden.db");
    config.audit.resolve(data_dir);
    config.policy.dir = policies.to_owned();
    identity
        .validate()
        .map_err(|message| ConfigError::Invalid {
            path: source.to_owned(),
            message,
        })?;
    config.identity = identity;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_are_valid() {
        let issuer =
            crate::identity::dev::DevIssuer::load_or_create(tempfile::tempdir().unwrap().path())
                .unwrap();
        let identity = issuer.identity_config("http://127.0.0.1:8788");
        let config = config(
            "127.0.0.1:8787".parse().unwrap(),
            Path::new("/bin/warden"),
            identity,
            Path::new("/tmp/dev"),
            Path::new("/tmp/dev/policies"),
        )
        .unwrap();
        assert_eq!(config.policy.dir, Path::new("/tmp/dev/policies"));
        assert_eq!(config.store.path, Path::new("/tmp/dev/warden.db"));
        assert_eq!(
            config.audit.signing_key,
            Path::new("/tmp/dev/audit-signing.key")
        );
        assert!(!config.identity.allow_anonymous);
        assert_eq!(config.identity.authority, "http://127.0.0.1:8788");
        assert_eq!(config.upstreams.len(), 1);
        assert_eq!(config.upstreams["sample"].args, ["dev", "sample-upstream"]);
    }

    #[test]
    fn baseline_policies_are_the_repository_files_and_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let policies = ensure_policies(dir.path()).unwrap();
        for (name, text) in BASELINE_POLICIES {
            let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("policies")
                .join(name);
            assert_eq!(std::fs::read_to_string(&repo).unwrap(), *text, "{name}");
            assert_eq!(std::fs::read_to_string(policies.join(name)).unwrap(), *text);
        }
        let repo_files = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "cedar")
            })
            .count();
        assert_eq!(
            repo_files,
            BASELINE_POLICIES.len(),
            "every baseline file is built in"
        );
        // An edited set is kept.
        std::fs::write(policies.join("roles.cedar"), "// mine").unwrap();
        ensure_policies(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(policies.join("roles.cedar")).unwrap(),
            "// mine"
        );
    }
}
