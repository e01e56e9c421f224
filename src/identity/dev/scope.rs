//! Entra v2 scopes for delegated (user) tokens: parsing the `scope`
//! parameter of the authorization and token endpoints, Entra's rules about
//! it, and what a token for one resource carries (`scp`, the answer's
//! `scope`).
//!
//! A scope is an OpenID Connect scope (`openid`, `profile`, `email`,
//! `offline_access`) or a permission of a resource: `{resource}/{name}`,
//! where the resource is an application ID URI (`api://warden-dev`,
//! `https://management.azure.com`, with a trailing slash kept:
//! `https://management.azure.com//.default`) or an application id, and a
//! name without a resource means Microsoft Graph (`User.Read`). The name
//! `.default` stands for every permission the client was granted on that
//! resource; the dev issuer grants [`super::DEV_SCOPE`] on
//! [`super::DEV_AUDIENCE`], `User.Read` on Graph and `user_impersonation`
//! on any other resource.

use super::entra_error::EntraError;
use super::{DEV_AUDIENCE, DEV_SCOPE};

/// Microsoft Graph's application ID URI: the resource of scopes given
/// without one, and of the access token of a sign-in that asked for
/// OpenID Connect scopes only.
pub(super) const GRAPH: &str = "https://graph.microsoft.com";

/// The OpenID Connect scopes, as Entra spells them.
const OIDC: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// A permission of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResourceScope {
    /// The resource as written (`api://warden-dev`).
    pub(super) resource: String,
    /// The permission (`access_as_user`, `.default`).
    pub(super) name: String,
}

/// A parsed `scope` parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Scopes {
    /// OpenID Connect scopes, lower case, in [`OIDC`] order.
    pub(super) oidc: Vec<&'static str>,
    /// Resource permissions, in request order, without repeats.
    pub(super) resource: Vec<ResourceScope>,
}

impl Scopes {
    /// Parses a `scope` parameter (space-separated) with Entra's rules:
    /// AADSTS900144 when it is absent or empty; AADSTS70011 for a
    /// malformed scope, `.default` beside another permission of the same
    /// resource, or `offline_access` without `openid` or a resource scope.
    pub(super) fn parse(text: Option<&str>) -> Result<Scopes, EntraError> {
        let text = text.unwrap_or_default();
        if text.trim().is_empty() {
            return Err(EntraError::missing("scope"));
        }
        let mut scopes = Scopes::default();
        for word in text.split_whitespace() {
            if let Some(oidc) = OIDC.iter().find(|s| s.eq_ignore_ascii_case(word)) {
                if !scopes.oidc.contains(oidc) {
                    scopes.oidc.push(oidc);
                }
                continue;
            }
            let scope = resource_scope(word).ok_or_else(|| {
                invalid(text, &format!("The scope '{word}' is not a valid scope."))
            })?;
            if !scopes.resource.contains(&scope) {
                scopes.resource.push(scope);
            }
        }
        scopes
            .oidc
            .sort_by_key(|s| OIDC.iter().position(|o| o == s));
        for resource in scopes.resources() {
            let names: Vec<&str> = scopes.names_on(resource).collect();
            if names.contains(&".default") && names.len() > 1 {
                return Err(invalid(
                    text,
                    &format!(
                        "'.default' cannot be combined with other scopes of resource \
                         '{resource}'."
                    ),
                ));
            }
        }
        if scopes.oidc.contains(&"offline_access")
            && !scopes.oidc.contains(&"openid")
            && scopes.resource.is_empty()
        {
            return Err(invalid(
                text,
                "'offline_access' must be requested with 'openid' or a resource scope.",
            ));
        }
        Ok(scopes)
    }

    /// Parses the `scope` of a token request: as [`parse`](Self::parse),
    /// and the resource scopes must be of one resource (AADSTS28000).
    pub(super) fn parse_for_token(text: &str) -> Result<Scopes, EntraError> {
        let scopes = Self::parse(Some(text))?;
        if scopes.resources().len() > 1 {
            return Err(EntraError::new(
                "invalid_scope",
                28000,
                format!(
                    "Provided value for the input parameter scope is not valid because it \
                     contains more than one resource. Scope {text} is not valid."
                ),
            ));
        }
        Ok(scopes)
    }

    /// The resources, in request order.
    pub(super) fn resources(&self) -> Vec<&str> {
        let mut resources: Vec<&str> = Vec::new();
        for scope in &self.resource {
            if !resources.contains(&scope.resource.as_str()) {
                resources.push(&scope.resource);
            }
        }
        resources
    }

    /// The resource of the access token: the first one asked for, or
    /// Microsoft Graph when only OpenID Connect scopes were.
    pub(super) fn token_resource(&self) -> &str {
        self.resources().first().copied().unwrap_or(GRAPH)
    }

    pub(super) fn has(&self, oidc: &str) -> bool {
        self.oidc.contains(&oidc)
    }

    fn names_on<'a>(&'a self, resource: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.resource
            .iter()
            .filter(move |s| s.resource == resource)
            .map(|s| s.name.as_str())
    }

    /// The permissions granted on `resource`, `.default` expanded (see the
    /// module docs): the access token's `scp`, as a list.
    pub(super) fn granted_on(&self, resource: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for name in self.names_on(resource) {
            let name = if name == ".default" {
                default_permission(resource)
            } else {
                name
            };
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        if names.is_empty() && resource == GRAPH {
            // A sign-in with OpenID Connect scopes only: Entra's access
            // token is for Graph, with `User.Read`.
            names.push("User.Read".to_owned());
        }
        names
    }

    /// Whether every resource permission in `requested` was granted here
    /// (`.default` on a resource grants all of its permissions, and any
    /// permission grants `.default`). OpenID Connect scopes are not
    /// compared: they are about the sign-in, not a resource.
    pub(super) fn covers(&self, requested: &Scopes) -> bool {
        requested.resource.iter().all(|scope| {
            let granted: Vec<&str> = self.names_on(&scope.resource).collect();
            granted.contains(&".default")
                || (!granted.is_empty() && scope.name == ".default")
                || granted.contains(&scope.name.as_str())
        })
    }

    /// The answer's `scope`: the permissions on `resource`, resource
    /// qualified, then the OpenID Connect scopes of `sign_in`.
    pub(super) fn answer(&self, resource: &str, sign_in: &Scopes) -> String {
        let mut words: Vec<String> = self
            .granted_on(resource)
            .into_iter()
            .map(|name| {
                if resource == GRAPH {
                    name
                } else {
                    format!("{resource}/{name}")
                }
            })
            .collect();
        words.extend(sign_in.oidc.iter().map(|s| (*s).to_owned()));
        words.join(" ")
    }
}

/// What `.default` grants on `resource` in the dev tenant.
fn default_permission(resource: &str) -> &'static str {
    if resource == DEV_AUDIENCE {
        DEV_SCOPE
    } else if resource == GRAPH {
        "User.Read"
    } else {
        "user_impersonation"
    }
}

/// `{resource}/{name}`, or a Graph permission for a bare name.
fn resource_scope(word: &str) -> Option<ResourceScope> {
    let valid_name = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c))
    };
    if !word.contains('/') {
        return valid_name(word).then(|| ResourceScope {
            resource: GRAPH.to_owned(),
            name: word.to_owned(),
        });
    }
    let (resource, name) = word.rsplit_once('/')?;
    if !valid_name(name) || word.chars().any(char::is_control) {
        return None;
    }
    // An application ID URI has a host (`api://warden-dev/x`, not
    // `api://x`); anything else before the last slash is an application id.
    if let Some((_, rest)) = resource.split_once("://") {
        if rest.is_empty() {
            return None;
        }
    } else if resource.is_empty() || resource.contains('/') {
        return None;
    }
    Some(ResourceScope {
        resource: resource.to_owned(),
        name: name.to_owned(),
    })
}

/// `invalid_scope`, AADSTS70011.
fn invalid(text: &str, reason: &str) -> EntraError {
    EntraError::new(
        "invalid_scope",
        70011,
        format!(
            "The provided request must include a 'scope' input parameter. The provided value \
             for the input parameter 'scope' is not valid. The scope '{text}' is not valid. \
             {reason}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> u32 {
        Scopes::parse(Some(text)).unwrap_err().code
    }

    #[test]
    fn resource_and_oidc_scopes_are_told_apart() {
        let scopes = Scopes::parse(Some(
            "offline_access api://warden-dev/access_as_user OpenID profile",
        ))
        .unwrap();
        assert_eq!(scopes.oidc, ["openid", "profile", "offline_access"]);
        assert_eq!(scopes.resources(), ["api://warden-dev"]);
        assert_eq!(scopes.token_resource(), "api://warden-dev");
        assert_eq!(scopes.granted_on("api://warden-dev"), ["access_as_user"]);
        assert_eq!(
            scopes.answer("api://warden-dev", &scopes),
            "api://warden-dev/access_as_user openid profile offline_access"
        );
    }

    #[test]
    fn defaults_trailing_slashes_and_graph() {
        let scopes =
            Scopes::parse(Some("https://management.azure.com//.default User.Read")).unwrap();
        assert_eq!(
            scopes.resources(),
            [
                "https://management.azure.com/",
                "https://graph.microsoft.com"
            ]
        );
        assert_eq!(
            scopes.granted_on("https://management.azure.com/"),
            ["user_impersonation"]
        );
        assert_eq!(scopes.granted_on(GRAPH), ["User.Read"]);
        let default = Scopes::parse(Some("api://warden-dev/.default")).unwrap();
        assert_eq!(default.granted_on(DEV_AUDIENCE), [DEV_SCOPE]);

        let sign_in_only = Scopes::parse(Some("openid profile")).unwrap();
        assert_eq!(sign_in_only.token_resource(), GRAPH);
        assert_eq!(sign_in_only.granted_on(GRAPH), ["User.Read"]);
    }

    #[test]
    fn entra_refusals() {
        assert_eq!(Scopes::parse(None).unwrap_err().code, 900144);
        assert_eq!(Scopes::parse(Some("  ")).unwrap_err().code, 900144);
        assert_eq!(
            code("api://warden-dev/.default api://warden-dev/access_as_user"),
            70011
        );
        assert_eq!(code("offline_access"), 70011);
        assert_eq!(code("offline_access profile"), 70011);
        assert_eq!(code("api://warden-dev"), 70011);
        assert_eq!(code("api:///x"), 70011);
        assert_eq!(code("a/b/"), 70011);
        // `.default` of one resource beside a permission of another is fine.
        Scopes::parse(Some(
            "api://warden-dev/.default https://management.azure.com/user_impersonation",
        ))
        .unwrap();
        Scopes::parse(Some("offline_access openid")).unwrap();
        Scopes::parse(Some("offline_access api://warden-dev/access_as_user")).unwrap();
        let error = Scopes::parse_for_token("api://a/x api://b/y").unwrap_err();
        assert_eq!((error.error, error.code), ("invalid_scope", 28000));
    }

    #[test]
    fn consent_covers_what_was_granted() {
        let granted = Scopes::parse(Some(
            "api://warden-dev/access_as_user https://management.azure.com/.default openid",
        ))
        .unwrap();
        let asks = |text: &str| granted.covers(&Scopes::parse(Some(text)).unwrap());
        assert!(asks("api://warden-dev/access_as_user offline_access"));
        assert!(asks("api://warden-dev/.default"));
        assert!(asks("https://management.azure.com/user_impersonation"));
        assert!(!asks("api://warden-dev/other"));
        assert!(!asks("api://elsewhere/.default"));
    }
}
