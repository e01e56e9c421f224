//! The OpenID Connect `claims` request parameter, as Entra uses it: a
//! client asks for an authentication context (step-up) with
//! `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`, and
//! declares that it handles claims challenges with
//! `{"access_token":{"xms_cc":{"values":["cp1"]}}}`.
//!
//! The dev issuer's users satisfy every authentication context asked for
//! (there is no second factor to prompt for): the tokens of the sign-in
//! carry the contexts in `acrs`. Other requested claims are ignored, as
//! Entra ignores claims it does not know.

use serde_json::Value;

use super::entra_error::EntraError;

/// What a `claims` parameter asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ClaimsRequest {
    /// Authentication context ids (`c1` … `c99`), in request order.
    pub(super) acrs: Vec<String>,
    /// Client capabilities (`cp1`).
    pub(super) xms_cc: Vec<String>,
}

impl ClaimsRequest {
    /// Parses the parameter; `None` or an empty value asks for nothing.
    /// `acrs` and `xms_cc` are read from the `access_token` and `id_token`
    /// members, each as `value` or `values`. Anything that is not a JSON
    /// object, or an authentication context that is not `c1` … `c99`, is
    /// `invalid_request`.
    pub(super) fn parse(text: Option<&str>) -> Result<ClaimsRequest, EntraError> {
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return Ok(ClaimsRequest::default());
        };
        let refuse = |why: &str| {
            EntraError::malformed(&format!("The 'claims' parameter is not valid: {why}."))
        };
        let Ok(Value::Object(request)) = serde_json::from_str::<Value>(text) else {
            return Err(refuse("it must be a JSON object"));
        };
        let mut claims = ClaimsRequest::default();
        for token in ["access_token", "id_token"] {
            let Some(members) = request.get(token) else {
                continue;
            };
            let Value::Object(members) = members else {
                return Err(refuse(&format!("'{token}' must be an object")));
            };
            for value in requested_values(members.get("acrs")) {
                if !is_auth_context(&value) {
                    return Err(refuse(&format!(
                        "'{}' is not an authentication context id (c1 to c99)",
                        value.escape_debug()
                    )));
                }
                push_new(&mut claims.acrs, value);
            }
            for value in requested_values(members.get("xms_cc")) {
                if value.is_empty()
                    || value.len() > 16
                    || !value.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    return Err(refuse("a client capability must be a short word"));
                }
                push_new(&mut claims.xms_cc, value);
            }
        }
        Ok(claims)
    }
}

/// The `value` and `values` of one requested claim (`null` asks for the
/// claim with no particular value: nothing here).
fn requested_values(claim: Option<&Value>) -> Vec<String> {
    let Some(Value::Object(claim)) = claim else {
        return Vec::new();
    };
    let mut values: Vec<String> = Vec::new();
    if let Some(Value::String(value)) = claim.get("value") {
        values.push(value.clone());
    }
    if let Some(Value::Array(items)) = claim.get("values") {
        values.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    values
}

/// `c1` … `c99`, Entra's authentication context ids.
fn is_auth_context(value: &str) -> bool {
    value.strip_prefix('c').is_some_and(|digits| {
        (1..=2).contains(&digits.len())
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

fn push_new(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_up_and_client_capabilities() {
        let claims = ClaimsRequest::parse(Some(
            r#"{"access_token":{"acrs":{"essential":true,"value":"c1"},"xms_cc":{"values":["cp1"]}},
                "id_token":{"acrs":{"values":["c2","c1"]}}}"#,
        ))
        .unwrap();
        assert_eq!(claims.acrs, ["c1", "c2"]);
        assert_eq!(claims.xms_cc, ["cp1"]);
        assert_eq!(
            ClaimsRequest::parse(None).unwrap(),
            ClaimsRequest::default()
        );
        assert_eq!(
            ClaimsRequest::parse(Some(r#"{"userinfo":{"email":null}}"#)).unwrap(),
            ClaimsRequest::default()
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        for text in [
            "not json",
            "[1]",
            r#"{"access_token":1}"#,
            r#"{"access_token":{"acrs":{"value":"c100"}}}"#,
            r#"{"access_token":{"acrs":{"value":"c01"}}}"#,
            r#"{"access_token":{"acrs":{"value":"<b>"}}}"#,
            r#"{"access_token":{"xms_cc":{"values":["cp 1"]}}}"#,
        ] {
            let error = ClaimsRequest::parse(Some(text)).unwrap_err();
            assert_eq!(
                (error.error, error.code),
                ("invalid_request", 9002313),
                "{text}"
            );
        }
        assert!(is_auth_context("c99"));
        assert!(!is_auth_context("c0"));
        assert!(!is_auth_context("c+1"));
    }
}
