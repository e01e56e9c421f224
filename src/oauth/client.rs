//! The client an authorization request names, once resolved: how its id
//! was recognised, what to show on the consent page, which redirect URIs
//! and grants it has.
//!
//! A `client_id` is told apart by its shape ([`ClientIdKind::of`]):
//! `https://…` is a Client ID Metadata Document URL ([`crate::oauth::cimd`]),
//! `wdc_…` a stateless dynamic registration ([`crate::oauth::dcr`]),
//! anything else a pre-registered client from `[[oauth.pre_registered]]`
//! (whose ids may not take either shape).

use super::config::PreRegisteredClient;
use super::dcr::CLIENT_ID_PREFIX;
use super::redirect::{RedirectError, RedirectUri, find_match, validate_registration};

/// What a `client_id` looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIdKind {
    /// A configured client.
    PreRegistered,
    /// An `https://` URL of a metadata document.
    MetadataDocument,
    /// A `wdc_` stateless registration.
    Dynamic,
}

impl ClientIdKind {
    /// Classifies a `client_id` by its shape alone.
    pub fn of(client_id: &str) -> Self {
        if client_id.starts_with("https://") {
            ClientIdKind::MetadataDocument
        } else if client_id.starts_with(CLIENT_ID_PREFIX) {
            ClientIdKind::Dynamic
        } else {
            ClientIdKind::PreRegistered
        }
    }
}

/// Where a resolved client's details come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSource {
    /// `[[oauth.pre_registered]]`: the operator vouches for it.
    PreRegistered,
    /// A metadata document served by `host` (show the host on the consent
    /// page).
    MetadataDocument {
        /// The document URL's host.
        host: String,
    },
    /// A dynamic registration: nothing about it is verified (say so).
    Dynamic {
        /// When it registered (Unix seconds).
        issued_at: i64,
    },
}

/// A resolved client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The `client_id` exactly as sent.
    pub id: String,
    /// The name it gave (`client_name`), if any.
    pub name: Option<String>,
    /// Its registered redirect URIs.
    pub redirect_uris: Vec<RedirectUri>,
    /// Whether it may use refresh tokens (`refresh_token` in its grant
    /// types; always for pre-registered clients).
    pub refresh_allowed: bool,
    /// Where its details come from.
    pub source: ClientSource,
}

/// Shown when a client gave no name.
pub const UNNAMED: &str = "Unnamed application";
/// Longest client name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A client name fit for the consent page: trimmed, 1 to
/// [`MAX_NAME_CHARS`] characters, no control characters and no invisible
/// or direction-changing ones (zero-width, bidi overrides and isolates)
/// that could make it read as another name. `None` if it is not.
pub fn display_safe_name(name: &str) -> Option<String> {
    let name = name.trim();
    let chars = name.chars().count();
    let bad = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
    };
    ((1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(bad)).then(|| name.to_owned())
}

impl Client {
    /// A configured client (its redirect URIs were checked by
    /// `OAuthConfig::validate`, and are checked again here).
    pub fn pre_registered(config: &PreRegisteredClient) -> Result<Self, RedirectError> {
        Ok(Self {
            id: config.client_id.clone(),
            name: Some(config.name.clone()),
            redirect_uris: validate_registration(&config.redirect_uris)?,
            refresh_allowed: true,
            source: ClientSource::PreRegistered,
        })
    }

    /// The registered URI `requested` matches, as the URI to redirect to.
    pub fn find_redirect(&self, requested: &str) -> Result<RedirectUri, RedirectError> {
        find_match(&self.redirect_uris, requested)
    }

    /// The name for the consent page.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(UNNAMED)
    }

    /// Every redirect URI is a loopback one: the consent page should warn
    /// that any program on the user's machine could be this client.
    pub fn loopback_only(&self) -> bool {
        self.redirect_uris.iter().all(RedirectUri::is_loopback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_client_ids() {
        assert_eq!(
            ClientIdKind::of("https://vscode.dev/oauth/client-metadata.json"),
            ClientIdKind::MetadataDocument
        );
        assert_eq!(ClientIdKind::of("wdc_AbC"), ClientIdKind::Dynamic);
        assert_eq!(ClientIdKind::of("ops-cli"), ClientIdKind::PreRegistered);
        // an http URL is no metadata document (and no valid pre-registered
        // id either: configuration refuses "://")
        assert_eq!(
            ClientIdKind::of("http://vscode.dev/doc"),
            ClientIdKind::PreRegistered
        );
        assert_eq!(ClientIdKind::of("WDC_x"), ClientIdKind::PreRegistered);
        assert_eq!(ClientIdKind::of("HTTPS://x"), ClientIdKind::PreRegistered);
    }

    #[test]
    fn pre_registered_client() {
        let client = Client::pre_registered(&PreRegisteredClient {
            client_id: "ops-cli".into(),
            name: "Ops".into(),
            redirect_uris: vec!["http://127.0.0.1/cb".into()],
        })
        .unwrap();
        assert_eq!(client.display_name(), "Ops");
        assert!(client.refresh_allowed);
        assert!(client.loopback_only());
        assert_eq!(
            client
                .find_redirect("http://127.0.0.1:5555/cb")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:5555/cb"
        );
        assert_eq!(
            client.find_redirect("http://localhost:5555/cb"),
            Err(RedirectError::NotRegistered)
        );
        assert!(
            Client::pre_registered(&PreRegisteredClient {
                client_id: "x".into(),
                name: "X".into(),
                redirect_uris: vec!["http://evil.example/cb".into()],
            })
            .is_err()
        );
    }

    #[test]
    fn display_names() {
        assert_eq!(
            display_safe_name("  Visual Studio Code "),
            Some("Visual Studio Code".into())
        );
        assert_eq!(display_safe_name(&"é".repeat(100)), Some("é".repeat(100)));
        for bad in [
            "",
            "   ",
            "a\nb",
            "a\u{0}",
            "a\u{7f}",
            "Claude\u{202e}edoC",
            "Visual\u{200b}Studio",
            "x\u{2066}y",
            "\u{feff}VS Code",
            &"n".repeat(101),
        ] {
            assert_eq!(display_safe_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unnamed_and_mixed_redirects() {
        let client = Client {
            id: "wdc_x".into(),
            name: None,
            redirect_uris: validate_registration(&[
                "http://127.0.0.1/cb",
                "https://app.example/cb",
            ])
            .unwrap(),
            refresh_allowed: false,
            source: ClientSource::Dynamic { issued_at: 0 },
        };
        assert_eq!(client.display_name(), UNNAMED);
        assert!(!client.loopback_only());
    }
}
