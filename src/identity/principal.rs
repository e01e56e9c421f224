//! The authenticated caller, as facts read from a validated token: the
//! claims of a token mapped onto [`Principal`] (which the stages share from
//! [`crate::call`]).

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{Map, Value};

pub use crate::call::{ANONYMOUS, Principal, PrincipalKind};

/// Read access to the claims of a validated token. Claims of the wrong JSON
/// type are treated as absent.
pub(crate) struct Claims<'a>(pub &'a Map<String, Value>);

impl Claims<'_> {
    pub(crate) fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// A non-empty string claim.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.str(name).filter(|s| !s.is_empty())
    }

    /// The strings of an array claim; a single string counts as one element.
    pub(crate) fn set(&self, name: &str) -> BTreeSet<String> {
        match self.0.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) if !s.is_empty() => BTreeSet::from([s.clone()]),
            _ => BTreeSet::new(),
        }
    }

    /// A space-separated string claim (`scp`).
    pub(crate) fn words(&self, name: &str) -> BTreeSet<String> {
        self.str(name)
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// A NumericDate claim.
    pub(crate) fn seconds(&self, name: &str) -> Option<u64> {
        let value = self.0.get(name)?;
        value.as_u64().or_else(|| {
            value
                .as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        })
    }

    /// Entra replaced `groups` by a pointer to Graph (`_claim_names.groups`,
    /// JWT) or by `hasgroups: true` (implicit flow).
    pub(crate) fn groups_overage(&self) -> bool {
        let claim_names = self
            .0
            .get("_claim_names")
            .and_then(Value::as_object)
            .is_some_and(|names| names.contains_key("groups"));
        let hasgroups = matches!(self.0.get("hasgroups"), Some(Value::Bool(true)))
            || self.str("hasgroups") == Some("true");
        claim_names || hasgroups
    }
}

/// Builds the principal from validated claims. `tid` and `oid` were checked
/// by the caller.
pub(crate) fn from_claims(
    claims: &Claims<'_>,
    tid: &str,
    oid: &str,
    mfa_auth_contexts: &[String],
    source_ip: Option<IpAddr>,
) -> Principal {
    let scopes = claims.words("scp");
    let kind = if scopes.is_empty() || claims.str("idtyp") == Some("app") {
        PrincipalKind::Application
    } else {
        PrincipalKind::User
    };
    let display_name = ["upn", "preferred_username", "app_displayname", "name"]
        .iter()
        .find_map(|name| claims.text(name))
        .unwrap_or(oid)
        .to_owned();
    let groups_overage = claims.groups_overage();
    let groups = if groups_overage {
        BTreeSet::new()
    } else {
        claims.set("groups")
    };
    let acrs = claims.set("acrs");
    let mfa =
        claims.set("amr").contains("mfa") || mfa_auth_contexts.iter().any(|id| acrs.contains(id));
    // Entra writes `acct` (0 member, 1 guest) when asked to, and `idp` (the
    // issuer that authenticated the user) for guests; an app-only token's
    // `idp` is its own tenant's issuer.
    let guest = matches!(claims.0.get("acct"), Some(Value::Number(n)) if n.as_u64() == Some(1))
        || claims.str("acct") == Some("1")
        || claims.text("idp").is_some_and(|idp| !idp.contains(tid));
    let client_app = claims
        .text("azp")
        .or_else(|| claims.text("appid"))
        .map(str::to_owned);
    Principal {
        tid: tid.to_owned(),
        oid: oid.to_owned(),
        kind,
        display_name,
        groups,
        groups_overage,
        roles: claims.set("roles"),
        scopes,
        client_app,
        source_ip,
        ip_claim: claims.text("ipaddr").map(str::to_owned),
        token_id: claims.text("uti").map(str::to_owned),
        mfa,
        acrs,
        client_capabilities: claims.set("xms_cc"),
        issued_at: claims.seconds("iat"),
        expires_at: claims.seconds("exp"),
        grant: None,
        guest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn principal(claims: Value, contexts: &[&str]) -> Principal {
        let map = claims.as_object().cloned().unwrap_or_default();
        let contexts: Vec<String> = contexts.iter().map(|s| (*s).to_owned()).collect();
        from_claims(&Claims(&map), "t", "o", &contexts, None)
    }

    #[test]
    fn guests_are_told_by_acct_or_by_an_idp_of_another_tenant() {
        let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let guest = |claims: Value| {
            let map = claims.as_object().cloned().unwrap_or_default();
            from_claims(&Claims(&map), tid, "o", &[], None).guest
        };
        assert!(guest(json!({"scp": "x", "acct": 1})));
        assert!(guest(json!({"scp": "x", "acct": "1"})));
        assert!(!guest(json!({"scp": "x", "acct": 0})));
        assert!(guest(
            json!({"scp": "x", "idp": "https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/"})
        ));
        assert!(guest(json!({"scp": "x", "idp": "live.com"})));
        // An app-only token's idp is its own tenant's issuer.
        assert!(!guest(
            json!({"idp": format!("https://sts.windows.net/{tid}/")})
        ));
        assert!(!guest(json!({"scp": "x"})));
    }

    #[test]
    fn user_token_facts() {
        let p = principal(
            json!({
                "scp": "access_as_user  other",
                "upn": "ada@example.com",
                "name": "Ada",
                "groups": ["g1", "g2"],
                "roles": ["Reader"],
                "azp": "app-1",
                "ipaddr": "203.0.113.9",
                "uti": "abc",
                "xms_cc": ["cp1"],
                "iat": 100,
                "exp": 200.0,
            }),
            &[],
        );
        assert_eq!(p.kind, PrincipalKind::User);
        assert_eq!(p.display_name, "ada@example.com");
        assert_eq!(
            p.scopes,
            BTreeSet::from(["access_as_user".into(), "other".into()])
        );
        assert_eq!(p.groups.len(), 2);
        assert!(!p.groups_overage);
        assert_eq!(p.client_app.as_deref(), Some("app-1"));
        assert_eq!(p.ip_claim.as_deref(), Some("203.0.113.9"));
        assert_eq!(p.token_id.as_deref(), Some("abc"));
        assert!(p.client_capabilities.contains("cp1"));
        assert_eq!((p.issued_at, p.expires_at), (Some(100), Some(200)));
        assert_eq!(p.key(), ("t".to_owned(), "o".to_owned()));
        assert!(!p.mfa);
    }

    #[test]
    fn app_token_and_display_name_fallbacks() {
        let p = principal(
            json!({ "roles": ["Tools.Run"], "appid": "app-2", "app_displayname": "Bot" }),
            &[],
        );
        assert_eq!(p.kind, PrincipalKind::Application);
        assert_eq!(p.display_name, "Bot");
        assert_eq!(p.client_app.as_deref(), Some("app-2"));
        let p = principal(json!({ "scp": "x", "idtyp": "app" }), &[]);
        assert_eq!(p.kind, PrincipalKind::Application);
        let p = principal(json!({ "scp": "x", "upn": "" }), &[]);
        assert_eq!(p.display_name, "o");
    }

    #[test]
    fn mfa_from_amr_or_auth_context() {
        assert!(principal(json!({ "amr": ["pwd", "mfa"] }), &[]).mfa);
        assert!(!principal(json!({ "amr": ["pwd"] }), &["c1"]).mfa);
        assert!(principal(json!({ "acrs": ["c1"] }), &["c1"]).mfa);
        assert!(!principal(json!({ "acrs": ["c2"] }), &["c1"]).mfa);
    }

    #[test]
    fn groups_overage_indicators() {
        let p = principal(
            json!({ "_claim_names": { "groups": "src1" }, "_claim_sources": { "src1": {} }, "groups": ["g"] }),
            &[],
        );
        assert!(p.groups_overage);
        assert!(p.groups.is_empty());
        assert!(principal(json!({ "hasgroups": true }), &[]).groups_overage);
        assert!(!principal(json!({ "hasgroups": false }), &[]).groups_overage);
        assert!(!principal(json!({ "_claim_names": { "other": "src1" } }), &[]).groups_overage);
    }

    #[test]
    fn anonymous_principal() {
        let p = Principal::anonymous(Some(IpAddr::from([127, 0, 0, 1])));
        assert!(p.is_anonymous());
        assert_eq!(p.key(), (ANONYMOUS.to_owned(), ANONYMOUS.to_owned()));
        assert!(!p.mfa && p.groups.is_empty() && p.scopes.is_empty());
    }
}
