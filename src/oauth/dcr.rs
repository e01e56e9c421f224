//! Dynamic client registration (RFC 7591), stateless.
//!
//! [`validate_request`] checks a registration: public clients only
//! (`token_endpoint_auth_method` absent or `none`), `redirect_uris`
//! required and valid ([`crate::oauth::redirect`]), `grant_types` a subset
//! of `authorization_code` and `refresh_token` that includes the former
//! (absent: both), `response_types` only `code`, `client_name` at most 100
//! characters. Other metadata is ignored, as RFC 7591 §2 requires.
//!
//! Nothing is stored: [`issue_client_id`] seals what Warden needs to know
//! about the client into the id itself, `wdc_` + base64url(seal(JSON
//! {redirect URIs, name, grants, issued at})), with the
//! [`Purpose::ClientId`] keys of the key file. [`decode_client_id`] opens
//! it on every use; an id that was altered, made up, or sealed by a key no
//! longer in the file is refused. The grant is persisted only at first
//! consent, so a flood of registrations fills no table (sebadob/rauthy
//! #877, RFC 7591 appendix A.5.2); [`RateLimiter`] bounds it per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::client::{Client, ClientSource, MAX_NAME_CHARS, display_safe_name};
use super::redirect::{RedirectError, RedirectUri, validate_registration};
use super::seal::{KeyRing, Purpose, SealError};

/// Prefix of dynamic-registration client ids.
pub const CLIENT_ID_PREFIX: &str = "wdc_";
/// Largest registration (as sealed JSON), which keeps ids under ~3 KiB.
pub const MAX_PAYLOAD_BYTES: usize = 2048;
/// Longest client id looked at.
pub const MAX_CLIENT_ID_LEN: usize = 4096;
/// Largest registration request body.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

const AAD: &[u8] = b"warden/dcr/client-id/v1";
const PAYLOAD_VERSION: u8 = 1;
const AUTHORIZATION_CODE: &str = "authorization_code";
const REFRESH_TOKEN: &str = "refresh_token";

/// Why a registration or a client id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DcrError {
    /// Not a JSON object of the expected shape.
    #[error("the registration request is not valid JSON metadata: {0}")]
    Json(String),
    /// Larger than [`MAX_REQUEST_BYTES`] or [`MAX_PAYLOAD_BYTES`].
    #[error("the registration is too large")]
    TooLarge,
    /// A confidential client asked to register.
    #[error(
        "token_endpoint_auth_method {0:?} is not supported; register a public client (\"none\")"
    )]
    AuthMethod(String),
    /// Missing or invalid redirect URIs.
    #[error("{0}")]
    RedirectUris(RedirectError),
    /// `grant_types` outside `authorization_code`, `refresh_token`.
    #[error("grant_types: {0}")]
    GrantTypes(String),
    /// `response_types` other than `code`.
    #[error("response_types must be [\"code\"]")]
    ResponseTypes,
    /// Empty, overlong or with control characters.
    #[error(
        "client_name must be 1 to {MAX_NAME_CHARS} characters without control or invisible characters"
    )]
    ClientName,
    /// Sealing failed (a server error).
    #[error("the client id could not be issued: {0}")]
    Issue(SealError),
    /// Not a `wdc_` id, or not base64url, or too long.
    #[error("the client id is not a registered dynamic client")]
    MalformedClientId,
    /// The id does not open: altered, invented, or its key was retired.
    #[error("the client id is not a registered dynamic client: {0}")]
    UnknownClientId(SealError),
}

impl DcrError {
    /// The OAuth error code: RFC 7591 §3.2.2 codes for registrations,
    /// `invalid_client` for ids, `server_error` when sealing failed.
    pub fn error_code(&self) -> &'static str {
        match self {
            DcrError::RedirectUris(_) => "invalid_redirect_uri",
            DcrError::Issue(_) => "server_error",
            DcrError::MalformedClientId | DcrError::UnknownClientId(_) => "invalid_client",
            _ => "invalid_client_metadata",
        }
    }
}

/// The members of a registration request Warden reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistrationRequest {
    /// Required.
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    /// Absent or `none`.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// Subset of `authorization_code`, `refresh_token`.
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    /// `["code"]` if present.
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    /// Shown (as unverified) on the consent page.
    #[serde(default)]
    pub client_name: Option<String>,
}

/// A registration that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Its redirect URIs.
    pub redirect_uris: Vec<RedirectUri>,
    /// Its name, if it gave one (trimmed).
    pub client_name: Option<String>,
    /// Whether `refresh_token` is among its grant types.
    pub refresh_allowed: bool,
}

impl Registration {
    fn grant_types(&self) -> Vec<&'static str> {
        if self.refresh_allowed {
            vec![AUTHORIZATION_CODE, REFRESH_TOKEN]
        } else {
            vec![AUTHORIZATION_CODE]
        }
    }
}

/// Parses and checks a registration request body.
pub fn validate_request(body: &[u8]) -> Result<Registration, DcrError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(DcrError::TooLarge);
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| DcrError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(DcrError::Json("not a JSON object".into()));
    }
    let request: RegistrationRequest =
        serde_json::from_value(value).map_err(|e| DcrError::Json(e.to_string()))?;
    validate(&request)
}

/// Checks a parsed registration request.
pub fn validate(request: &RegistrationRequest) -> Result<Registration, DcrError> {
    match request.token_endpoint_auth_method.as_deref() {
        None | Some("none") => {}
        Some(other) => return Err(DcrError::AuthMethod(truncate(other, 40))),
    }
    let uris = request
        .redirect_uris
        .as_deref()
        .ok_or(DcrError::RedirectUris(RedirectError::Empty))?;
    let redirect_uris = validate_registration(uris).map_err(DcrError::RedirectUris)?;
    let refresh_allowed = match &request.grant_types {
        None => true,
        Some(grants) => {
            if let Some(other) = grants
                .iter()
                .find(|g| *g != AUTHORIZATION_CODE && *g != REFRESH_TOKEN)
            {
                return Err(DcrError::GrantTypes(format!(
                    "{:?} is not supported (only authorization_code and refresh_token)",
                    truncate(other, 60)
                )));
            }
            if !grants.iter().any(|g| g == AUTHORIZATION_CODE) {
                return Err(DcrError::GrantTypes(
                    "authorization_code is required".into(),
                ));
            }
            grants.iter().any(|g| g == REFRESH_TOKEN)
        }
    };
    if let Some(types) = &request.response_types
        && (types.is_empty() || types.iter().any(|t| t != "code"))
    {
        return Err(DcrError::ResponseTypes);
    }
    let client_name = request.client_name.as_deref().map(check_name).transpose()?;
    Ok(Registration {
        redirect_uris,
        client_name,
        refresh_allowed,
    })
}

fn check_name(name: &str) -> Result<String, DcrError> {
    display_safe_name(name).ok_or(DcrError::ClientName)
}

fn truncate(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

/// What a client id carries.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    v: u8,
    r: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    /// Refresh tokens allowed.
    f: bool,
    /// Issued at, Unix seconds.
    t: i64,
}

/// Seals a registration into its stateless client id.
pub fn issue_client_id(
    keys: &KeyRing,
    registration: &Registration,
    issued_at: i64,
) -> Result<String, DcrError> {
    let payload = Payload {
        v: PAYLOAD_VERSION,
        r: registration
            .redirect_uris
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect(),
        n: registration.client_name.clone(),
        f: registration.refresh_allowed,
        t: issued_at,
    };
    let json = serde_json::to_vec(&payload).map_err(|e| DcrError::Json(e.to_string()))?;
    if json.len() > MAX_PAYLOAD_BYTES {
        return Err(DcrError::TooLarge);
    }
    let sealed = keys
        .sealer(Purpose::ClientId)
        .seal(&json, &[AAD])
        .map_err(DcrError::Issue)?;
    Ok(format!(
        "{CLIENT_ID_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(sealed)
    ))
}

/// Opens a `wdc_` client id into the client it describes.
pub fn decode_client_id(keys: &KeyRing, client_id: &str) -> Result<Client, DcrError> {
    if client_id.len() > MAX_CLIENT_ID_LEN {
        return Err(DcrError::MalformedClientId);
    }
    let encoded = client_id
        .strip_prefix(CLIENT_ID_PREFIX)
        .ok_or(DcrError::MalformedClientId)?;
    let sealed = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| DcrError::MalformedClientId)?;
    let json = keys
        .sealer(Purpose::ClientId)
        .open(&sealed, &[AAD])
        .map_err(DcrError::UnknownClientId)?;
    // Authentic from here on; still checked, so rules tightened since
    // issuance apply to ids issued before.
    let payload: Payload =
        serde_json::from_slice(&json).map_err(|e| DcrError::Json(e.to_string()))?;
    if payload.v != PAYLOAD_VERSION {
        return Err(DcrError::Json(format!(
            "unsupported client id version {}",
            payload.v
        )));
    }
    let redirect_uris = validate_registration(&payload.r).map_err(DcrError::RedirectUris)?;
    let name = payload.n.as_deref().map(check_name).transpose()?;
    Ok(Client {
        id: client_id.to_owned(),
        name,
        redirect_uris,
        refresh_allowed: payload.f,
        source: ClientSource::Dynamic {
            issued_at: payload.t,
        },
    })
}

/// The RFC 7591 §3.2.1 response body (send with status 201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistrationResponse {
    /// The `wdc_` id.
    pub client_id: String,
    /// Unix seconds.
    pub client_id_issued_at: i64,
    /// As registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// As registered.
    pub redirect_uris: Vec<String>,
    /// `authorization_code` and, if asked for, `refresh_token`.
    pub grant_types: Vec<&'static str>,
    /// `["code"]`
    pub response_types: Vec<&'static str>,
    /// `none`
    pub token_endpoint_auth_method: &'static str,
}

/// The response for a registration and the id issued for it.
pub fn registration_response(
    client_id: String,
    registration: &Registration,
    issued_at: i64,
) -> RegistrationResponse {
    RegistrationResponse {
        client_id,
        client_id_issued_at: issued_at,
        client_name: registration.client_name.clone(),
        redirect_uris: registration
            .redirect_uris
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect(),
        grant_types: registration.grant_types(),
        response_types: vec!["code"],
        token_endpoint_auth_method: "none",
    }
}

/// Refused by the [`RateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many registrations from this address; retry in {} s", retry_after.as_secs().max(1))]
pub struct RateLimited {
    /// When the client may try again (for `Retry-After`).
    pub retry_after: Duration,
}

/// A per-address fixed-window counter, in memory and bounded.
///
/// IPv4 addresses (also IPv4-mapped IPv6) count individually, IPv6
/// addresses per /64 (one host usually owns a whole /64). At most
/// `max_addresses` windows are tracked; when that many are live, new
/// addresses are refused until one ends (fail closed: an attacker with
/// many addresses can then delay registrations, but not get more).
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    max_addresses: usize,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Default number of addresses tracked.
pub const DEFAULT_MAX_ADDRESSES: usize = 10_000;

impl RateLimiter {
    /// `limit` registrations per `window` per address.
    pub fn new(limit: u32, window: Duration, max_addresses: usize) -> Self {
        Self {
            limit,
            window,
            max_addresses,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `oauth.dcr.rate_limit_per_hour`.
    pub fn per_hour(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(3600), DEFAULT_MAX_ADDRESSES)
    }

    /// Counts one registration from `ip`, or refuses it.
    pub fn check(&self, ip: IpAddr) -> Result<(), RateLimited> {
        self.check_at(ip, Instant::now())
    }

    /// [`check`](Self::check) at a given time.
    pub fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), RateLimited> {
        let key = rate_key(ip);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.window;
        let live = |start: &Instant| now.saturating_duration_since(*start) < window;
        if !windows.contains_key(&key) && windows.len() >= self.max_addresses {
            windows.retain(|_, (start, _)| live(start));
            if windows.len() >= self.max_addresses {
                let retry_after = windows
                    .values()
                    .map(|(start, _)| (*start + window).saturating_duration_since(now))
                    .min()
                    .unwrap_or(window);
                return Err(RateLimited { retry_after });
            }
        }
        let entry = windows.entry(key).or_insert((now, 0));
        if !live(&entry.0) {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return Err(RateLimited {
                retry_after: (entry.0 + window).saturating_duration_since(now),
            });
        }
        entry.1 += 1;
        Ok(())
    }
}

fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::str::FromStr;

    fn keys(lines: &[(&str, u8)]) -> KeyRing {
        let text: Vec<String> = lines
            .iter()
            .map(|(id, b)| {
                format!(
                    "{id} {}",
                    base64::engine::general_purpose::STANDARD.encode([*b; 32])
                )
            })
            .collect();
        KeyRing::parse(&text.join("\n"), Path::new("keys")).unwrap()
    }

    fn ring() -> KeyRing {
        keys(&[("k1", 1)])
    }

    fn request(value: serde_json::Value) -> Result<Registration, DcrError> {
        validate_request(value.to_string().as_bytes())
    }

    fn vscode_request() -> serde_json::Value {
        serde_json::json!({
            "client_name": "Visual Studio Code",
            "client_uri": "https://code.visualstudio.com",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [
                "https://insiders.vscode.dev/redirect",
                "https://vscode.dev/redirect",
                "http://127.0.0.1/",
                "http://127.0.0.1:33418/"
            ],
            "scope": "mcp",
            "token_endpoint_auth_method": "none",
            "application_type": "native"
        })
    }

    #[test]
    fn accepts_vscode_and_minimal_registrations() {
        let reg = request(vscode_request()).unwrap();
        assert_eq!(reg.redirect_uris.len(), 4);
        assert_eq!(reg.client_name.as_deref(), Some("Visual Studio Code"));
        assert!(reg.refresh_allowed);

        let minimal = request(serde_json::json!({
            "redirect_uris": ["http://localhost:61234/callback"]
        }))
        .unwrap();
        assert_eq!(minimal.client_name, None);
        assert!(minimal.refresh_allowed);

        let code_only = request(serde_json::json!({
            "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
            "grant_types": ["authorization_code"],
            "client_name": "  claude.ai  "
        }))
        .unwrap();
        assert!(!code_only.refresh_allowed);
        assert_eq!(code_only.client_name.as_deref(), Some("claude.ai"));
    }

    #[test]
    fn refuses_confidential_clients() {
        for method in [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "",
        ] {
            let mut r = vscode_request();
            r["token_endpoint_auth_method"] = serde_json::json!(method);
            let err = request(r).unwrap_err();
            assert!(matches!(err, DcrError::AuthMethod(_)), "{method}");
            assert_eq!(err.error_code(), "invalid_client_metadata");
        }
    }

    #[test]
    fn redirect_uris_are_required_and_checked() {
        let mut r = vscode_request();
        r.as_object_mut().unwrap().remove("redirect_uris");
        let err = request(r).unwrap_err();
        assert_eq!(err, DcrError::RedirectUris(RedirectError::Empty));
        assert_eq!(err.error_code(), "invalid_redirect_uri");
        for uris in [
            serde_json::json!([]),
            serde_json::json!(["http://evil.example/cb"]),
            serde_json::json!(["https://a.example/cb#x"]),
            serde_json::json!(["https://*.a.example/cb"]),
            serde_json::json!(["https://a.example/cb", "https://a.example/cb"]),
            serde_json::json!(
                (0..11)
                    .map(|i| format!("https://a.example/{i}"))
                    .collect::<Vec<_>>()
            ),
        ] {
            let mut r = vscode_request();
            r["redirect_uris"] = uris.clone();
            let err = request(r).unwrap_err();
            assert!(matches!(err, DcrError::RedirectUris(_)), "{uris}: {err:?}");
            assert_eq!(err.error_code(), "invalid_redirect_uri");
        }
    }

    #[test]
    fn grant_and_response_types() {
        for grants in [
            serde_json::json!(["refresh_token"]),
            serde_json::json!([]),
            serde_json::json!(["authorization_code", "client_credentials"]),
            serde_json::json!(["authorization_code", "implicit"]),
            serde_json::json!([
                "authorization_code",
                "urn:ietf:params:oauth:grant-type:device_code"
            ]),
        ] {
            let mut r = vscode_request();
            r["grant_types"] = grants.clone();
            assert!(
                matches!(request(r), Err(DcrError::GrantTypes(_))),
                "{grants}"
            );
        }
        for types in [
            serde_json::json!([]),
            serde_json::json!(["token"]),
            serde_json::json!(["code", "token"]),
            serde_json::json!(["code id_token"]),
        ] {
            let mut r = vscode_request();
            r["response_types"] = types.clone();
            assert_eq!(request(r), Err(DcrError::ResponseTypes), "{types}");
        }
        let mut r = vscode_request();
        r["response_types"] = serde_json::json!(["code", "code"]);
        assert!(request(r).is_ok());
    }

    #[test]
    fn client_name_rules() {
        for name in ["", "   ", "a\nb", "Code\u{202e}", "\u{0}", &"n".repeat(101)] {
            let mut r = vscode_request();
            r["client_name"] = serde_json::json!(name);
            assert_eq!(request(r), Err(DcrError::ClientName), "{name:?}");
        }
        let mut r = vscode_request();
        r["client_name"] = serde_json::json!("é".repeat(100));
        assert!(request(r).is_ok());
    }

    #[test]
    fn malformed_and_oversize_bodies() {
        for body in [
            "",
            "[]",
            "[[\"https://a.example/cb\"]]",
            "null",
            "{\"redirect_uris\": \"https://a.example/cb\"}",
            "{\"redirect_uris\": [1]}",
            "{\"client_name\": 5, \"redirect_uris\": [\"https://a.example/cb\"]}",
        ] {
            let err = validate_request(body.as_bytes()).unwrap_err();
            assert!(matches!(err, DcrError::Json(_)), "{body}: {err:?}");
            assert_eq!(err.error_code(), "invalid_client_metadata");
        }
        let big = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(validate_request(&big), Err(DcrError::TooLarge));
    }

    #[test]
    fn client_id_round_trip() {
        let reg = request(vscode_request()).unwrap();
        let id = issue_client_id(&ring(), &reg, 1_767_225_600).unwrap();
        assert!(id.starts_with("wdc_"));
        assert!(id.len() < 1024, "{}", id.len());
        assert!(
            id[4..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        // names and URIs are not readable in the id
        assert!(!id.contains("vscode"));
        let client = decode_client_id(&ring(), &id).unwrap();
        assert_eq!(client.id, id);
        assert_eq!(client.name.as_deref(), Some("Visual Studio Code"));
        assert_eq!(client.redirect_uris, reg.redirect_uris);
        assert!(client.refresh_allowed);
        assert_eq!(
            client.source,
            ClientSource::Dynamic {
                issued_at: 1_767_225_600
            }
        );
        assert!(client.find_redirect("http://127.0.0.1:50123/").is_ok());
        // two registrations of the same thing get different ids
        let again = issue_client_id(&ring(), &reg, 1_767_225_600).unwrap();
        assert_ne!(id, again);
    }

    #[test]
    fn tampered_or_foreign_ids_are_refused() {
        let reg = request(vscode_request()).unwrap();
        let id = issue_client_id(&ring(), &reg, 0).unwrap();
        // every single-character change
        let bytes = id.as_bytes();
        for i in 4..bytes.len() {
            let mut changed = bytes.to_vec();
            changed[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).unwrap();
            let err = decode_client_id(&ring(), &changed).unwrap_err();
            assert_eq!(err.error_code(), "invalid_client", "{i}: {err:?}");
        }
        for bad in [
            String::new(),
            "wdc_".into(),
            "wdc_!!!!".into(),
            "wdc_AAAA".into(),
            id.replacen("wdc_", "wdx_", 1),
            id.replacen("wdc_", "WDC_", 1),
            id[..id.len() - 1].to_owned(),
            format!("{id}A"),
            format!("{id}="),
            format!("wdc_{}", "A".repeat(MAX_CLIENT_ID_LEN)),
        ] {
            let err = decode_client_id(&ring(), &bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    DcrError::MalformedClientId | DcrError::UnknownClientId(_)
                ),
                "{bad}: {err:?}"
            );
        }
        // another deployment's key
        assert!(matches!(
            decode_client_id(&keys(&[("k1", 2)]), &id),
            Err(DcrError::UnknownClientId(SealError::Inauthentic))
        ));
        // a retired key
        assert!(matches!(
            decode_client_id(&keys(&[("k2", 2)]), &id),
            Err(DcrError::UnknownClientId(SealError::UnknownKey(_)))
        ));
        // still valid after rotation
        assert!(decode_client_id(&keys(&[("k1", 1), ("k2", 2)]), &id).is_ok());
    }

    #[test]
    fn an_upstream_token_envelope_is_not_a_client_id() {
        // Same key file, other purpose: a sealed Entra token cannot pass
        // for a registration.
        let payload = serde_json::json!({"v":1,"r":["https://evil.example/cb"],"f":true,"t":0});
        let sealed = ring()
            .sealer(Purpose::UpstreamToken)
            .seal(payload.to_string().as_bytes(), &[AAD])
            .unwrap();
        let forged = format!("wdc_{}", URL_SAFE_NO_PAD.encode(sealed));
        assert!(matches!(
            decode_client_id(&ring(), &forged),
            Err(DcrError::UnknownClientId(SealError::Inauthentic))
        ));
    }

    #[test]
    fn authentic_payloads_are_still_checked() {
        // A payload sealed with the right key but breaking today's rules.
        let seal = |value: serde_json::Value| {
            let sealed = ring()
                .sealer(Purpose::ClientId)
                .seal(value.to_string().as_bytes(), &[AAD])
                .unwrap();
            format!("wdc_{}", URL_SAFE_NO_PAD.encode(sealed))
        };
        let bad_uri =
            seal(serde_json::json!({"v":1,"r":["http://evil.example/cb"],"f":true,"t":0}));
        assert!(matches!(
            decode_client_id(&ring(), &bad_uri),
            Err(DcrError::RedirectUris(_))
        ));
        let version = seal(serde_json::json!({"v":2,"r":["https://a.example/cb"],"f":true,"t":0}));
        assert!(matches!(
            decode_client_id(&ring(), &version),
            Err(DcrError::Json(_))
        ));
        let extra =
            seal(serde_json::json!({"v":1,"r":["https://a.example/cb"],"f":true,"t":0,"x":1}));
        assert!(matches!(
            decode_client_id(&ring(), &extra),
            Err(DcrError::Json(_))
        ));
    }

    #[test]
    fn oversize_registrations_cannot_be_issued() {
        let uris: Vec<String> = (0..10)
            .map(|i| format!("https://a.example/{i}/{}", "p".repeat(250)))
            .collect();
        let reg = request(serde_json::json!({ "redirect_uris": uris })).unwrap();
        assert_eq!(issue_client_id(&ring(), &reg, 0), Err(DcrError::TooLarge));
    }

    #[test]
    fn response_body() {
        let reg = request(serde_json::json!({
            "redirect_uris": ["http://localhost:61234/callback"],
            "client_name": "Claude Code",
            "grant_types": ["authorization_code"]
        }))
        .unwrap();
        let body = serde_json::to_value(registration_response("wdc_x".into(), &reg, 42)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "client_id": "wdc_x",
                "client_id_issued_at": 42,
                "client_name": "Claude Code",
                "redirect_uris": ["http://localhost:61234/callback"],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none"
            })
        );
        assert!(body.get("client_secret").is_none());
    }

    // ---- rate limiter ----

    fn ip(s: &str) -> IpAddr {
        IpAddr::from_str(s).unwrap()
    }

    #[test]
    fn limits_per_address_per_window() {
        let limiter = RateLimiter::new(3, Duration::from_secs(3600), 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at(ip("203.0.113.1"), t0), Ok(()));
        }
        assert_eq!(
            limiter.check_at(ip("203.0.113.1"), t0 + Duration::from_secs(600)),
            Err(RateLimited {
                retry_after: Duration::from_secs(3000)
            })
        );
        // another address is counted apart
        assert_eq!(limiter.check_at(ip("203.0.113.2"), t0), Ok(()));
        // the window ends
        assert_eq!(
            limiter.check_at(ip("203.0.113.1"), t0 + Duration::from_secs(3600)),
            Ok(())
        );
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limiter = RateLimiter::new(2, Duration::from_secs(3600), 100);
        let t0 = Instant::now();
        assert!(limiter.check_at(ip("2001:db8:1:2::1"), t0).is_ok());
        assert!(limiter.check_at(ip("2001:db8:1:2:ffff::9"), t0).is_ok());
        assert!(limiter.check_at(ip("2001:db8:1:2::abcd"), t0).is_err());
        assert!(limiter.check_at(ip("2001:db8:1:3::1"), t0).is_ok());
        assert!(limiter.check_at(ip("198.51.100.1"), t0).is_ok());
        assert!(limiter.check_at(ip("::ffff:198.51.100.1"), t0).is_ok());
        assert!(limiter.check_at(ip("198.51.100.1"), t0).is_err());
    }

    #[test]
    fn bounded_and_fail_closed_when_full() {
        let limiter = RateLimiter::new(5, Duration::from_secs(100), 2);
        let t0 = Instant::now();
        assert!(limiter.check_at(ip("192.0.2.1"), t0).is_ok());
        assert!(
            limiter
                .check_at(ip("192.0.2.2"), t0 + Duration::from_secs(10))
                .is_ok()
        );
        // full: a third address waits for the first window to end
        assert_eq!(
            limiter.check_at(ip("192.0.2.3"), t0 + Duration::from_secs(50)),
            Err(RateLimited {
                retry_after: Duration::from_secs(50)
            })
        );
        // known addresses still count
        assert!(
            limiter
                .check_at(ip("192.0.2.1"), t0 + Duration::from_secs(50))
                .is_ok()
        );
        // once a window ends, its slot is reused
        assert!(
            limiter
                .check_at(ip("192.0.2.3"), t0 + Duration::from_secs(100))
                .is_ok()
        );
        assert!(limiter.windows.lock().unwrap().len() <= 2);
    }

    #[test]
    fn rate_limited_message_names_the_wait() {
        let err = RateLimited {
            retry_after: Duration::from_millis(10),
        };
        assert!(err.to_string().contains("retry in 1 s"));
        let limiter = RateLimiter::per_hour(1);
        assert!(limiter.check(ip("192.0.2.9")).is_ok());
        assert!(limiter.check(ip("192.0.2.9")).is_err());
    }
}
