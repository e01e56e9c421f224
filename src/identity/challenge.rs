//! `WWW-Authenticate` challenges, RFC 9728 metadata and step-up.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::validate::short_scope;
use super::{AuthError, Authenticator, Principal, StepUp, StepUpMark};

/// Longest `error_description` sent to clients.
const MAX_DESCRIPTION: usize = 200;

impl Authenticator {
    /// The `WWW-Authenticate` value to send with `error.status()`, for a
    /// request whose `Authorization` header was `authorization`.
    ///
    /// * 401, no token (`missing`): `Bearer resource_metadata="…", scope="…"`
    ///   — no `error` parameter (RFC 6750 §3.1).
    /// * 401, bad token: the same plus `error="invalid_token",
    ///   error_description="…"`.
    /// * 403 `insufficient_scope`: `Bearer error="insufficient_scope",
    ///   scope="…", resource_metadata="…"`.
    /// * 403 `step_up` (MCP's step-up for a facade grant): `Bearer
    ///   error="insufficient_scope", scope="<the grant's scopes> <step-up
    ///   scope>", resource_metadata="…", error_description="…"`.
    /// * 403 `client_not_allowed` / `groups_overage`: `Bearer
    ///   resource_metadata="…", error_description="…"` (RFC 6750 has no
    ///   error code for them).
    /// * 503 `keys_unavailable`: `Bearer resource_metadata="…"`; sending it
    ///   is optional.
    ///
    /// `scope` lists the scopes a client must request, at the
    /// authorization server it will ask (MCP clients take the challenge's
    /// `scope` first), and is omitted when there are none:
    ///
    /// * OAuth facade off: Entra's required scopes, as a client requests
    ///   them (see [`protected_resource_metadata`](Self::protected_resource_metadata)).
    /// * mode `facade`: Warden's scopes (`oauth.scopes`). Warden is the
    ///   only authorization server in the metadata, so every client that
    ///   follows the challenge asks Warden, which refuses Entra's scopes
    ///   (`invalid_scope`). Clients that bring Entra tokens (agents,
    ///   pre-registered apps) get them from their own configuration.
    /// * mode `both`: Entra's scopes when the request carried an Entra
    ///   token (the client is on the Entra path: it renews its token at
    ///   Entra, with Entra's scopes), else Warden's (Warden is the first
    ///   authorization server listed, the one MCP clients pick).
    pub fn challenge(
        &self,
        error: &AuthError,
        authorization: Option<&str>,
        resource_metadata_url: &str,
    ) -> String {
        let metadata = param("resource_metadata", resource_metadata_url);
        let scope = scope_param(&self.challenge_scopes(authorization));
        match error {
            AuthError::InsufficientScope(_) => {
                let mut parts = vec![param("error", "insufficient_scope")];
                parts.extend(scope);
                parts.push(metadata);
                format!("Bearer {}", parts.join(", "))
            }
            AuthError::StepUpRequired(scopes) => {
                let mut parts = vec![param("error", "insufficient_scope")];
                parts.extend(scope_param(scopes));
                parts.push(metadata);
                parts.push(description(
                    "A call needs multi-factor authentication: authorize again with this scope.",
                ));
                format!("Bearer {}", parts.join(", "))
            }
            AuthError::ClientNotAllowed(_) | AuthError::GroupsOverage => {
                let detail = description(&error.to_string());
                format!("Bearer {metadata}, {detail}")
            }
            AuthError::KeysUnavailable(_) => format!("Bearer {metadata}"),
            AuthError::DuplicateHeader(_) => {
                let detail = description(&error.to_string());
                format!(
                    "Bearer {}, {metadata}, {detail}",
                    param("error", "invalid_request")
                )
            }
            _ => {
                let mut parts = vec![metadata];
                parts.extend(scope);
                if !matches!(error, AuthError::Missing(_)) {
                    parts.push(param("error", "invalid_token"));
                    parts.push(description(&error.to_string()));
                }
                format!("Bearer {}", parts.join(", "))
            }
        }
    }

    /// RFC 9728 protected resource metadata. `resource` is the URL derived
    /// from the request; `identity.resource`, when set, takes precedence.
    ///
    /// With the OAuth facade on, Warden is the first authorization server
    /// (the tenants stay listed after it in mode `both` only), and
    /// `scopes_supported` holds Warden's scopes and its step-up scope:
    /// MCP clients that find no `scope` in a challenge ask the first
    /// server for all of them. Clients on the Entra path in mode `both`
    /// take Entra's scopes from the challenges of their own requests (see
    /// [`challenge`](Self::challenge)).
    pub fn protected_resource_metadata(&self, resource: &str) -> Value {
        let resource = self.config.resource.as_deref().unwrap_or(resource);
        let tenants = self.config.tenants.iter().map(|t| self.config.v2_issuer(t));
        let (servers, scopes): (Vec<String>, Vec<String>) = match self.opaque() {
            Some(opaque) => {
                let issuer = std::iter::once(opaque.issuer());
                let servers = if opaque.keep_tenants() {
                    issuer.chain(tenants).collect()
                } else {
                    issuer.collect()
                };
                let mut scopes = opaque.scopes();
                scopes.extend(opaque.step_up_scope());
                (servers, scopes)
            }
            None => (tenants.collect(), self.advertised_scopes()),
        };
        json!({
            "resource": resource,
            "authorization_servers": servers,
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": "Warden",
        })
    }

    /// Asks for multi-factor authentication: through the first configured
    /// MFA authentication context (`identity.mfa_auth_contexts`), or, with
    /// none configured, a tool error asking for an MFA sign-in (v1 tokens
    /// then carry `amr: ["mfa"]`).
    ///
    /// A caller signed in through Warden's OAuth facade (`grant` set)
    /// never talks to Entra, so a claims challenge would reach nobody who
    /// can answer it: its grant is marked instead
    /// ([`StepUp::Reauthorize`]), the grant's next request gets MCP's
    /// step-up challenge ([`take_step_up`](Self::take_step_up)), and the
    /// client's new authorization with the step-up scope makes Warden ask
    /// Entra for the context.
    pub async fn step_up_mfa(&self, principal: &Principal, resource_metadata_url: &str) -> StepUp {
        let Some(context) = self.config.mfa_auth_contexts.first() else {
            return StepUp::ToolError {
                message: "This call requires multi-factor authentication. Sign in again with \
                          MFA and retry."
                    .to_owned(),
            };
        };
        if let Some(grant) = principal.grant.as_deref()
            && let Some(opaque) = self.opaque()
            && let Some(mark) = opaque.want_step_up(grant).await
        {
            let context = header_safe(context);
            let scope = opaque
                .step_up_scope()
                .map(|s| format!(" (scope \"{s}\")"))
                .unwrap_or_default();
            let needs = format!(
                "This call requires multi-factor authentication (Microsoft Entra \
                 authentication context {context})."
            );
            let message = match mark {
                StepUpMark::Marked => format!(
                    "{needs} Warden asks your MCP client to sign in again with MFA{scope} at its \
                     next request; retry the call after that sign-in."
                ),
                StepUpMark::AlreadyAsked => format!(
                    "{needs} Warden has asked your MCP client to sign in again with MFA{scope} \
                     and waits for that sign-in; retry the call after it."
                ),
            };
            return StepUp::Reauthorize { message };
        }
        self.step_up(principal, context, resource_metadata_url)
    }

    /// Asks for authentication context `auth_context` (e.g. `c1`).
    ///
    /// If the client declared `xms_cc = cp1` it handles Entra claims
    /// challenges: answer HTTP 401 with [`StepUp::Challenge`] (`claims` is
    /// standard padded base64 of
    /// `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`).
    /// Otherwise, and always for a caller signed in through Warden's OAuth
    /// facade (its client never talks to Entra), fail the tool call with
    /// [`StepUp::ToolError`], whose message says which sign-in is needed.
    pub fn step_up(
        &self,
        principal: &Principal,
        auth_context: &str,
        resource_metadata_url: &str,
    ) -> StepUp {
        let context = header_safe(auth_context);
        let is_mfa = self
            .config
            .mfa_auth_contexts
            .iter()
            .any(|c| c == auth_context);
        let (needs, how) = if is_mfa {
            (
                format!(
                    "multi-factor authentication (Microsoft Entra authentication context {context})"
                ),
                "Sign in again with MFA and retry",
            )
        } else {
            (
                format!(
                    "a sign-in that satisfies Microsoft Entra authentication context {context}"
                ),
                "Sign in again as that context requires (for example with MFA) and retry",
            )
        };
        if principal.grant.is_some() {
            StepUp::ToolError {
                message: format!("This call requires {needs}. {how}."),
            }
        } else if principal.client_capabilities.contains("cp1") {
            let claims = json!({
                "access_token": { "acrs": { "essential": true, "value": auth_context } }
            });
            let parts = [
                param("realm", ""),
                param("error", "insufficient_claims"),
                description(&format!("This call requires {needs}.")),
                param("claims", &STANDARD.encode(claims.to_string())),
                param("resource_metadata", resource_metadata_url),
            ];
            StepUp::Challenge {
                www_authenticate: format!("Bearer {}", parts.join(", ")),
            }
        } else {
            StepUp::ToolError {
                message: format!(
                    "This call requires {needs}. {how}; your client does not support claims \
                     challenges, so it must acquire a new token itself."
                ),
            }
        }
    }

    /// Required scopes as a client requests them: full URIs stay as they
    /// are; a short name is qualified with the first audience that is a URI
    /// (`api://warden` + `access_as_user` → `api://warden/access_as_user`),
    /// or left short if there is none.
    fn advertised_scopes(&self) -> Vec<String> {
        let base = self
            .config
            .audiences
            .iter()
            .find(|a| a.contains("://"))
            .map(|a| a.trim_end_matches('/'));
        self.config
            .required_scopes
            .iter()
            .map(|scope| match base {
                Some(base) if short_scope(scope) == scope.as_str() => format!("{base}/{scope}"),
                _ => scope.clone(),
            })
            .collect()
    }

    /// The scopes a challenge to a request with header `authorization`
    /// names (see [`challenge`](Self::challenge)).
    fn challenge_scopes(&self, authorization: Option<&str>) -> Vec<String> {
        let Some(opaque) = self.opaque() else {
            return self.advertised_scopes();
        };
        let token = authorization
            .and_then(|value| {
                value
                    .get(..7)
                    .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                    .map(|_| value.get(7..).unwrap_or_default().trim())
            })
            .filter(|token| !token.is_empty());
        match token {
            Some(token) if opaque.keep_tenants() && !opaque.claims(token) => {
                self.advertised_scopes()
            }
            _ => opaque.scopes(),
        }
    }
}

/// `scope="a b"`, or nothing for no scopes.
fn scope_param(scopes: &[String]) -> Option<String> {
    (!scopes.is_empty()).then(|| param("scope", &scopes.join(" ")))
}

/// `name="value"` with the value made safe for a quoted-string.
fn param(name: &str, value: &str) -> String {
    format!("{name}=\"{}\"", header_safe(value))
}

/// `error_description="…"`, at most `MAX_DESCRIPTION` characters.
fn description(text: &str) -> String {
    let short: String = header_safe(text).chars().take(MAX_DESCRIPTION).collect();
    format!("error_description=\"{short}\"")
}

/// Printable ASCII without `"` and `\`: safe inside a quoted-string of a
/// header value.
fn header_safe(value: &str) -> String {
    value
        .chars()
        .map(|c| if c == '"' { '\'' } else { c })
        .filter(|c| (c.is_ascii_graphic() || *c == ' ') && *c != '\\')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_cannot_break_out_of_quotes() {
        assert_eq!(header_safe("a\"b\\c\r\nd"), "a'bcd");
        assert_eq!(
            description(&"x".repeat(500)),
            format!("error_description=\"{}\"", "x".repeat(MAX_DESCRIPTION))
        );
        assert_eq!(param("scope", "a b"), "scope=\"a b\"");
    }
}
