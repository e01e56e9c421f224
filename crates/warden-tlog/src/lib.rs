//! Transparency-log primitives for Warden's audit log, usable on their own
//! by anyone who audits such a log.
//!
//! - [`merkle`]: RFC 6962 §2.1 tree hashing (leaf and node hashes, the tree
//!   head of a list of leaves) and [`merkle::Frontier`], the append-only
//!   right edge of a tree.
//! - [`proof`]: inclusion and consistency proofs, RFC 9162 §2.1.3 and
//!   §2.1.4: [`proof::Tree`] produces them from the leaf hashes,
//!   [`proof::verify_inclusion`] and [`proof::verify_consistency`] check
//!   them against tree heads.
//! - [`note`]: Ed25519 keys in the text form of Go's `sumdb/note`, C2SP
//!   signed notes (<https://c2sp.org/signed-note>) and checkpoints
//!   (<https://c2sp.org/tlog-checkpoint>).
//!
//! ```
//! use warden_tlog::merkle::leaf_hash;
//! use warden_tlog::proof::{Tree, verify_consistency, verify_inclusion};
//!
//! let leaves: Vec<_> = (0u32..10).map(|i| leaf_hash(&i.to_be_bytes())).collect();
//! let tree = Tree::new(leaves.clone());
//!
//! // Leaf 3 is in the tree of the first 7 leaves...
//! let root7 = tree.root(7)?;
//! let proof = tree.inclusion_proof(3, 7)?;
//! verify_inclusion(&leaves[3], 3, 7, &proof, &root7)?;
//!
//! // ...and that tree is a prefix of the tree of all 10.
//! let root10 = tree.root(10)?;
//! let proof = tree.consistency_proof(7, 10)?;
//! verify_consistency(7, 10, &root7, &root10, &proof)?;
//! # Ok::<(), warden_tlog::proof::ProofError>(())
//! ```

#![forbid(unsafe_code)]

pub mod merkle;
pub mod note;
pub mod proof;
