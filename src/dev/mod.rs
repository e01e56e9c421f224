//! `warden dev`: the product on embedded defaults, for a first look and for
//! local development. Everything lives under one data directory.

pub mod azmcp;
pub mod proxy;
pub mod sample;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};
use crate::identity::IdentityConfig;
use crate::identity::dev::{DevClient, DevIssuer, TokenOptions};

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

/// The pepper of the OAuth facade's token hashes in `warden dev`'s data
/// directory (see [`crate::oauth::tokens::Pepper`]).
pub const OAUTH_PEPPER_FILE: &str = "oauth-pepper";

/// The OAuth facade's key-encryption key file in `warden dev`'s data
/// directory (see [`crate::oauth::seal`]).
pub const OAUTH_KEY_FILE: &str = "oauth.keys";

/// The OAuth facade of `warden dev`: Warden as the MCP clients'
/// authorization server (mode `both`), signing users in at the dev issuer
/// as its confidential client.
#[derive(Debug, Clone)]
pub struct DevOAuth {
    /// Warden's issuer: the gateway's base URL (`http://127.0.0.1:8787`).
    pub issuer: String,
    /// `DIR/oauth-pepper`.
    pub pepper_file: PathBuf,
    /// `DIR/oauth.keys`.
    pub key_file: PathBuf,
}

impl DevOAuth {
    /// The facade's issuer for a gateway listening on `listen`: its base
    /// URL on a loopback address; `None` elsewhere (an `http` issuer must be
    /// loopback, and `warden dev` serves plain HTTP).
    pub fn issuer_for(listen: SocketAddr) -> Option<String> {
        listen
            .ip()
            .is_loopback()
            .then(|| format!("http://{listen}"))
    }
}

/// Creates the facade's pepper and key files in `data_dir` unless they
/// exist (32 random bytes each, base64; mode 0600), and returns their paths.
/// Existing files are kept, so tokens issued before a restart stay valid.
pub fn ensure_oauth_keys(data_dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    use base64::Engine as _;
    let write = |name: &str, prefix: &str| -> std::io::Result<PathBuf> {
        let path = data_dir.join(name);
        if path.exists() {
            return Ok(path);
        }
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let text = format!(
            "{prefix}{}\n",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        let staging = data_dir.join(format!(".{name}.new"));
        let _ = std::fs::remove_file(&staging);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&staging)?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&staging, &path)?;
        Ok(path)
    };
    Ok((write(OAUTH_PEPPER_FILE, "")?, write(OAUTH_KEY_FILE, "k1 ")?))
}

/// Default address of the ARM simulator `warden dev` starts.
pub const ARM_LISTEN: &str = "127.0.0.1:8789";

/// Where `warden dev`'s built-in Azure tools go: the ARM simulator, with
/// the dev issuer's confidential client as Warden's own identity (the
/// production client-secret credential, against the local issuer); and the
/// official Azure MCP Server, when there is one.
#[derive(Debug, Clone)]
pub struct DevAzure {
    /// The simulator's base URL (`http://127.0.0.1:8789`).
    pub arm_endpoint: String,
    /// The dev issuer's base URL (the credential's authority host).
    pub authority_host: String,
    pub client: DevClient,
    /// The official Azure MCP Server as the upstream [`azmcp::UPSTREAM`].
    pub azure_mcp: Option<DevAzureMcp>,
}

/// The official Azure MCP Server as an upstream of `warden dev`: started
/// as `command server start --mode all` with `env` (see
/// [`azmcp::environment`]).
#[derive(Clone)]
pub struct DevAzureMcp {
    pub command: PathBuf,
    pub env: BTreeMap<String, String>,
    /// One azmcp for every session, or one per session.
    pub serve: azmcp::Serve,
}

impl std::fmt::Debug for DevAzureMcp {
    // The environment holds the service principal's secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevAzureMcp")
            .field("command", &self.command)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("serve", &self.serve)
            .finish()
    }
}

/// A person `warden dev` mints a token for.
#[derive(Debug, Clone, Copy)]
pub struct Persona {
    /// The key in `dev.json` (`developer`, ...).
    pub name: &'static str,
    /// The token's user name.
    pub user: &'static str,
    pub roles: &'static [&'static str],
    /// Whether the sign-in was multi-factor.
    pub mfa: bool,
}

/// The personas of `warden dev`, one per baseline role a person would hold.
pub const PERSONAS: &[Persona] = &[
    Persona {
        name: "developer",
        user: "dana.developer@contoso.dev",
        roles: &["Developer"],
        mfa: false,
    },
    Persona {
        name: "operator",
        user: "omar.operator@contoso.dev",
        roles: &["Operator"],
        mfa: false,
    },
    Persona {
        name: "security-manager",
        user: "sam.security@contoso.dev",
        roles: &["SecurityManager"],
        mfa: true,
    },
    Persona {
        name: "auditor",
        user: "ava.auditor@contoso.dev",
        roles: &["Reader", "Auditor"],
        mfa: false,
    },
    Persona {
        name: "reader",
        user: "rui.reader@contoso.dev",
        roles: &["Reader"],
        mfa: false,
    },
];

/// How long persona tokens last.
pub const PERSONA_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Mints a token for every persona: name → (persona, token).
pub fn persona_tokens(
    issuer: &DevIssuer,
) -> Result<Vec<(Persona, String)>, crate::identity::dev::DevError> {
    PERSONAS
        .iter()
        .map(|persona| {
            let token = issuer.mint(&TokenOptions {
                user: persona.user.to_owned(),
                roles: persona.roles.iter().map(|r| (*r).to_owned()).collect(),
                mfa: persona.mfa,
                ttl: PERSONA_TOKEN_TTL,
                ..TokenOptions::default()
            })?;
            Ok((*persona, token))
        })
        .collect()
}

/// What `warden dev` writes to `DIR/dev.json` for scripts: its URLs, files
/// and a token per persona (mode 0600: the tokens are credentials).
pub fn write_dev_json(data_dir: &Path, info: &serde_json::Value) -> std::io::Result<PathBuf> {
    let path = data_dir.join("dev.json");
    let staging = data_dir.join(".dev.json.new");
    let _ = std::fs::remove_file(&staging);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&staging)?;
    std::io::Write::write_all(&mut file, serde_json::to_string_pretty(info)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&staging, &path)?;
    Ok(path)
}

/// The embedded configuration of `warden dev`: the gateway on `listen`, in
/// front of the built-in Azure tools, the sample upstream (this same
/// executable started as `warden dev sample-upstream`) and, when `azure`
/// has one, the official Azure MCP Server; trusting `identity` (the dev
/// issuer's), deciding with the policies in `policies`; with `oauth`,
/// Warden is also the clients' authorization server in front of the dev
/// issuer.
pub fn config(
    listen: SocketAddr,
    executable: &Path,
    identity: IdentityConfig,
    data_dir: &Path,
    policies: &Path,
    azure: &DevAzure,
    oauth: Option<&DevOAuth>,
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

[azure.arm]
endpoint = {arm:?}
audience = {audience:?}
lro_poll_interval = "1s"

[azure.credential]
kind = "client_secret"
tenant_id = {tenant:?}
client_id = {client_id:?}
secret_file = {secret_file:?}
authority_host = {authority:?}

[upstreams.azure]
builtin = "arm"

[upstreams.sample]
command = {executable:?}
args = ["dev", "sample-upstream"]
"#,
        executable = executable.display().to_string(),
        arm = azure.arm_endpoint,
        audience = crate::azure::sim::ARM_AUDIENCE,
        tenant = crate::identity::dev::DEV_TENANT,
        client_id = azure.client.client_id,
        secret_file = azure.client.secret_file.display().to_string(),
        authority = azure.authority_host,
    );
    let text = match &azure.azure_mcp {
        Some(azure_mcp) => {
            text + &azmcp::upstream_toml(&azure_mcp.command, &azure_mcp.env, azure_mcp.serve)
        }
        None => text,
    };
    let text = match oauth {
        Some(oauth) => text + &oauth_toml(oauth, azure),
        None => text,
    };
    let source = Path::new("<warden dev defaults>");
    let mut config = Config::parse(&text, source)?;
    config.store = crate::config::StoreConfig::sqlite(data_dir.join("warden.db"));
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

/// The `[oauth]` section of `warden dev`. Mode `both`: the protected-resource
/// metadata names Warden first (MCP clients sign in through it) and still
/// lists the dev tenant, and the dev issuer's own tokens (the personas in
/// `dev.json`, `warden dev token`) are accepted as before.
fn oauth_toml(oauth: &DevOAuth, azure: &DevAzure) -> String {
    use crate::identity::dev::{DEV_AUDIENCE, DEV_SCOPE, DEV_TENANT};
    format!(
        r#"
[oauth]
mode = "both"
issuer = {issuer:?}
key_file = {key_file:?}
pepper_file = {pepper_file:?}

[oauth.entra]
tenant = {DEV_TENANT:?}
client_id = {client_id:?}
scope = "{DEV_AUDIENCE}/{DEV_SCOPE}"
authority = {authority:?}

[oauth.entra.credential]
kind = "client_secret"
tenant_id = {DEV_TENANT:?}
client_id = {client_id:?}
secret_file = {secret_file:?}
"#,
        issuer = oauth.issuer,
        key_file = oauth.key_file.display().to_string(),
        pepper_file = oauth.pepper_file.display().to_string(),
        client_id = azure.client.client_id,
        authority = azure.authority_host,
        secret_file = azure.client.secret_file.display().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_are_valid() {
        let state = tempfile::tempdir().unwrap();
        let issuer = DevIssuer::load_or_create(state.path()).unwrap();
        let identity = issuer.identity_config("http://127.0.0.1:8788");
        let azure = DevAzure {
            arm_endpoint: "http://127.0.0.1:8789".into(),
            authority_host: "http://127.0.0.1:8788".into(),
            client: issuer.dev_client().unwrap(),
            azure_mcp: None,
        };
        let config = config(
            "127.0.0.1:8787".parse().unwrap(),
            Path::new("/bin/warden"),
            identity,
            Path::new("/tmp/dev"),
            Path::new("/tmp/dev/policies"),
            &azure,
            None,
        )
        .unwrap();
        assert!(!config.oauth.enabled());
        let arm = config.azure.as_ref().unwrap();
        assert_eq!(arm.arm.endpoint, "http://127.0.0.1:8789");
        assert_eq!(arm.arm.scope(), "https://management.azure.com/.default");
        assert!(matches!(
            config.upstreams["azure"].kind(),
            crate::config::UpstreamKind::Builtin { .. }
        ));
        assert_eq!(config.policy.dir, Path::new("/tmp/dev/policies"));
        assert_eq!(
            config.store.location(),
            crate::store::Location::Sqlite("/tmp/dev/warden.db".into())
        );
        assert_eq!(
            config.audit.signing_key,
            Path::new("/tmp/dev/audit-signing.key")
        );
        assert!(!config.identity.allow_anonymous);
        assert_eq!(config.identity.authority, "http://127.0.0.1:8788");
        assert_eq!(config.upstreams.len(), 2);
        assert_eq!(config.upstreams["sample"].args, ["dev", "sample-upstream"]);
    }

    #[test]
    fn the_azure_mcp_server_is_an_upstream_beside_the_built_in_tools() {
        let state = tempfile::tempdir().unwrap();
        let issuer = DevIssuer::load_or_create(state.path()).unwrap();
        let env = azmcp::environment(&azmcp::Offline {
            proxy_url: "http://127.0.0.1:4000",
            ca_file: Path::new("/tmp/dev/dev-ca.pem"),
            tenant_id: crate::identity::dev::DEV_TENANT,
            client_id: crate::identity::dev::DEV_AZMCP_CLIENT,
            client_secret: "s3cret-value",
        });
        let azure = DevAzure {
            arm_endpoint: "http://127.0.0.1:8789".into(),
            authority_host: "http://127.0.0.1:8788".into(),
            client: issuer.dev_client().unwrap(),
            azure_mcp: Some(DevAzureMcp {
                command: "/opt/azmcp".into(),
                env: env.clone(),
                serve: azmcp::Serve::Stdio,
            }),
        };
        assert!(!format!("{azure:?}").contains("s3cret-value"), "{azure:?}");
        let config = config(
            "127.0.0.1:8787".parse().unwrap(),
            Path::new("/bin/warden"),
            issuer.identity_config("http://127.0.0.1:8788"),
            Path::new("/tmp/dev"),
            Path::new("/tmp/dev/policies"),
            &azure,
            None,
        )
        .unwrap();
        assert_eq!(config.upstreams.len(), 3);
        match config.upstreams[azmcp::UPSTREAM].kind() {
            crate::config::UpstreamKind::Stdio {
                command,
                args,
                env: got,
                ..
            } => {
                assert_eq!(command, Path::new("/opt/azmcp"));
                assert_eq!(args, azmcp::ARGS);
                assert_eq!(got, env);
            }
            other => panic!("{other:?}"),
        }

        // Shared: one azmcp serving HTTP on a private socket, same
        // environment plus its endpoint.
        let mut shared = azure.clone();
        if let Some(azure_mcp) = &mut shared.azure_mcp {
            azure_mcp.serve = azmcp::Serve::Http;
        }
        let shared = super::config(
            "127.0.0.1:8787".parse().unwrap(),
            Path::new("/bin/warden"),
            issuer.identity_config("http://127.0.0.1:8788"),
            Path::new("/tmp/dev"),
            Path::new("/tmp/dev/policies"),
            &shared,
            None,
        )
        .unwrap();
        match shared.upstreams[azmcp::UPSTREAM].kind() {
            crate::config::UpstreamKind::Shared {
                args,
                env: got,
                listen,
                mcp_path,
                ..
            } => {
                assert_eq!(args, azmcp::HTTP_ARGS);
                assert_eq!(listen, crate::config::Listen::Unix);
                assert_eq!(mcp_path, azmcp::HTTP_PATH);
                assert_eq!(got["HTTPS_PROXY"], env["HTTPS_PROXY"]);
                assert_eq!(
                    got["Kestrel__Endpoints__warden__Url"],
                    "http://unix:{socket}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_facade_is_configured_with_key_files_made_once() {
        let state = tempfile::tempdir().unwrap();
        let issuer = DevIssuer::load_or_create(state.path()).unwrap();
        let (pepper_file, key_file) = ensure_oauth_keys(state.path()).unwrap();
        let keys = std::fs::read_to_string(&key_file).unwrap();
        let pepper = std::fs::read_to_string(&pepper_file).unwrap();
        assert!(keys.starts_with("k1 "), "{keys}");
        #[cfg(unix)]
        for file in [&pepper_file, &key_file] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
        crate::oauth::tokens::Pepper::load(&pepper_file).unwrap();
        crate::oauth::seal::KeyRing::load(&key_file).unwrap();
        // Kept across restarts.
        ensure_oauth_keys(state.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&key_file).unwrap(), keys);
        assert_eq!(std::fs::read_to_string(&pepper_file).unwrap(), pepper);

        let listen: SocketAddr = "127.0.0.1:8787".parse().unwrap();
        assert_eq!(DevOAuth::issuer_for("0.0.0.0:8787".parse().unwrap()), None);
        let oauth = DevOAuth {
            issuer: DevOAuth::issuer_for(listen).unwrap(),
            pepper_file,
            key_file,
        };
        let azure = DevAzure {
            arm_endpoint: "http://127.0.0.1:8789".into(),
            authority_host: "http://127.0.0.1:8788".into(),
            client: issuer.dev_client().unwrap(),
            azure_mcp: None,
        };
        let config = config(
            listen,
            Path::new("/bin/warden"),
            issuer.identity_config("http://127.0.0.1:8788"),
            state.path(),
            &state.path().join("policies"),
            &azure,
            Some(&oauth),
        )
        .unwrap();
        assert_eq!(config.oauth.mode, crate::oauth::config::OAuthMode::Both);
        assert_eq!(
            config.oauth.issuer.as_deref(),
            Some("http://127.0.0.1:8787")
        );
        assert_eq!(config.oauth.entra.authority, "http://127.0.0.1:8788");
        assert_eq!(
            config.oauth.entra.client_id.as_deref(),
            Some(azure.client.client_id.as_str())
        );
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
