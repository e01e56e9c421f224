//! PKCE (RFC 7636), S256 only.
//!
//! Toward clients: [`check_challenge`] takes the authorization request's
//! `code_challenge` and `code_challenge_method` (a missing method or
//! `plain` is refused, unlike RFC 7636's default) and [`verify`] checks the
//! token request's `code_verifier` against the stored challenge in
//! constant time. Toward Entra ID: [`CodeVerifier::generate`] makes
//! Warden's own verifier for the upstream leg.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Shortest verifier (RFC 7636 §4.1).
pub const MIN_VERIFIER_LEN: usize = 43;
/// Longest verifier (RFC 7636 §4.1).
pub const MAX_VERIFIER_LEN: usize = 128;
/// Length of an S256 challenge: base64url of 32 bytes, unpadded.
pub const CHALLENGE_LEN: usize = 43;
/// The only supported `code_challenge_method`.
pub const S256: &str = "S256";

/// Why a PKCE parameter was refused. Every variant maps to OAuth error
/// `invalid_request` at the authorization endpoint and `invalid_grant` at
/// the token endpoint ([`PkceError::error_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// No `code_challenge`.
    #[error("code_challenge is required (PKCE with S256)")]
    MissingChallenge,
    /// No `code_challenge_method` (RFC 7636 would default to `plain`).
    #[error("code_challenge_method is required and must be S256")]
    MissingMethod,
    /// `plain` or anything else.
    #[error("code_challenge_method {0:?} is not supported; use S256")]
    UnsupportedMethod(String),
    /// Not 43 base64url characters.
    #[error("code_challenge is not an S256 challenge (43 base64url characters)")]
    MalformedChallenge,
    /// No `code_verifier` in the token request.
    #[error("code_verifier is required")]
    MissingVerifier,
    /// Not 43–128 characters of `A-Z a-z 0-9 - . _ ~`.
    #[error("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")]
    MalformedVerifier,
    /// Well-formed, but its hash is not the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// Where a PKCE error surfaces, which decides its OAuth error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/authorize`
    Authorization,
    /// `/token`
    Token,
}

impl PkceError {
    /// The OAuth error code for `endpoint`.
    pub fn error_code(&self, endpoint: Endpoint) -> &'static str {
        match endpoint {
            Endpoint::Authorization => "invalid_request",
            Endpoint::Token => "invalid_grant",
        }
    }
}

/// A well-formed S256 code challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Checks the syntax: exactly 43 base64url characters that decode to 32
    /// bytes (the canonical encoding of a SHA-256 digest).
    pub fn parse(challenge: &str) -> Result<Self, PkceError> {
        if challenge.len() != CHALLENGE_LEN {
            return Err(PkceError::MalformedChallenge);
        }
        match URL_SAFE_NO_PAD.decode(challenge) {
            Ok(bytes) if bytes.len() == 32 => Ok(Self(challenge.to_owned())),
            _ => Err(PkceError::MalformedChallenge),
        }
    }

    /// The challenge of `verifier` (which is not checked).
    fn of(verifier: &str) -> Self {
        Self(URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())))
    }

    /// The challenge as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks an authorization request's PKCE parameters: a challenge and
/// method `S256` are both required.
pub fn check_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<CodeChallenge, PkceError> {
    let challenge = challenge.ok_or(PkceError::MissingChallenge)?;
    match method {
        None => return Err(PkceError::MissingMethod),
        Some(S256) => {}
        Some(other) => {
            return Err(PkceError::UnsupportedMethod(
                other.chars().take(20).collect(),
            ));
        }
    }
    CodeChallenge::parse(challenge)
}

/// Whether `verifier` has RFC 7636 syntax: 43–128 characters of
/// `ALPHA / DIGIT / "-" / "." / "_" / "~"`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks a token request's `code_verifier` against the challenge stored
/// with the code: syntax first, then `BASE64URL(SHA256(verifier))`
/// compared in constant time.
pub fn verify(challenge: &CodeChallenge, verifier: Option<&str>) -> Result<(), PkceError> {
    let verifier = verifier.ok_or(PkceError::MissingVerifier)?;
    if !is_valid_verifier(verifier) {
        return Err(PkceError::MalformedVerifier);
    }
    let computed = CodeChallenge::of(verifier);
    if bool::from(computed.0.as_bytes().ct_eq(challenge.0.as_bytes())) {
        Ok(())
    } else {
        Err(PkceError::Mismatch)
    }
}

/// Warden's own code verifier for the leg to Entra ID: 32 random bytes,
/// base64url (43 characters). Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeVerifier(String);

impl CodeVerifier {
    /// A fresh verifier from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A verifier read back from storage; syntax checked.
    pub fn parse(verifier: &str) -> Result<Self, PkceError> {
        if is_valid_verifier(verifier) {
            Ok(Self(verifier.to_owned()))
        } else {
            Err(PkceError::MalformedVerifier)
        }
    }

    /// Its S256 challenge, for the upstream authorization request.
    pub fn challenge(&self) -> CodeChallenge {
        CodeChallenge::of(&self.0)
    }

    /// The verifier, for the upstream token request and for storage.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeVerifier(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn rfc_challenge() -> CodeChallenge {
        check_challenge(Some(RFC_CHALLENGE), Some("S256")).unwrap()
    }

    #[test]
    fn rfc7636_appendix_b_vector() {
        // The appendix's 32 octets encode to its verifier.
        let octets = [
            116u8, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        assert_eq!(URL_SAFE_NO_PAD.encode(octets), RFC_VERIFIER);
        assert_eq!(CodeChallenge::of(RFC_VERIFIER).as_str(), RFC_CHALLENGE);
        assert_eq!(verify(&rfc_challenge(), Some(RFC_VERIFIER)), Ok(()));
    }

    #[test]
    fn wrong_verifier_is_a_mismatch() {
        let mut other = RFC_VERIFIER.to_owned();
        other.replace_range(0..1, "e");
        assert_eq!(
            verify(&rfc_challenge(), Some(&other)),
            Err(PkceError::Mismatch)
        );
        // The challenge itself is not a verifier of itself.
        assert_eq!(
            verify(&rfc_challenge(), Some(RFC_CHALLENGE)),
            Err(PkceError::Mismatch)
        );
    }

    #[test]
    fn missing_or_malformed_verifier() {
        assert_eq!(
            verify(&rfc_challenge(), None),
            Err(PkceError::MissingVerifier)
        );
        for bad in [
            "",
            &"a".repeat(42),
            &"a".repeat(129),
            &format!("{}!", "a".repeat(42)),
            &format!("{} ", "a".repeat(43)),
            &format!("{}+", "a".repeat(43)),
            &format!("{}/", "a".repeat(43)),
            &format!("{}=", "a".repeat(43)),
            &format!("{}é", "a".repeat(42)),
        ] {
            assert_eq!(
                verify(&rfc_challenge(), Some(bad)),
                Err(PkceError::MalformedVerifier),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn verifier_syntax_bounds_and_alphabet() {
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"Z".repeat(128)));
        assert!(is_valid_verifier(&format!("{}-._~09", "a".repeat(40))));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        // A long verifier still verifies.
        let long = "x".repeat(128);
        let challenge = CodeChallenge::of(&long);
        assert_eq!(verify(&challenge, Some(&long)), Ok(()));
    }

    #[test]
    fn plain_and_missing_method_refused() {
        assert_eq!(
            check_challenge(Some(RFC_CHALLENGE), None),
            Err(PkceError::MissingMethod)
        );
        assert_eq!(
            check_challenge(Some(RFC_VERIFIER), Some("plain")),
            Err(PkceError::UnsupportedMethod("plain".into()))
        );
        for method in ["s256", "S256 ", "", "SHA256", "S512"] {
            assert!(
                matches!(
                    check_challenge(Some(RFC_CHALLENGE), Some(method)),
                    Err(PkceError::UnsupportedMethod(_))
                ),
                "{method:?}"
            );
        }
        assert_eq!(
            check_challenge(None, Some("S256")),
            Err(PkceError::MissingChallenge)
        );
        assert_eq!(
            check_challenge(None, None),
            Err(PkceError::MissingChallenge)
        );
    }

    #[test]
    fn challenge_syntax() {
        for bad in [
            "",
            &RFC_CHALLENGE[..42],
            &format!("{RFC_CHALLENGE}A"),
            &format!("{}=", &RFC_CHALLENGE[..42]),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw/cM",
            // 43 characters whose last one carries non-zero padding bits
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN",
            // a long plain-style verifier is not an S256 challenge
            &"a".repeat(64),
        ] {
            assert_eq!(
                check_challenge(Some(bad), Some("S256")),
                Err(PkceError::MalformedChallenge),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn error_codes_per_endpoint() {
        assert_eq!(
            PkceError::MissingMethod.error_code(Endpoint::Authorization),
            "invalid_request"
        );
        assert_eq!(
            PkceError::Mismatch.error_code(Endpoint::Token),
            "invalid_grant"
        );
    }

    #[test]
    fn generated_verifiers_are_valid_unique_and_verify() {
        let a = CodeVerifier::generate();
        let b = CodeVerifier::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert!(is_valid_verifier(a.expose()));
        assert_eq!(verify(&a.challenge(), Some(a.expose())), Ok(()));
        assert_eq!(
            verify(&a.challenge(), Some(b.expose())),
            Err(PkceError::Mismatch)
        );
        assert_eq!(CodeVerifier::parse(a.expose()), Ok(a.clone()));
        assert_eq!(
            CodeVerifier::parse("short"),
            Err(PkceError::MalformedVerifier)
        );
    }

    #[test]
    fn verifier_debug_is_redacted() {
        let v = CodeVerifier::generate();
        let shown = format!("{v:?}");
        assert!(!shown.contains(v.expose()));
        assert!(shown.contains("redacted"));
    }
}
