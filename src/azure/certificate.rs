//! A service principal's certificate credential: an X.509 certificate and
//! its RSA private key, read from PEM files once at start-up
//! ([`ClientCertificate::load`]), and the client assertions it signs for
//! Entra ID's token endpoint ([`ClientCertificate::assertion`]: OpenID
//! Connect's `private_key_jwt`, sent as `client_assertion` with
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`).
//!
//! Used by the `kind = "client_certificate"` credential of both
//! `[azure.credential]` ([`super::credential`]) and
//! `[oauth.entra.credential]` (`crate::oauth::entra`).
//!
//! **Files.** `certificate_file` holds the certificate as a PEM
//! `CERTIFICATE` block (the first one is used: a chain after it is
//! ignored) and, unless `private_key_file` is given, the private key too
//! (as Azure Key Vault exports a PEM certificate). The key is an
//! unencrypted `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1) block.
//! Loading refuses, naming the setting and the file: a missing or
//! unreadable file, no certificate, no private key or more than one, an
//! encrypted key, a key that is not RSA (Entra ID signs client assertions
//! with RSA only), an RSA key shorter than 2048 bits, and a key that does
//! not belong to the certificate. An expired certificate is loaded with a
//! warning in the log (Entra ID refuses it with AADSTS700027).
//!
//! **Assertion** (Microsoft identity platform "certificate credentials"):
//! header `alg = PS256`, `typ = JWT`, `x5t#S256` = the base64url SHA-256
//! of the certificate's DER encoding ([`thumbprint_s256`]); claims `aud` =
//! the token endpoint the request goes to, `iss` = `sub` = the
//! application (client) id, a random `jti`, `nbf` = `iat` = now, `exp` =
//! now + [`ASSERTION_LIFETIME`]. A new one is signed for every token
//! request. Nothing here logs or displays the key or an assertion.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
use rsa::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use rsa::traits::PublicKeyParts as _;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::{Digest as _, Sha256};
use x509_cert::der::{Decode as _, Encode as _};

/// `exp - nbf` of an assertion: Entra ID advises 5 to 10 minutes at most.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// Shortest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// `rsaEncryption`.
const RSA_OID: &str = "1.2.840.113549.1.1.1";

/// Why a certificate credential cannot be loaded: `{key} {path}: {message}`,
/// `key` being `certificate_file` or `private_key_file`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} {}: {message}", path.display())]
pub struct CertificateError {
    /// The setting that names the file.
    pub key: &'static str,
    pub path: PathBuf,
    pub message: String,
}

/// A certificate and its private key, ready to sign client assertions.
/// `Debug` shows the subject and thumbprint, never the key.
pub struct ClientCertificate {
    thumbprint: String,
    subject: String,
    not_after: SystemTime,
    key: EncodingKey,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("subject", &self.subject)
            .field("x5t#S256", &self.thumbprint)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// `x5t#S256` of a certificate: the base64url (no padding) SHA-256 of its
/// DER encoding.
pub fn thumbprint_s256(certificate_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(certificate_der))
}

/// The PEM blocks of a file.
fn pem_blocks(
    key: &'static str,
    path: &Path,
    text: &str,
) -> Result<Vec<pem::Pem>, CertificateError> {
    pem::parse_many(text).map_err(|e| CertificateError {
        key,
        path: path.to_owned(),
        message: format!("not PEM: {e}"),
    })
}

fn read(key: &'static str, path: &Path) -> Result<String, CertificateError> {
    let fail = |message: String| CertificateError {
        key,
        path: path.to_owned(),
        message,
    };
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => fail("the file does not exist".to_owned()),
        _ => fail(format!("cannot read it: {e}")),
    })
}

impl ClientCertificate {
    /// Reads `certificate_file` and the private key (from
    /// `private_key_file`, else from `certificate_file`), and checks that
    /// they belong together. Blocking file I/O: call it at start-up or
    /// from `spawn_blocking`.
    pub fn load(
        certificate_file: &Path,
        private_key_file: Option<&Path>,
    ) -> Result<ClientCertificate, CertificateError> {
        let certificate_text = read("certificate_file", certificate_file)?;
        let certificate_blocks =
            pem_blocks("certificate_file", certificate_file, &certificate_text)?;
        let (key_setting, key_path, key_blocks) = match private_key_file {
            Some(path) => {
                let text = read("private_key_file", path)?;
                (
                    "private_key_file",
                    path,
                    pem_blocks("private_key_file", path, &text)?,
                )
            }
            None => (
                "certificate_file",
                certificate_file,
                certificate_blocks.clone(),
            ),
        };
        let certificate_fail = |message: String| CertificateError {
            key: "certificate_file",
            path: certificate_file.to_owned(),
            message,
        };
        let key_fail = |message: String| CertificateError {
            key: key_setting,
            path: key_path.to_owned(),
            message,
        };

        let der = certificate_blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.contents().to_vec())
            .ok_or_else(|| {
                certificate_fail("no certificate (a PEM CERTIFICATE block)".to_owned())
            })?;
        let certificate = x509_cert::Certificate::from_der(&der)
            .map_err(|e| certificate_fail(format!("not an X.509 certificate: {e}")))?;
        let tbs = &certificate.tbs_certificate;
        let subject = tbs.subject.to_string();
        let spki = &tbs.subject_public_key_info;
        let algorithm = spki.algorithm.oid.to_string();
        if algorithm != RSA_OID {
            return Err(certificate_fail(format!(
                "the certificate ({subject}) has a {} key; Entra ID certificate credentials \
                 need an RSA key",
                key_algorithm_name(&algorithm)
            )));
        }
        let public = spki
            .to_der()
            .ok()
            .and_then(|spki| RsaPublicKey::from_public_key_der(&spki).ok())
            .ok_or_else(|| {
                certificate_fail(format!(
                    "the certificate's ({subject}) RSA key cannot be read"
                ))
            })?;

        let private = private_key(&key_blocks).map_err(key_fail)?;
        if RsaPublicKey::from(&private) != public {
            return Err(key_fail(format!(
                "the private key does not belong to the certificate ({subject}) in {}",
                certificate_file.display()
            )));
        }
        let bits = public.n().bits();
        if bits < MIN_RSA_BITS {
            return Err(certificate_fail(format!(
                "the certificate's ({subject}) RSA key has {bits} bits; use at least {MIN_RSA_BITS}"
            )));
        }
        let pkcs1 = private
            .to_pkcs1_der()
            .map_err(|e| key_fail(format!("the private key cannot be encoded: {e}")))?;
        let not_after = tbs.validity.not_after.to_system_time();
        if not_after <= SystemTime::now() {
            // Not refused here: the clock may be wrong, and Entra ID says
            // so itself (AADSTS700027, "the key used is expired").
            tracing::warn!(
                certificate_file = %certificate_file.display(),
                subject = %subject,
                not_after = %tbs.validity.not_after,
                "the client certificate has expired; Entra ID refuses its assertions"
            );
        }
        Ok(ClientCertificate {
            thumbprint: thumbprint_s256(&der),
            subject,
            not_after,
            key: EncodingKey::from_rsa_der(pkcs1.as_bytes()),
        })
    }

    /// `x5t#S256`: the base64url SHA-256 thumbprint of the certificate.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The certificate's subject, e.g. `CN=warden`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// When the certificate expires (Entra ID refuses assertions of an
    /// expired certificate credential).
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// A new client assertion for `client_id` (`iss` and `sub`) to present
    /// at the token endpoint `audience` (`aud`), valid from now for
    /// [`ASSERTION_LIFETIME`], with a random `jti`. PS256, with the
    /// certificate's `x5t#S256`.
    pub fn assertion(&self, client_id: &str, audience: &str) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| format!("the system clock is before 1970: {e}"))?
            .as_secs();
        let mut header = Header::new(Algorithm::PS256);
        header.typ = Some("JWT".to_owned());
        header.x5t_s256 = Some(self.thumbprint.clone());
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("signing the client assertion failed: {e}"))
    }
}

/// The one RSA private key among `blocks`, or what is wrong.
fn private_key(blocks: &[pem::Pem]) -> Result<RsaPrivateKey, String> {
    let keys: Vec<&pem::Pem> = blocks
        .iter()
        .filter(|b| b.tag().ends_with("PRIVATE KEY"))
        .collect();
    let block = match keys.as_slice() {
        [] => {
            return Err("no private key (a PEM PRIVATE KEY or RSA PRIVATE KEY block)".to_owned());
        }
        [one] => *one,
        _ => return Err(format!("{} private keys; give exactly one", keys.len())),
    };
    match block.tag() {
        "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_der(block.contents()).map_err(|e| {
            match rsa::pkcs8::PrivateKeyInfo::try_from(block.contents()) {
                Ok(info) if info.algorithm.oid.to_string() != RSA_OID => format!(
                    "the private key is a {} key; Entra ID certificate credentials need an \
                     RSA key",
                    key_algorithm_name(&info.algorithm.oid.to_string())
                ),
                _ => format!("the PKCS#8 private key cannot be read: {e}"),
            }
        }),
        "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_der(block.contents())
            .map_err(|e| format!("the PKCS#1 RSA private key cannot be read: {e}")),
        "ENCRYPTED PRIVATE KEY" => Err(
            "the private key is encrypted; give it unencrypted (e.g. `openssl pkcs8 -in \
             key.pem -out plain.pem`) in a file only Warden can read"
                .to_owned(),
        ),
        "EC PRIVATE KEY" => Err(
            "the private key is an EC key; Entra ID certificate credentials need an RSA key"
                .to_owned(),
        ),
        other => Err(format!(
            "a {other} block is not a supported private key; use PRIVATE KEY (PKCS#8) or \
             RSA PRIVATE KEY"
        )),
    }
}

/// A readable name for a key algorithm OID.
fn key_algorithm_name(oid: &str) -> String {
    match oid {
        "1.2.840.10045.2.1" => "EC (id-ecPublicKey)".to_owned(),
        "1.3.101.112" => "Ed25519".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        "1.2.840.113549.1.1.10" => "RSASSA-PSS-only".to_owned(),
        other => format!("{other} (not RSA)"),
    }
}

/// Certificates for tests, generated at test time (rcgen).
#[cfg(test)]
pub(crate) mod test_support {
    /// A self-signed certificate (`CN=warden.test`) and its key, in PEM
    /// (the key PKCS#8), and the certificate's DER.
    pub(crate) struct Generated {
        pub(crate) certificate_pem: String,
        pub(crate) certificate_der: Vec<u8>,
        pub(crate) key_pem: String,
    }

    impl Generated {
        /// The certificate and its key in one PEM file, as Key Vault
        /// exports them.
        pub(crate) fn combined_pem(&self) -> String {
            format!("{}{}", self.certificate_pem, self.key_pem)
        }
    }

    pub(crate) fn generate(algorithm: &'static rcgen::SignatureAlgorithm) -> Generated {
        let key = rcgen::KeyPair::generate_for(algorithm).expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["warden.test".to_owned()]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "warden.test");
        let certificate = params.self_signed(&key).expect("self-signed certificate");
        Generated {
            certificate_pem: certificate.pem(),
            certificate_der: certificate.der().to_vec(),
            key_pem: key.serialize_pem(),
        }
    }

    /// An RSA 2048 certificate.
    pub(crate) fn rsa() -> Generated {
        generate(&rcgen::PKCS_RSA_SHA256)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{generate, rsa};
    use super::*;

    use jsonwebtoken::{DecodingKey, Validation};
    use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
    use rsa::traits::PublicKeyParts;
    use serde_json::Value;
    use x509_cert::der::{Decode, Encode};

    fn segment(token: &str, index: usize) -> Value {
        let part = token.split('.').nth(index).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn the_assertion_is_entras_certificate_credential_format() {
        let generated = rsa();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.pem");
        std::fs::write(&path, generated.combined_pem()).unwrap();
        let certificate = ClientCertificate::load(&path, None).unwrap();
        let client_id = "00000000-0000-0000-0000-000000000001";
        let audience = "https://login.microsoftonline.com/t/oauth2/v2.0/token";
        let assertion = certificate.assertion(client_id, audience).unwrap();

        // Header: PS256, JWT, x5t#S256 = base64url SHA-256 of the DER.
        let header = segment(&assertion, 0);
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(&generated.certificate_der));
        assert_eq!(header["alg"], "PS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["x5t#S256"], expected.as_str());
        assert_eq!(certificate.thumbprint(), expected);
        assert!(header.get("kid").is_none() && header.get("x5c").is_none());

        // Claims.
        let claims = segment(&assertion, 1);
        assert_eq!(claims["aud"], audience);
        assert_eq!(claims["iss"], client_id);
        assert_eq!(claims["sub"], client_id);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let nbf = claims["nbf"].as_u64().unwrap();
        assert!(nbf <= now && now - nbf < 60, "{claims}");
        assert_eq!(claims["iat"], claims["nbf"]);
        assert_eq!(claims["exp"].as_u64().unwrap() - nbf, 300);
        let jti = claims["jti"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(jti).is_ok(), "{jti}");

        // A fresh jti every time.
        let again = certificate.assertion(client_id, audience).unwrap();
        assert_ne!(segment(&again, 1)["jti"], claims["jti"]);

        // The signature verifies with the certificate's public key.
        let parsed = x509_cert::Certificate::from_der(&generated.certificate_der).unwrap();
        let spki = parsed
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap();
        let public = RsaPublicKey::from_public_key_der(&spki).unwrap();
        let key = DecodingKey::from_rsa_raw_components(
            &public.n().to_bytes_be(),
            &public.e().to_bytes_be(),
        );
        let mut validation = Validation::new(Algorithm::PS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[client_id]);
        let verified = jsonwebtoken::decode::<Value>(&assertion, &key, &validation).unwrap();
        assert_eq!(verified.claims["sub"], client_id);

        // ... and not with another key.
        let other = rsa();
        let other_cert = x509_cert::Certificate::from_der(&other.certificate_der).unwrap();
        let other_spki = other_cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap();
        let other_public = RsaPublicKey::from_public_key_der(&other_spki).unwrap();
        let wrong = DecodingKey::from_rsa_raw_components(
            &other_public.n().to_bytes_be(),
            &other_public.e().to_bytes_be(),
        );
        assert!(jsonwebtoken::decode::<Value>(&assertion, &wrong, &validation).is_err());

        let shown = format!("{certificate:?}");
        assert!(shown.contains("CN=warden.test"), "{shown}");
        assert_eq!(certificate.subject(), "CN=warden.test");
        assert!(
            shown.contains("redacted") && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }

    #[test]
    fn separate_files_and_pkcs1_keys_load() {
        let generated = rsa();
        let dir = tempfile::tempdir().unwrap();
        let certificate_file = dir.path().join("cert.pem");
        std::fs::write(&certificate_file, &generated.certificate_pem).unwrap();
        let key_file = dir.path().join("key.pem");
        std::fs::write(&key_file, &generated.key_pem).unwrap();
        let loaded = ClientCertificate::load(&certificate_file, Some(&key_file)).unwrap();
        assert_eq!(
            loaded.thumbprint(),
            thumbprint_s256(&generated.certificate_der)
        );
        assert!(loaded.not_after() > SystemTime::now());

        // The same key as PKCS#1 (`RSA PRIVATE KEY`).
        let private = RsaPrivateKey::from_pkcs8_pem(&generated.key_pem).unwrap();
        let pkcs1 =
            rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_pem(&private, rsa::pkcs8::LineEnding::LF)
                .unwrap();
        std::fs::write(&key_file, pkcs1.as_bytes()).unwrap();
        let loaded = ClientCertificate::load(&certificate_file, Some(&key_file)).unwrap();
        assert_eq!(
            loaded.thumbprint(),
            thumbprint_s256(&generated.certificate_der)
        );
    }

    #[test]
    fn an_expired_certificate_loads_and_says_when_it_expired() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["warden.test".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let certificate = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.pem");
        std::fs::write(
            &path,
            format!("{}{}", certificate.pem(), key.serialize_pem()),
        )
        .unwrap();
        let loaded = ClientCertificate::load(&path, None).unwrap();
        assert_eq!(
            loaded.not_after(),
            UNIX_EPOCH + Duration::from_secs(1_609_459_200)
        );
    }

    #[test]
    fn load_errors_name_the_setting_and_the_file() {
        let generated = rsa();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let message = |certificate: &Path, key: Option<&Path>| {
            ClientCertificate::load(certificate, key)
                .unwrap_err()
                .to_string()
        };
        let starts = |message: &str, key: &str, path: &Path, needle: &str| {
            assert!(
                message.starts_with(&format!("{key} {}: ", path.display())),
                "{message}"
            );
            assert!(message.contains(needle), "{needle}: {message}");
        };

        let missing = dir.path().join("absent.pem");
        starts(
            &message(&missing, None),
            "certificate_file",
            &missing,
            "the file does not exist",
        );
        let cert_only = write("cert.pem", &generated.certificate_pem);
        let missing_key = dir.path().join("absent-key.pem");
        starts(
            &message(&cert_only, Some(&missing_key)),
            "private_key_file",
            &missing_key,
            "the file does not exist",
        );
        starts(
            &message(&cert_only, None),
            "certificate_file",
            &cert_only,
            "no private key",
        );
        let key_only = write("key.pem", &generated.key_pem);
        starts(
            &message(&key_only, None),
            "certificate_file",
            &key_only,
            "no certificate",
        );
        let not_pem = write("not.pem", "hello");
        starts(
            &message(&not_pem, None),
            "certificate_file",
            &not_pem,
            "no certificate",
        );
        let two_keys = write(
            "two.pem",
            &format!(
                "{}{}{}",
                generated.certificate_pem, generated.key_pem, generated.key_pem
            ),
        );
        starts(
            &message(&two_keys, None),
            "certificate_file",
            &two_keys,
            "2 private keys",
        );

        // Another certificate's key.
        let other = rsa();
        let other_key = write("other-key.pem", &other.key_pem);
        starts(
            &message(&cert_only, Some(&other_key)),
            "private_key_file",
            &other_key,
            "does not belong to the certificate",
        );

        // Encrypted keys are refused with a hint.
        let encrypted = write(
            "encrypted.pem",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        starts(
            &message(&cert_only, Some(&encrypted)),
            "private_key_file",
            &encrypted,
            "encrypted",
        );

        // An EC certificate and key.
        let ec = generate(&rcgen::PKCS_ECDSA_P256_SHA256);
        let ec_both = write("ec.pem", &format!("{}{}", ec.certificate_pem, ec.key_pem));
        starts(
            &message(&ec_both, None),
            "certificate_file",
            &ec_both,
            "EC (id-ecPublicKey) key; Entra ID certificate credentials need an RSA key",
        );
        let ec_key = write("ec-key.pem", &ec.key_pem);
        starts(
            &message(&cert_only, Some(&ec_key)),
            "private_key_file",
            &ec_key,
            "need an RSA key",
        );
    }
}
