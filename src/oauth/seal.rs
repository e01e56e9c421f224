//! Sealing secrets at rest: AES-256-GCM with keys derived from a rotating
//! key-encryption key file (`oauth.key_file`).
//!
//! Used for the Entra ID refresh and access tokens kept with each grant
//! ([`Purpose::UpstreamToken`], associated data [`grant_aad`] = grant id ‖
//! client id, so a ciphertext copied to another grant or client does not
//! open) and for stateless dynamic-registration client ids
//! ([`Purpose::ClientId`]).
//!
//! # Key file
//!
//! ```text
//! # oauth.key_file: one key per line, oldest first; the LAST line encrypts.
//! # <key id> <standard base64 of exactly 32 random bytes>
//! 2026-01 q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=
//! 2026-07 VGhpcyBpcyBub3QgYSByZWFsIGtleSwganVzdCBhbiA=
//! ```
//!
//! Key ids are 1 to 16 characters of `A-Z a-z 0-9 . _ -`, unique in the
//! file; `#` starts a comment line and blank lines are ignored. A line is
//! made with `printf '%s %s\n' 2026-07 "$(openssl rand -base64 32)"` (or
//! [`KeyRing::generate_line`]). To rotate, append a line and restart: new
//! seals use the new key, old ones still open. Remove an old line only once
//! nothing sealed with it is still needed (grants live at most
//! `oauth.lifetimes.refresh_absolute`; DCR client ids as long as clients
//! keep them, after which the client registers again).
//!
//! # Keys and envelope
//!
//! Each line's 32 bytes are the input of HKDF-SHA256 (salt
//! `warden/oauth/seal/v1`, info = purpose label ‖ 0x00 ‖ key id), giving one
//! AES-256 key per purpose and line: the file's bytes never encrypt
//! directly, and a client id cannot be opened as an Entra token or the
//! other way round.
//!
//! A sealed value is `0x01 ‖ len(key id) ‖ key id ‖ nonce (12 random
//! bytes) ‖ ciphertext ‖ tag (16)`. The header (version, key id) is part of
//! the authenticated data, followed by each caller-supplied part with a
//! 4-byte big-endian length, so `("ab", "c")` and `("a", "bc")` differ.
//! Random 96-bit nonces are safe for far more than 2^32 seals per key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use rand::RngCore as _;
use sha2::Sha256;

use super::tokens::GrantId;

/// Envelope version.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length of a key-encryption key, in bytes.
pub const KEK_BYTES: usize = 32;
/// Longest key id.
pub const MAX_KEY_ID_LEN: usize = 16;
const HKDF_SALT: &[u8] = b"warden/oauth/seal/v1";

/// What a sealed value is for; each purpose has its own derived keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Entra ID tokens kept with a grant.
    UpstreamToken,
    /// Stateless dynamic-registration client ids.
    ClientId,
}

impl Purpose {
    const ALL: [Purpose; 2] = [Purpose::UpstreamToken, Purpose::ClientId];

    fn index(self) -> usize {
        match self {
            Purpose::UpstreamToken => 0,
            Purpose::ClientId => 1,
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            Purpose::UpstreamToken => b"upstream-token",
            Purpose::ClientId => b"dcr-client-id",
        }
    }
}

/// Why the key file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("oauth.key_file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No key line.
    #[error("oauth.key_file {path}: no key; add a line `<key id> <base64 of 32 random bytes>`")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A line is not `<key id> <base64 of 32 bytes>`.
    #[error("oauth.key_file {path} line {line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why sealing or opening failed. Opening reports a tampered, truncated,
/// misdirected (wrong associated data) or foreign value alike as
/// [`SealError::Inauthentic`] once the header parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Shorter than a header, nonce and tag.
    #[error("sealed value is truncated")]
    Truncated,
    /// Unknown envelope version.
    #[error("sealed value has unsupported version {0}")]
    UnsupportedVersion(u8),
    /// Key id not (or no longer) in the key file.
    #[error("sealed value names key id {0:?}, which is not in oauth.key_file")]
    UnknownKey(String),
    /// Authentication failed.
    #[error("sealed value failed authentication (tampered, or sealed for another grant or client)")]
    Inauthentic,
    /// The cipher refused to encrypt (input too long).
    #[error("value could not be sealed")]
    Encrypt,
}

struct Entry {
    id: String,
    ciphers: [Aes256Gcm; 2],
}

/// The loaded key file: every key opens, the last one seals.
#[derive(Clone)]
pub struct KeyRing {
    entries: Arc<[Entry]>,
}

impl KeyRing {
    /// Reads and parses the key file.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        super::tokens::warn_if_shared(path, "oauth.key_file");
        Self::parse(&text, path)
    }

    /// Parses the key file's contents; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, KeyFileError> {
        let mut entries: Vec<Entry> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| KeyFileError::Line {
                path: path.to_owned(),
                line: index + 1,
                reason,
            };
            let mut fields = line.split_whitespace();
            let (Some(id), Some(key), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(bad("expected `<key id> <base64 of 32 random bytes>`".into()));
            };
            if !is_key_id(id) {
                return Err(bad(format!(
                    "key id {id:?} must be 1 to {MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 . _ -"
                )));
            }
            if entries.iter().any(|e| e.id == id) {
                return Err(bad(format!("key id {id:?} appears twice")));
            }
            let bytes = STANDARD
                .decode(key)
                .map_err(|_| bad(format!("the key of {id:?} is not standard base64")))?;
            let kek: [u8; KEK_BYTES] = bytes.as_slice().try_into().map_err(|_| {
                bad(format!(
                    "the key of {id:?} is {} bytes; it must be exactly {KEK_BYTES}",
                    bytes.len()
                ))
            })?;
            let derive = |purpose: Purpose| {
                derive_cipher(&kek, id, purpose)
                    .ok_or_else(|| bad(format!("cannot derive a key from {id:?}")))
            };
            entries.push(Entry {
                id: id.to_owned(),
                ciphers: [derive(Purpose::ALL[0])?, derive(Purpose::ALL[1])?],
            });
        }
        if entries.is_empty() {
            return Err(KeyFileError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Self {
            entries: entries.into(),
        })
    }

    /// A new key line `<id> <base64>` with 32 fresh random bytes, to append
    /// to the key file. `None` when `id` is not a valid key id.
    pub fn generate_line(id: &str) -> Option<String> {
        if !is_key_id(id) {
            return None;
        }
        let mut kek = [0u8; KEK_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut kek);
        Some(format!("{id} {}", STANDARD.encode(kek)))
    }

    /// The id of the key that seals (the file's last line).
    pub fn current_key_id(&self) -> &str {
        self.current().id.as_str()
    }

    /// The ids of all loaded keys, oldest first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.id.as_str()).collect()
    }

    /// A sealer for `purpose`.
    pub fn sealer(&self, purpose: Purpose) -> Sealer {
        Sealer {
            ring: self.clone(),
            purpose,
        }
    }

    fn current(&self) -> &Entry {
        // `parse` refuses an empty file, so there is always a last entry;
        // indexing by `len - 1` keeps that invariant in one place.
        &self.entries[self.entries.len() - 1]
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

/// Seals and opens values of one [`Purpose`].
#[derive(Clone)]
pub struct Sealer {
    ring: KeyRing,
    purpose: Purpose,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("purpose", &self.purpose)
            .field("current_key_id", &self.ring.current_key_id())
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Encrypts `plaintext` with the current key and a fresh random nonce,
    /// authenticating `aad` (the parts are length-prefixed).
    pub fn seal(&self, plaintext: &[u8], aad: &[&[u8]]) -> Result<Vec<u8>, SealError> {
        let entry = self.ring.current();
        let header = header(&entry.id);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let associated = associated_data(&header, aad);
        let ciphertext = entry.ciphers[self.purpose.index()]
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &associated,
                },
            )
            .map_err(|_| SealError::Encrypt)?;
        let mut out = header;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Decrypts a value sealed by any loaded key with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[&[u8]]) -> Result<Vec<u8>, SealError> {
        let (id, rest) = split_header(sealed)?;
        let header_len = sealed.len() - rest.len();
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Truncated);
        }
        let entry = self
            .ring
            .entries
            .iter()
            .find(|e| e.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Truncated)?;
        let associated = associated_data(&sealed[..header_len], aad);
        entry.ciphers[self.purpose.index()]
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &associated,
                },
            )
            .map_err(|_| SealError::Inauthentic)
    }
}

/// The key id a sealed value names (for a `key_id` column and for finding
/// values still sealed with an old key).
pub fn sealed_key_id(sealed: &[u8]) -> Result<&str, SealError> {
    split_header(sealed).map(|(id, _)| id)
}

/// The associated data of an upstream token: grant id, then client id.
pub fn grant_aad<'a>(grant_id: &'a GrantId, client_id: &'a str) -> [&'a [u8]; 2] {
    [grant_id.as_str().as_bytes(), client_id.as_bytes()]
}

fn is_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn derive_cipher(kek: &[u8; KEK_BYTES], id: &str, purpose: Purpose) -> Option<Aes256Gcm> {
    let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), kek);
    let mut info = purpose.label().to_vec();
    info.push(0);
    info.extend_from_slice(id.as_bytes());
    let mut key = [0u8; 32];
    hkdf.expand(&info, &mut key).ok()?;
    Aes256Gcm::new_from_slice(&key).ok()
}

fn header(id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + TAG_LEN);
    out.push(VERSION);
    // key ids are at most MAX_KEY_ID_LEN (16) bytes
    out.push(id.len() as u8);
    out.extend_from_slice(id.as_bytes());
    out
}

/// Splits a sealed value into its key id and the nonce ‖ ciphertext ‖ tag.
fn split_header(sealed: &[u8]) -> Result<(&str, &[u8]), SealError> {
    let (&version, rest) = sealed.split_first().ok_or(SealError::Truncated)?;
    if version != VERSION {
        return Err(SealError::UnsupportedVersion(version));
    }
    let (&len, rest) = rest.split_first().ok_or(SealError::Truncated)?;
    let len = usize::from(len);
    if rest.len() < len {
        return Err(SealError::Truncated);
    }
    let (id, rest) = rest.split_at(len);
    let id = std::str::from_utf8(id)
        .ok()
        .filter(|id| is_key_id(id))
        .ok_or_else(|| SealError::UnknownKey(String::from_utf8_lossy(id).into_owned()))?;
    Ok((id, rest))
}

fn associated_data(header: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut out = header.to_vec();
    for part in parts {
        // parts are identifiers, far below 4 GiB
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, byte: u8) -> String {
        format!("{id} {}", STANDARD.encode([byte; 32]))
    }

    fn ring(lines: &[String]) -> KeyRing {
        KeyRing::parse(&lines.join("\n"), Path::new("keys")).unwrap()
    }

    fn one() -> KeyRing {
        ring(&[line("k1", 1)])
    }

    fn grant() -> GrantId {
        GrantId::parse("grant-0000000000001").unwrap()
    }

    const SECRET: &[u8] = b"entra refresh token 0.AXoA...";

    #[test]
    fn round_trip() {
        let sealer = one().sealer(Purpose::UpstreamToken);
        let g = grant();
        let sealed = sealer.seal(SECRET, &grant_aad(&g, "client-a")).unwrap();
        assert_eq!(
            sealer.open(&sealed, &grant_aad(&g, "client-a")).unwrap(),
            SECRET
        );
        assert_eq!(sealed_key_id(&sealed), Ok("k1"));
        assert_eq!(sealed.len(), 2 + 2 + NONCE_LEN + SECRET.len() + TAG_LEN);
        // the plaintext is not visible in the envelope
        assert!(!sealed.windows(SECRET.len()).any(|w| w == SECRET));
        // empty plaintext and no associated data work too
        let empty = sealer.seal(b"", &[]).unwrap();
        assert_eq!(sealer.open(&empty, &[]).unwrap(), b"");
    }

    #[test]
    fn same_plaintext_seals_differently() {
        let sealer = one().sealer(Purpose::UpstreamToken);
        let a = sealer.seal(SECRET, &[b"x"]).unwrap();
        let b = sealer.seal(SECRET, &[b"x"]).unwrap();
        assert_ne!(a, b);
        assert_ne!(a[4..16], b[4..16], "nonces differ");
    }

    #[test]
    fn wrong_associated_data_fails() {
        let sealer = one().sealer(Purpose::UpstreamToken);
        let g = grant();
        let sealed = sealer.seal(SECRET, &grant_aad(&g, "client-a")).unwrap();
        let other = GrantId::parse("grant-0000000000002").unwrap();
        for aad in [
            grant_aad(&g, "client-b").to_vec(),
            grant_aad(&other, "client-a").to_vec(),
            vec![b"client-a".as_slice(), g.as_str().as_bytes()],
            vec![g.as_str().as_bytes()],
            vec![],
            vec![g.as_str().as_bytes(), b"client-a", b""],
        ] {
            assert_eq!(sealer.open(&sealed, &aad), Err(SealError::Inauthentic));
        }
    }

    #[test]
    fn aad_parts_are_unambiguous() {
        let sealer = one().sealer(Purpose::UpstreamToken);
        let sealed = sealer.seal(SECRET, &[b"ab", b"c"]).unwrap();
        assert_eq!(
            sealer.open(&sealed, &[b"a", b"bc"]),
            Err(SealError::Inauthentic)
        );
        assert_eq!(sealer.open(&sealed, &[b"abc"]), Err(SealError::Inauthentic));
        assert!(sealer.open(&sealed, &[b"ab", b"c"]).is_ok());
    }

    #[test]
    fn any_flipped_bit_fails() {
        let keys = ring(&[line("k1", 1), line("k2", 2)]);
        let sealer = keys.sealer(Purpose::UpstreamToken);
        let sealed = sealer.seal(SECRET, &[b"g", b"c"]).unwrap();
        for i in 0..sealed.len() {
            for bit in [0x01u8, 0x80] {
                let mut tampered = sealed.clone();
                tampered[i] ^= bit;
                assert!(
                    sealer.open(&tampered, &[b"g", b"c"]).is_err(),
                    "byte {i} bit {bit:#x}"
                );
            }
        }
    }

    #[test]
    fn tampered_parts_fail_with_the_expected_error() {
        let keys = ring(&[line("k1", 1), line("k2", 2)]);
        let sealer = keys.sealer(Purpose::UpstreamToken);
        let sealed = sealer.seal(SECRET, &[]).unwrap();
        assert_eq!(sealed_key_id(&sealed), Ok("k2"));
        // key id pointing at the other, existing key
        let mut swapped = sealed.clone();
        swapped[3] = b'1';
        assert_eq!(sealer.open(&swapped, &[]), Err(SealError::Inauthentic));
        // key id that is not loaded
        let mut unknown = sealed.clone();
        unknown[3] = b'9';
        assert_eq!(
            sealer.open(&unknown, &[]),
            Err(SealError::UnknownKey("k9".into()))
        );
        // nonce
        let mut nonce = sealed.clone();
        nonce[5] ^= 1;
        assert_eq!(sealer.open(&nonce, &[]), Err(SealError::Inauthentic));
        // ciphertext and tag
        let mut body = sealed.clone();
        let last = body.len() - 1;
        body[last] ^= 1;
        assert_eq!(sealer.open(&body, &[]), Err(SealError::Inauthentic));
        // version
        let mut version = sealed.clone();
        version[0] = 2;
        assert_eq!(
            sealer.open(&version, &[]),
            Err(SealError::UnsupportedVersion(2))
        );
        // a key id that is not a key id at all
        let mut junk = sealed.clone();
        junk[2] = 0xff;
        assert!(matches!(
            sealer.open(&junk, &[]),
            Err(SealError::UnknownKey(_))
        ));
        // appended bytes
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(sealer.open(&longer, &[]), Err(SealError::Inauthentic));
    }

    #[test]
    fn every_truncation_fails() {
        let sealer = one().sealer(Purpose::UpstreamToken);
        let sealed = sealer.seal(SECRET, &[]).unwrap();
        for len in 0..sealed.len() {
            let err = sealer.open(&sealed[..len], &[]).unwrap_err();
            assert!(
                matches!(err, SealError::Truncated | SealError::Inauthentic),
                "{len}: {err:?}"
            );
        }
        assert_eq!(sealer.open(&[], &[]), Err(SealError::Truncated));
        assert_eq!(sealer.open(&[1], &[]), Err(SealError::Truncated));
        assert_eq!(sealer.open(&[1, 5, b'k'], &[]), Err(SealError::Truncated));
        assert_eq!(sealed_key_id(&[1, 5, b'k']), Err(SealError::Truncated));
    }

    #[test]
    fn rotation_old_key_opens_new_key_seals() {
        let old = ring(&[line("k1", 1)]);
        let sealed_old = old
            .sealer(Purpose::UpstreamToken)
            .seal(SECRET, &[b"g"])
            .unwrap();

        let rotated = ring(&[line("k1", 1), line("k2", 2)]);
        let sealer = rotated.sealer(Purpose::UpstreamToken);
        assert_eq!(rotated.current_key_id(), "k2");
        assert_eq!(rotated.key_ids(), vec!["k1", "k2"]);
        assert_eq!(sealer.open(&sealed_old, &[b"g"]).unwrap(), SECRET);
        let sealed_new = sealer.seal(SECRET, &[b"g"]).unwrap();
        assert_eq!(sealed_key_id(&sealed_new), Ok("k2"));

        // the old ring cannot open what the new key sealed
        assert_eq!(
            old.sealer(Purpose::UpstreamToken)
                .open(&sealed_new, &[b"g"]),
            Err(SealError::UnknownKey("k2".into()))
        );
        // once k1 is retired, its values no longer open
        let retired = ring(&[line("k2", 2)]);
        assert_eq!(
            retired
                .sealer(Purpose::UpstreamToken)
                .open(&sealed_old, &[b"g"]),
            Err(SealError::UnknownKey("k1".into()))
        );
        assert!(
            retired
                .sealer(Purpose::UpstreamToken)
                .open(&sealed_new, &[b"g"])
                .is_ok()
        );
    }

    #[test]
    fn same_id_with_other_bytes_does_not_open() {
        let a = ring(&[line("k1", 1)]).sealer(Purpose::UpstreamToken);
        let b = ring(&[line("k1", 9)]).sealer(Purpose::UpstreamToken);
        let sealed = a.seal(SECRET, &[]).unwrap();
        assert_eq!(b.open(&sealed, &[]), Err(SealError::Inauthentic));
    }

    #[test]
    fn purposes_are_separated() {
        let keys = one();
        let sealed = keys
            .sealer(Purpose::ClientId)
            .seal(SECRET, &[b"x"])
            .unwrap();
        assert_eq!(
            keys.sealer(Purpose::UpstreamToken).open(&sealed, &[b"x"]),
            Err(SealError::Inauthentic)
        );
        assert!(
            keys.sealer(Purpose::ClientId)
                .open(&sealed, &[b"x"])
                .is_ok()
        );
    }

    #[test]
    fn key_file_parsing() {
        let path = Path::new("keys");
        let text = format!(
            "# comment\n\n  {}  \n# another\n{}\n",
            line("2026-01", 1),
            line("2026.07_b", 2)
        );
        let keys = KeyRing::parse(&text, path).unwrap();
        assert_eq!(keys.key_ids(), vec!["2026-01", "2026.07_b"]);
        assert_eq!(keys.current_key_id(), "2026.07_b");

        let err = |text: &str| KeyRing::parse(text, path).unwrap_err();
        assert!(matches!(err(""), KeyFileError::Empty { .. }));
        assert!(matches!(err("# only\n\n"), KeyFileError::Empty { .. }));
        for (text, bad_line, needle) in [
            ("k1".to_owned(), 1, "expected"),
            (format!("{} extra", line("k1", 1)), 1, "expected"),
            (format!("{}\n{}", line("k1", 1), line("k1", 2)), 2, "twice"),
            (line("k/1", 1), 1, "key id"),
            (line(&"k".repeat(17), 1), 1, "key id"),
            ("k1 not-base64!".to_owned(), 1, "base64"),
            (format!("k1 {}", STANDARD.encode([1u8; 31])), 1, "31 bytes"),
            (format!("k1 {}", STANDARD.encode([1u8; 33])), 1, "33 bytes"),
        ] {
            match err(&text) {
                KeyFileError::Line { line, reason, .. } => {
                    assert_eq!(line, bad_line, "{text}");
                    assert!(reason.contains(needle), "{text}: {reason}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(
            err("k1 x")
                .to_string()
                .starts_with("oauth.key_file keys line 1:")
        );
    }

    #[test]
    fn generated_lines_load_and_differ() {
        let a = KeyRing::generate_line("k1").unwrap();
        let b = KeyRing::generate_line("k2").unwrap();
        assert_ne!(a.split(' ').nth(1), b.split(' ').nth(1));
        let keys = KeyRing::parse(&format!("{a}\n{b}\n"), Path::new("keys")).unwrap();
        assert_eq!(keys.current_key_id(), "k2");
        assert!(KeyRing::generate_line("bad id").is_none());
        assert!(KeyRing::generate_line("").is_none());
    }

    #[test]
    fn load_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kek");
        std::fs::write(&file, line("k1", 1)).unwrap();
        let keys = KeyRing::load(&file).unwrap();
        let sealed = keys.sealer(Purpose::ClientId).seal(b"x", &[]).unwrap();
        assert!(one().sealer(Purpose::ClientId).open(&sealed, &[]).is_ok());
        assert!(matches!(
            KeyRing::load(&dir.path().join("absent")),
            Err(KeyFileError::Io { .. })
        ));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let keys = one();
        let shown = format!("{keys:?} {:?}", keys.sealer(Purpose::UpstreamToken));
        assert!(shown.contains("k1"));
        assert!(!shown.contains(&STANDARD.encode([1u8; 32])));
        assert!(!shown.contains("1, 1, 1"));
    }
}
