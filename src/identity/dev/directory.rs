//! The dev tenant's directory: its users (the personas of `warden dev`),
//! whether each may sign in, and the redirect URIs and certificate
//! credentials registered for the confidential client
//! [`super::DEV_CONFIDENTIAL_CLIENT`].

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::sha2::{Digest as _, Sha256};
use url::Url;
use x509_cert::der::{Decode as _, Encode as _};

use super::{DevError, DevIssuer};

/// A user of the dev tenant. Their tokens carry `roles` (on tokens for
/// [`super::DEV_AUDIENCE`] and in ID tokens), `groups`, and, with `mfa`,
/// a multi-factor sign-in ([`super::DEV_MFA_AUTH_CONTEXT`] in `acrs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevUser {
    /// Short name (`developer`): what `login_hint` and the persona
    /// picker use. Unique, compared without case.
    pub name: String,
    /// User principal name (`dana.developer@contoso.dev`): `upn` /
    /// `preferred_username`, and `oid` is derived from it. Also accepted
    /// as `login_hint`.
    pub user: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub mfa: bool,
    /// A disabled account cannot sign in (AADSTS50057), and its refresh
    /// tokens stop working.
    pub disabled: bool,
}

/// The directory state shared by the clones of a [`DevIssuer`].
#[derive(Debug, Default)]
pub(super) struct Directory {
    users: Vec<DevUser>,
    /// The confidential client's redirect URIs, parsed.
    redirect_uris: Vec<Url>,
    /// The confidential client's certificate credentials.
    certificates: Vec<ClientKey>,
}

/// A certificate credential of the confidential client: what verifies its
/// client assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ClientKey {
    /// `x5t#S256`: base64url SHA-256 of the certificate's DER.
    pub(super) thumbprint: String,
    /// The certificate's RSA public key.
    pub(super) public: RsaPublicKey,
}

impl Directory {
    /// The user whose name or user principal name is `hint` (no case).
    pub(super) fn user(&self, hint: &str) -> Option<&DevUser> {
        self.users.iter().find(|u| {
            u.name.eq_ignore_ascii_case(hint.trim()) || u.user.eq_ignore_ascii_case(hint.trim())
        })
    }

    pub(super) fn users(&self) -> &[DevUser] {
        &self.users
    }

    /// The registered certificate whose `x5t#S256` is `thumbprint`.
    pub(super) fn client_key(&self, thumbprint: &str) -> Option<&ClientKey> {
        self.certificates
            .iter()
            .find(|k| k.thumbprint == thumbprint)
    }

    /// Whether `requested` is a registered redirect URI. Exact match,
    /// except that for a loopback `http` URI the port is ignored (RFC 8252
    /// §7.3, as Entra does): `http://127.0.0.1/cb` registered allows
    /// `http://127.0.0.1:53119/cb`. The host must be the same literal
    /// (`localhost` is not `127.0.0.1`).
    pub(super) fn redirect_allowed(&self, requested: &Url) -> bool {
        self.redirect_uris.iter().any(|registered| {
            if is_loopback_http(registered) && is_loopback_http(requested) {
                registered.host_str() == requested.host_str()
                    && registered.path() == requested.path()
                    && registered.query() == requested.query()
                    && requested.fragment().is_none()
                    && requested.username().is_empty()
                    && requested.password().is_none()
            } else {
                registered == requested
            }
        })
    }
}

fn is_loopback_http(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        }
}

/// The certificate of a PEM text (its first `CERTIFICATE` block; a private
/// key beside it is ignored), as a client key, or why not.
fn client_key(certificate_pem: &str) -> Result<ClientKey, String> {
    let blocks = pem::parse_many(certificate_pem).map_err(|e| format!("not PEM: {e}"))?;
    let der = blocks
        .iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.contents())
        .ok_or("no PEM CERTIFICATE block")?;
    let certificate = x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let spki = certificate
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    let public = RsaPublicKey::from_public_key_der(&spki)
        .map_err(|_| "the certificate's key is not an RSA key".to_owned())?;
    Ok(ClientKey {
        thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(der)),
        public,
    })
}

/// Checks a redirect URI for registration: `https`, or `http` on a
/// loopback host; no fragment, user name or wildcard. A URI without a
/// path gets `/`, as Entra stores it.
fn registrable(uri: &str) -> Result<Url, String> {
    let url = Url::parse(uri.trim()).map_err(|e| e.to_string())?;
    if url.scheme() != "https" && !is_loopback_http(&url) {
        return Err("use https, or http on a loopback host (127.0.0.1, [::1], localhost)".into());
    }
    if url.host().is_none() {
        return Err("it has no host".into());
    }
    if url.fragment().is_some() {
        return Err("a redirect URI has no fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a redirect URI has no user name or password".into());
    }
    if url.as_str().contains('*') {
        return Err("wildcards are not allowed".into());
    }
    Ok(url)
}

impl DevIssuer {
    /// Registers `uri` as a redirect URI of the confidential client
    /// ([`DEV_CONFIDENTIAL_CLIENT`](super::DEV_CONFIDENTIAL_CLIENT)): the
    /// authorization endpoint sends codes only to registered URIs
    /// (matching: exact, except any port
    /// on a loopback `http` URI). Applies at once to every clone and
    /// router of this issuer.
    pub fn allow_redirect(&self, uri: &str) -> Result<(), DevError> {
        let url = registrable(uri).map_err(|reason| DevError::RedirectUri {
            uri: uri.to_owned(),
            reason,
        })?;
        let mut directory = self.write_directory();
        if !directory.redirect_uris.contains(&url) {
            directory.redirect_uris.push(url);
        }
        Ok(())
    }

    /// Registers a certificate credential (PEM; the first `CERTIFICATE`
    /// block, as uploaded to an app registration) for the confidential
    /// client: the token endpoint then accepts its client assertions
    /// (`private_key_jwt`) whose `x5t#S256` names this certificate, beside
    /// the client secret. Returns that thumbprint. Applies at once to every
    /// clone and router of this issuer; registering it again changes
    /// nothing.
    pub fn add_client_certificate(&self, certificate_pem: &str) -> Result<String, DevError> {
        let key = client_key(certificate_pem).map_err(DevError::ClientCertificate)?;
        let thumbprint = key.thumbprint.clone();
        let mut directory = self.write_directory();
        if directory.client_key(&thumbprint).is_none() {
            directory.certificates.push(key);
        }
        Ok(thumbprint)
    }

    /// Removes the certificate credential with `x5t#S256` `thumbprint`;
    /// whether there was one.
    pub fn remove_client_certificate(&self, thumbprint: &str) -> bool {
        let mut directory = self.write_directory();
        let before = directory.certificates.len();
        directory
            .certificates
            .retain(|k| k.thumbprint != thumbprint);
        directory.certificates.len() != before
    }

    /// The `x5t#S256` thumbprints of the registered certificates.
    pub fn client_certificates(&self) -> Vec<String> {
        self.read_directory()
            .certificates
            .iter()
            .map(|k| k.thumbprint.clone())
            .collect()
    }

    /// The registered redirect URIs, as stored (a path-less URI has `/`).
    pub fn redirect_uris(&self) -> Vec<String> {
        self.read_directory()
            .redirect_uris
            .iter()
            .map(Url::to_string)
            .collect()
    }

    /// Adds a user to the tenant, or replaces the one with the same name.
    pub fn add_user(&self, user: DevUser) -> Result<(), DevError> {
        let name_ok = !user.name.is_empty()
            && user
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
        if !name_ok || user.user.trim().is_empty() {
            return Err(DevError::BadUser(user.name));
        }
        let mut directory = self.write_directory();
        match directory
            .users
            .iter_mut()
            .find(|u| u.name.eq_ignore_ascii_case(&user.name))
        {
            Some(existing) => *existing = user,
            None => directory.users.push(user),
        }
        Ok(())
    }

    /// The tenant's users, in the order they were added.
    pub fn users(&self) -> Vec<DevUser> {
        self.read_directory().users().to_vec()
    }

    /// Disables (`enabled = false`) or enables a user, by name or user
    /// principal name. A disabled user cannot sign in, and the next
    /// refresh of their tokens fails with `invalid_grant` (AADSTS50057).
    pub fn set_user_enabled(&self, name: &str, enabled: bool) -> Result<(), DevError> {
        let mut directory = self.write_directory();
        let user = directory
            .users
            .iter_mut()
            .find(|u| u.name.eq_ignore_ascii_case(name) || u.user.eq_ignore_ascii_case(name))
            .ok_or_else(|| DevError::UnknownUser(name.to_owned()))?;
        user.disabled = !enabled;
        Ok(())
    }

    pub(super) fn read_directory(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        self.directory.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_directory(&self) -> std::sync::RwLockWriteGuard<'_, Directory> {
        self.directory.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(uris: &[&str]) -> Directory {
        Directory {
            users: Vec::new(),
            redirect_uris: uris.iter().map(|u| registrable(u).unwrap()).collect(),
            certificates: Vec::new(),
        }
    }

    fn allowed(directory: &Directory, uri: &str) -> bool {
        directory.redirect_allowed(&Url::parse(uri).unwrap())
    }

    #[test]
    fn redirect_uris_match_exactly_except_loopback_ports() {
        let d = directory(&[
            "https://warden.example/oauth/callback",
            "http://127.0.0.1/cb",
            "http://localhost:8787",
        ]);
        assert!(allowed(&d, "https://warden.example/oauth/callback"));
        assert!(allowed(&d, "HTTPS://WARDEN.example/oauth/callback"));
        assert!(!allowed(&d, "https://warden.example/oauth/callback/"));
        assert!(!allowed(&d, "https://warden.example/oauth/Callback"));
        assert!(!allowed(&d, "https://warden.example:8443/oauth/callback"));
        assert!(!allowed(&d, "https://warden.example/oauth/callback?x=1"));
        assert!(!allowed(&d, "https://warden.example/oauth/callback#x"));
        assert!(!allowed(&d, "https://evil.example/oauth/callback"));
        assert!(allowed(&d, "http://127.0.0.1:53119/cb"));
        assert!(allowed(&d, "http://127.0.0.1/cb"));
        assert!(!allowed(&d, "http://localhost:53119/cb"));
        assert!(!allowed(&d, "http://127.0.0.1:53119/cb/x"));
        assert!(!allowed(&d, "http://user@127.0.0.1:53119/cb"));
        // A path-less URI is stored with `/`.
        assert!(allowed(&d, "http://localhost:9/"));
        assert!(allowed(&d, "http://localhost"));
    }

    #[test]
    fn only_safe_redirect_uris_register() {
        assert!(registrable("https://warden.example/cb").is_ok());
        assert!(registrable("http://[::1]:9/cb").is_ok());
        for bad in [
            "http://warden.example/cb",
            "https://warden.example/cb#frag",
            "https://user@warden.example/cb",
            "https://*.example/cb",
            "not a url",
            "javascript:alert(1)",
        ] {
            assert!(registrable(bad).is_err(), "{bad}");
        }
    }
}
