//! Ed25519 keys, C2SP signed notes (<https://c2sp.org/signed-note>) and
//! C2SP checkpoints (<https://c2sp.org/tlog-checkpoint>).
//!
//! Key files use the text forms that Go's `golang.org/x/mod/sumdb/note`
//! tooling reads: the signer key `PRIVATE+KEY+<name>+<id>+<base64(0x01‖seed)>`
//! and the verifier key `<name>+<id>+<base64(0x01‖public key)>`, where `<id>`
//! is the hex of the 4-byte key id `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[..4]`.
//! The key name is the log's origin.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

const ED25519: u8 = 0x01;
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("malformed key: {0}")]
    Key(String),
    #[error("malformed note: {0}")]
    Note(String),
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(public);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// A log's signing key.
#[derive(Clone)]
pub struct Signer {
    name: String,
    key: SigningKey,
    id: [u8; 4],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("id", &hex::encode(self.id))
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::Key(format!(
                "key name {name:?} must be non-empty without spaces or '+'"
            )));
        }
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        Ok(Self::from_parts(name, key))
    }

    fn from_parts(name: &str, key: SigningKey) -> Self {
        let id = key_id(name, key.verifying_key().as_bytes());
        Self {
            name: name.to_owned(),
            key,
            id,
        }
    }

    /// Parses `PRIVATE+KEY+<name>+<id>+<base64>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .trim()
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or_else(|| NoteError::Key("a signing key starts with PRIVATE+KEY+".into()))?;
        let (name, id, bytes) = split_key(rest)?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| NoteError::Key("an Ed25519 seed has 32 bytes".into()))?;
        let signer = Self::from_parts(name, SigningKey::from_bytes(&seed));
        if signer.id != id {
            return Err(NoteError::Key("the key id does not match the key".into()));
        }
        Ok(signer)
    }

    /// The text form of the key (keep it secret).
    pub fn encode(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!(
            "{PRIVATE_PREFIX}{}+{}+{}",
            self.name,
            hex::encode(self.id),
            B64.encode(bytes)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            id: self.id,
        }
    }

    /// Signs arbitrary bytes (used to endorse a successor key).
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// Signs `text` (which must end in a newline) as a signed note.
    pub fn sign_note(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut blob = self.id.to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{text}\n\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

fn split_key(text: &str) -> Result<(&str, [u8; 4], Vec<u8>), NoteError> {
    // The base64 key itself may contain '+': split off two fields only.
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::Key("expected <name>+<id>+<key>".into()));
    };
    if !valid_name(name) {
        return Err(NoteError::Key(format!("bad key name {name:?}")));
    }
    let id: [u8; 4] = hex::decode(id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| NoteError::Key("the key id is 8 hex digits".into()))?;
    let bytes = B64
        .decode(data)
        .map_err(|_| NoteError::Key("the key is not base64".into()))?;
    match bytes.split_first() {
        Some((&ED25519, key)) => Ok((name, id, key.to_vec())),
        _ => Err(NoteError::Key(
            "only Ed25519 keys (type 0x01) are supported".into(),
        )),
    }
}

/// A public key that verifies notes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key: VerifyingKey,
    id: [u8; 4],
}

impl VerifierKey {
    /// Parses `<name>+<id>+<base64(0x01‖key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim();
        if text.starts_with(PRIVATE_PREFIX) {
            return Err(NoteError::Key(
                "this is a private signing key; pass the public key (.pub)".into(),
            ));
        }
        let (name, id, bytes) = split_key(text)?;
        let public: [u8; 32] = bytes
            .try_into()
            .map_err(|_| NoteError::Key("an Ed25519 public key has 32 bytes".into()))?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| NoteError::Key("not a valid Ed25519 public key".into()))?;
        if key_id(name, &public) != id {
            return Err(NoteError::Key("the key id does not match the key".into()));
        }
        Ok(Self {
            name: name.to_owned(),
            key,
            id,
        })
    }

    pub fn encode(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.id),
            B64.encode(bytes)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    pub fn verify_bytes(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify(message, &signature).is_ok()
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: [u8; 4],
    pub signature: Vec<u8>,
}

/// A parsed signed note: the signed text and its signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| NoteError::Note("no blank line before the signatures".into()))?;
        let text = &note[..split + 1];
        let mut signatures = Vec::new();
        for line in note[split + 2..].split_terminator('\n') {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| NoteError::Note(format!("bad signature line {line:?}")))?;
            let (name, blob) = rest
                .split_once(' ')
                .ok_or_else(|| NoteError::Note(format!("bad signature line {line:?}")))?;
            let blob = B64
                .decode(blob)
                .map_err(|_| NoteError::Note("a signature is not base64".into()))?;
            if blob.len() < 5 {
                return Err(NoteError::Note("a signature is too short".into()));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id: [blob[0], blob[1], blob[2], blob[3]],
                signature: blob[4..].to_vec(),
            });
        }
        if signatures.is_empty() || !note.ends_with('\n') {
            return Err(NoteError::Note(
                "a note needs at least one signature".into(),
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Whether `key` signed this note: a signature line with its name and id
    /// whose signature verifies.
    pub fn signed_by(&self, key: &VerifierKey) -> Signature {
        let mut found = Signature::Absent;
        for s in &self.signatures {
            if s.name == key.name && s.key_id == key.id {
                if key.verify_bytes(self.text.as_bytes(), &s.signature) {
                    return Signature::Valid;
                }
                found = Signature::Invalid;
            }
        }
        found
    }

    /// `name+id` of every signature, for messages.
    pub fn signers(&self) -> Vec<String> {
        self.signatures
            .iter()
            .map(|s| format!("{}+{}", s.name, hex::encode(s.key_id)))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    Valid,
    /// A line claims the key but the signature does not verify.
    Invalid,
    /// No line for the key.
    Absent,
}

/// A checkpoint body: origin, tree size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut lines = text.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty());
        let size = lines.next().and_then(|s| {
            // Decimal without leading zeros, as the spec requires.
            (s == "0" || !s.starts_with('0'))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        });
        let root = lines
            .next()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|r| r.try_into().ok());
        match (origin, size, root) {
            (Some(origin), Some(size), Some(root)) => Ok(Self {
                origin: origin.to_owned(),
                size,
                root,
            }),
            _ => Err(NoteError::Checkpoint(
                "expected origin, decimal size and base64 SHA-256 root lines".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_notes_verify() {
        let signer = Signer::generate("warden.example/audit").unwrap();
        let again = Signer::parse(&signer.encode()).unwrap();
        assert_eq!(again.verifier(), signer.verifier());
        let verifier = VerifierKey::parse(&signer.verifier().encode()).unwrap();
        let checkpoint = Checkpoint {
            origin: "warden.example/audit".into(),
            size: 42,
            root: [7; 32],
        };
        let note = signer.sign_note(&checkpoint.text());
        let parsed = SignedNote::parse(&note).unwrap();
        assert_eq!(parsed.signed_by(&verifier), Signature::Valid);
        assert_eq!(Checkpoint::parse(&parsed.text).unwrap(), checkpoint);

        let altered = note.replace("\n42\n", "\n43\n");
        let parsed = SignedNote::parse(&altered).unwrap();
        assert_eq!(parsed.signed_by(&verifier), Signature::Invalid);
        let other = Signer::generate("warden.example/audit").unwrap().verifier();
        assert_eq!(
            SignedNote::parse(&note).unwrap().signed_by(&other),
            Signature::Absent
        );
    }

    #[test]
    fn go_note_test_vector_verifies() {
        // The example key and note from golang.org/x/mod/sumdb/note.
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let note = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n\
                    \n\
                    \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let key = VerifierKey::parse(vkey).unwrap();
        let parsed = SignedNote::parse(note).unwrap();
        assert_eq!(parsed.signed_by(&key), Signature::Valid);
        // Ed25519 is deterministic: the Go signer key reproduces the note.
        let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let signer = Signer::parse(skey).unwrap();
        assert_eq!(signer.verifier().encode(), vkey);
        assert_eq!(signer.encode(), skey);
        assert_eq!(signer.sign_note(&parsed.text), note);
    }

    #[test]
    fn malformed_inputs_are_named() {
        assert!(VerifierKey::parse("nonsense").is_err());
        assert!(VerifierKey::parse(&Signer::generate("a").unwrap().encode()).is_err());
        assert!(Signer::generate("has space").is_err());
        assert!(SignedNote::parse("no signatures\n").is_err());
        assert!(Checkpoint::parse("origin\n007\nAAAA\n").is_err());
    }
}
