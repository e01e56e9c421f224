//! The token checks, in the order documented in the module root.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::cache::{self, TokenCache};
use super::config::{GroupsOveragePolicy, IdentityConfig};
use super::jwks::{KeyCache, printable};
use super::principal::{self, Claims, PrincipalKind};
use super::{AuthError, Principal};

/// The only accepted signature algorithm, as written in the JOSE header.
const RS256: &str = "RS256";

pub(crate) async fn authenticate(
    config: &IdentityConfig,
    keys: &KeyCache,
    verified: &TokenCache,
    authorization: Option<&str>,
    source_ip: Option<IpAddr>,
) -> Result<Principal, AuthError> {
    let token = bearer_token(authorization)?;
    if token.len() > config.max_token_bytes {
        return Err(AuthError::Oversized {
            size: token.len(),
            limit: config.max_token_bytes,
        });
    }
    // The same bytes passed every check below before (see `cache`).
    let digest = cache::hash(token);
    let now = unix_now();
    if let Some(mut principal) = verified.get(&digest, now, |kid| keys.current(kid)) {
        principal.source_ip = source_ip;
        return Ok(principal);
    }
    let header = parse_header(token)?;
    let kid = check_header(&header)?;
    let entry = keys.key_for(kid).await?;

    let mut validation = Validation::new(Algorithm::RS256);
    validation.algorithms = vec![Algorithm::RS256];
    validation.leeway = config.clock_skew.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp"]);
    // `iss` and `aud` are checked below, with the tenant binding.
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &entry.key, &validation)
        .map_err(|e| map_jwt_error(e.into_kind()))?;
    let claims = Claims(&data.claims);

    let iss = claims.str("iss").unwrap_or_default();
    let Some(tenant) = config
        .tenants
        .iter()
        .find(|t| iss == config.v1_issuer(t) || iss == config.v2_issuer(t))
    else {
        return Err(AuthError::BadIssuer(printable(iss, 200)));
    };
    match claims.str("tid") {
        Some(tid) if tid == tenant => {}
        Some(tid) => {
            return Err(AuthError::BadTenant(format!(
                "tid {:?} differs from the issuer's tenant {tenant}",
                printable(tid, 64)
            )));
        }
        None => return Err(AuthError::BadTenant("token has no tid claim".into())),
    }
    if !entry.tenants.contains(tenant) {
        return Err(AuthError::BadTenant(format!(
            "the signing key is not published for tenant {tenant}"
        )));
    }

    let audiences = claims.set("aud");
    if !audiences.iter().any(|a| config.audiences.contains(a)) {
        let got: Vec<String> = audiences
            .iter()
            .take(4)
            .map(|a| printable(a, 100))
            .collect();
        return Err(AuthError::BadAudience(format!(
            "got {got:?}, expected one of {:?}",
            config.audiences
        )));
    }

    let Some(oid) = claims.text("oid") else {
        return Err(AuthError::Malformed("token has no oid claim".into()));
    };
    let principal =
        principal::from_claims(&claims, tenant, oid, &config.mfa_auth_contexts, source_ip);

    if !config.client_apps.is_empty() {
        let allowed = principal.client_app.as_deref().is_some_and(|app| {
            config
                .client_apps
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(app))
        });
        if !allowed {
            let app = principal.client_app.as_deref().unwrap_or("none");
            return Err(AuthError::ClientNotAllowed(printable(app, 64)));
        }
    }

    check_permission(config, &principal)?;

    if principal.groups_overage && config.groups_overage == GroupsOveragePolicy::Deny {
        return Err(AuthError::GroupsOverage);
    }
    if let Some(exp) = data.claims.get("exp").and_then(Value::as_u64) {
        verified.put(digest, &principal, exp, kid, entry, now);
    }
    Ok(principal)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The token of `Authorization: Bearer <token>`.
fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let Some(value) = authorization else {
        return Err(AuthError::Missing("no Authorization header"));
    };
    let value = value.trim_matches([' ', '\t']);
    let (scheme, token) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing("the Authorization scheme is not Bearer"));
    }
    let token = token.trim_start_matches([' ', '\t']);
    if token.is_empty() {
        return Err(AuthError::Missing("the Bearer credential is empty"));
    }
    Ok(token)
}

/// Splits the compact JWS and decodes its JOSE header. The signature may be
/// empty here (`alg: none`); it is rejected by the algorithm check.
fn parse_header(token: &str) -> Result<Map<String, Value>, AuthError> {
    let segments: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = segments.as_slice() else {
        return Err(AuthError::Malformed(format!(
            "expected 3 dot-separated segments, found {}",
            segments.len()
        )));
    };
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if header.is_empty() || payload.is_empty() {
        return Err(AuthError::Malformed(
            "empty header or payload segment".into(),
        ));
    }
    if ![header, payload, signature].iter().all(|s| base64url(s)) {
        return Err(AuthError::Malformed("segments are not base64url".into()));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed("header is not base64url".into()))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AuthError::Malformed("header is not a JSON object".into())),
    }
}

/// `alg` must be exactly RS256 and `kid` present; returns the `kid`.
fn check_header(header: &Map<String, Value>) -> Result<&str, AuthError> {
    match header.get("alg") {
        Some(Value::String(alg)) if alg == RS256 => {}
        Some(Value::String(alg)) => return Err(AuthError::BadAlg(printable(alg, 32))),
        Some(other) => return Err(AuthError::BadAlg(printable(&other.to_string(), 32))),
        None => return Err(AuthError::BadAlg("absent".into())),
    }
    if header.contains_key("crit") {
        return Err(AuthError::Malformed(
            "the crit header names extensions that are not supported".into(),
        ));
    }
    match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => Ok(kid),
        _ => Err(AuthError::MissingKid),
    }
}

fn map_jwt_error(kind: ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => AuthError::BadAlg(RS256.into()),
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::Malformed(format!("token has no {claim} claim"))
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            AuthError::Malformed(format!("the {claim} claim is not a number"))
        }
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => AuthError::Malformed("payload is not a JSON object".into()),
        // Key-format and provider errors: the signature could not be verified.
        _ => AuthError::BadSignature,
    }
}

/// A user token needs one of `required_scopes`; an app-only token one of
/// `required_app_roles` (each check skipped when its list is empty).
fn check_permission(config: &IdentityConfig, principal: &Principal) -> Result<(), AuthError> {
    match principal.kind {
        PrincipalKind::User => {
            if config.required_scopes.is_empty()
                || config
                    .required_scopes
                    .iter()
                    .any(|s| principal.scopes.contains(short_scope(s)))
            {
                Ok(())
            } else {
                Err(AuthError::InsufficientScope(format!(
                    "the token carries none of the required scopes ({})",
                    config.required_scopes.join(", ")
                )))
            }
        }
        PrincipalKind::Application => {
            if principal.roles.is_empty() && !config.allow_app_tokens_without_roles {
                return Err(AuthError::InsufficientScope(
                    "the app-only token carries no app role; Entra issues such tokens to any \
                     application in the tenant, so they are refused unless \
                     identity.allow_app_tokens_without_roles = true"
                        .into(),
                ));
            }
            if config.required_app_roles.is_empty()
                || config
                    .required_app_roles
                    .iter()
                    .any(|r| principal.roles.contains(r))
            {
                Ok(())
            } else {
                Err(AuthError::InsufficientScope(format!(
                    "the app-only token carries none of the required app roles ({})",
                    config.required_app_roles.join(", ")
                )))
            }
        }
    }
}

/// `scp` holds short scope names: `api://x/access_as_user` → `access_as_user`.
pub(crate) fn short_scope(scope: &str) -> &str {
    if scope.contains("://") {
        scope.rsplit('/').next().unwrap_or(scope)
    } else {
        scope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_parsing() {
        assert_eq!(bearer_token(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("bEaReR \t abc ")), Ok("abc"));
        assert_eq!(bearer_token(None).map_err(|e| e.reason()), Err("missing"));
        for value in ["Basic abc", "Bearer", "Bearer   ", "", "Bearerabc"] {
            assert_eq!(
                bearer_token(Some(value)).map_err(|e| e.reason()),
                Err("missing"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn header_checks() {
        let header = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let reason = |token: &str| {
            parse_header(token)
                .and_then(|h| check_header(&h).map(str::to_owned))
                .map_err(|e| e.reason())
        };
        assert_eq!(
            reason(&format!(
                "{}.e30.sig",
                header(r#"{"alg":"RS256","kid":"k"}"#)
            )),
            Ok("k".to_owned())
        );
        assert_eq!(
            reason(&format!("{}.e30.", header(r#"{"alg":"none"}"#))),
            Err("bad_alg")
        );
        assert_eq!(
            reason(&format!("{}.e30.x", header(r#"{"alg":"rs256","kid":"k"}"#))),
            Err("bad_alg")
        );
        assert_eq!(
            reason(&format!("{}.e30.x", header(r#"{"alg":["RS256"]}"#))),
            Err("bad_alg")
        );
        assert_eq!(
            reason(&format!("{}.e30.x", header(r#"{"kid":"k"}"#))),
            Err("bad_alg")
        );
        assert_eq!(
            reason(&format!("{}.e30.x", header(r#"{"alg":"RS256"}"#))),
            Err("missing_kid")
        );
        assert_eq!(
            reason(&format!("{}.e30.x", header(r#"{"alg":"RS256","kid":""}"#))),
            Err("missing_kid")
        );
        assert_eq!(
            reason(&format!(
                "{}.e30.x",
                header(r#"{"alg":"RS256","kid":"k","crit":["b64"]}"#)
            )),
            Err("malformed")
        );
        for garbage in [
            "",
            "a.b",
            "a.b.c.d",
            ".e30.x",
            "e30..x",
            "e30.e30.x y",
            "e30.e30.a+b",
            "bm90IGpzb24.e30.x",
        ] {
            assert_eq!(reason(garbage), Err("malformed"), "{garbage:?}");
        }
    }

    #[test]
    fn scope_short_forms() {
        assert_eq!(short_scope("access_as_user"), "access_as_user");
        assert_eq!(short_scope("api://warden/access_as_user"), "access_as_user");
        assert_eq!(
            short_scope("https://warden.example.com/Tools.Read"),
            "Tools.Read"
        );
    }
}
