//! `warden dev`: the product on embedded defaults, for a first look and for
//! local development. Everything lives under one data directory.

pub mod sample;

use std::net::SocketAddr;
use std::path::Path;

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

/// The embedded configuration of `warden dev`: the gateway on `listen`, in
/// front of the sample upstream (this same executable started as `warden dev
/// sample-upstream`), trusting `identity` (the dev issuer's).
pub fn config(
    listen: SocketAddr,
    executable: &Path,
    identity: IdentityConfig,
    data_dir: &Path,
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
        )
        .unwrap();
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
}
