//! Inclusion and consistency proofs: published vectors, every small tree,
//! and tampered proofs.

use warden_tlog::merkle::{Frontier, Hash, empty_root, leaf_hash, root_of};
use warden_tlog::proof::{
    Collector, ProofError, RootKind, Tree, consistency_ranges, inclusion_ranges,
    verify_consistency, verify_inclusion,
};

fn h(hex: &str) -> Hash {
    hex::decode(hex).unwrap().try_into().unwrap()
}

fn hashes(hexes: &[&str]) -> Vec<Hash> {
    hexes.iter().map(|x| h(x)).collect()
}

/// Leaves `0..n` as big-endian u32s.
fn leaves(n: u32) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

/// The RFC 6962 test tree used across Certificate Transparency
/// implementations. Leaves, roots and proofs are the published test data of
/// github.com/transparency-dev/merkle, `proof/verify_test.go` (the same data
/// as google/certificate-transparency's Merkle tree tests). Its indices are
/// 0-based here; that file counts leaves from 1.
mod published {
    use super::*;

    const LEAVES: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];

    /// Roots of the trees of the first 1 to 8 leaves.
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// (leaf index, tree size, proof).
    const INCLUSION: [(u64, u64, &[&str]); 5] = [
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    /// (old size, new size, proof).
    const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    fn tree() -> (Vec<Hash>, Tree) {
        let leaves: Vec<Hash> = LEAVES.iter().map(|d| leaf_hash(d)).collect();
        (leaves.clone(), Tree::new(leaves))
    }

    fn root(size: u64) -> Hash {
        h(ROOTS[size as usize - 1])
    }

    #[test]
    fn roots_match() {
        let (_, tree) = tree();
        assert_eq!(tree.root(0).unwrap(), empty_root());
        for size in 1..=8 {
            assert_eq!(tree.root(size).unwrap(), root(size), "size {size}");
        }
    }

    #[test]
    fn inclusion_proofs_are_generated_and_verify() {
        let (leaves, tree) = tree();
        for (index, size, proof) in INCLUSION {
            let proof = hashes(proof);
            assert_eq!(
                tree.inclusion_proof(index, size).unwrap(),
                proof,
                "leaf {index}, size {size}"
            );
            verify_inclusion(&leaves[index as usize], index, size, &proof, &root(size)).unwrap();
        }
    }

    #[test]
    fn consistency_proofs_are_generated_and_verify() {
        let (_, tree) = tree();
        for (old, new, proof) in CONSISTENCY {
            let proof = hashes(proof);
            assert_eq!(
                tree.consistency_proof(old, new).unwrap(),
                proof,
                "{old} -> {new}"
            );
            verify_consistency(old, new, &root(old), &root(new), &proof).unwrap();
        }
    }

    /// The corruptions the published tests apply to these proofs.
    #[test]
    fn corrupted_inclusion_proofs_are_refused() {
        let (leaves, _) = tree();
        let some_hash = h("abacaba000000000000000000000000000000000000000000060061e00123456");
        for (index, size, proof) in INCLUSION.into_iter().skip(1) {
            let proof = hashes(proof);
            let (leaf, root) = (leaves[index as usize], root(size));
            let refused = |what: &str, i: u64, n: u64, leaf: Hash, p: &[Hash], r: Hash| {
                let verdict = verify_inclusion(&leaf, i, n, p, &r);
                assert!(
                    verdict.is_err(),
                    "leaf {index}, size {size}: {what} verified"
                );
            };
            refused("index + 1", index + 1, size, leaf, &proof, root);
            refused("index - 1", index.wrapping_sub(1), size, leaf, &proof, root);
            refused("index ^ 2", index ^ 2, size, leaf, &proof, root);
            refused("size * 2", index, size * 2, leaf, &proof, root);
            refused("size / 2", index, size / 2, leaf, &proof, root);
            refused(
                "wrong leaf",
                index,
                size,
                leaf_hash(b"WrongLeaf"),
                &proof,
                root,
            );
            refused("empty root", index, size, leaf, &proof, empty_root());
            refused("other root", index, size, leaf, &proof, some_hash);
            refused(
                "root appended",
                index,
                size,
                leaf,
                &[&proof[..], &[root]].concat(),
                root,
            );
            refused(
                "root prepended",
                index,
                size,
                leaf,
                &[&[root], &proof[..]].concat(),
                root,
            );
            refused(
                "last dropped",
                index,
                size,
                leaf,
                &proof[..proof.len() - 1],
                root,
            );
            let mut inserted = proof.clone();
            inserted.insert(1, some_hash);
            refused("inserted", index, size, leaf, &inserted, root);
            for i in 0..proof.len() {
                let mut flipped = proof.clone();
                flipped[i][0] ^= 8;
                refused(&format!("flipped {i}"), index, size, leaf, &flipped, root);
            }
        }
    }

    #[test]
    fn corrupted_consistency_proofs_are_refused() {
        for (old, new, proof) in CONSISTENCY.into_iter().skip(1) {
            let proof = hashes(proof);
            let (r1, r2) = (root(old), root(new));
            let refused = |what: &str, m: u64, n: u64, r1: Hash, r2: Hash, p: &[Hash]| {
                let verdict = verify_consistency(m, n, &r1, &r2, p);
                assert!(verdict.is_err(), "{old} -> {new}: {what} verified");
            };
            let wrong = leaf_hash(b"WrongRoot");
            refused("old - 1", old - 1, new, r1, r2, &proof);
            refused("old + 1", old + 1, new, r1, r2, &proof);
            refused("old ^ 2", old ^ 2, new, r1, r2, &proof);
            refused("new * 2", old, new * 2, r1, r2, &proof);
            refused("new / 2", old, new / 2, r1, r2, &proof);
            refused("wrong old root", old, new, wrong, r2, &proof);
            refused("wrong new root", old, new, r1, wrong, &proof);
            refused("swapped roots", old, new, r2, r1, &proof);
            refused("empty proof", old, new, r1, r2, &[]);
            refused(
                "old root appended",
                old,
                new,
                r1,
                r2,
                &[&proof[..], &[r1]].concat(),
            );
            refused(
                "new root appended",
                old,
                new,
                r1,
                r2,
                &[&proof[..], &[r2]].concat(),
            );
            refused(
                "old root prepended",
                old,
                new,
                r1,
                r2,
                &[&[r1], &proof[..]].concat(),
            );
            refused(
                "new root prepended",
                old,
                new,
                r1,
                r2,
                &[&[r2], &proof[..]].concat(),
            );
            refused(
                "proof[0] repeated",
                old,
                new,
                r1,
                r2,
                &[&[proof[0]], &proof[..]].concat(),
            );
            refused("last dropped", old, new, r1, r2, &proof[..proof.len() - 1]);
            for i in 0..proof.len() {
                let mut flipped = proof.clone();
                flipped[i][0] ^= 16;
                refused(&format!("flipped {i}"), old, new, r1, r2, &flipped);
            }
        }
    }
}

/// Every tree of 1 to 70 leaves, every leaf and every old size.
mod exhaustive {
    use super::*;

    const MAX: u32 = 70;

    #[test]
    fn roots_match_the_definition_and_the_frontier() {
        let d = leaves(MAX);
        let tree = Tree::new(d.clone());
        assert_eq!(tree.len(), MAX as u64);
        let mut frontier = Frontier::new();
        for n in 0..=d.len() {
            let root = tree.root(n as u64).unwrap();
            assert_eq!(root, root_of(&d[..n]), "size {n}");
            assert_eq!(root, frontier.root(), "size {n}");
            // A tree holding exactly these leaves agrees with the larger one.
            assert_eq!(Tree::new(d[..n].to_vec()).root(n as u64).unwrap(), root);
            if n < d.len() {
                frontier.push(d[n]);
            }
        }
    }

    #[test]
    fn every_inclusion_proof_verifies() {
        let d = leaves(MAX);
        let tree = Tree::new(d.clone());
        for size in 1..=MAX as u64 {
            let root = tree.root(size).unwrap();
            let bound = 64 - (size - 1).leading_zeros() as usize; // ceil(log2 size)
            for index in 0..size {
                let proof = tree.inclusion_proof(index, size).unwrap();
                assert!(proof.len() <= bound, "leaf {index}, size {size}");
                verify_inclusion(&d[index as usize], index, size, &proof, &root)
                    .unwrap_or_else(|e| panic!("leaf {index}, size {size}: {e}"));
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies() {
        let tree = Tree::new(leaves(MAX));
        for new in 1..=MAX as u64 {
            let new_root = tree.root(new).unwrap();
            for old in 1..=new {
                let old_root = tree.root(old).unwrap();
                let proof = tree.consistency_proof(old, new).unwrap();
                assert_eq!(proof.is_empty(), old == new, "{old} -> {new}");
                verify_consistency(old, new, &old_root, &new_root, &proof)
                    .unwrap_or_else(|e| panic!("{old} -> {new}: {e}"));
            }
        }
    }
}

/// Proofs that must be refused, with the reason named.
mod adversarial {
    use super::*;

    const MAX: u32 = 40;

    fn flip(proof: &[Hash], i: usize) -> Vec<Hash> {
        let mut p = proof.to_vec();
        p[i][31] ^= 1;
        p
    }

    #[test]
    fn tampered_inclusion_proofs_are_refused() {
        let d = leaves(MAX);
        let tree = Tree::new(d.clone());
        let root = |n: u64| tree.root(n).unwrap();
        for size in 1..=MAX as u64 {
            for index in 0..size {
                let leaf = d[index as usize];
                let proof = tree.inclusion_proof(index, size).unwrap();
                let r = root(size);
                for i in 0..proof.len() {
                    let err = verify_inclusion(&leaf, index, size, &flip(&proof, i), &r);
                    assert!(
                        matches!(err, Err(ProofError::RootMismatch { which: RootKind::Tree, expected, .. }) if expected == r),
                        "leaf {index}, size {size}, flipped {i}: {err:?}"
                    );
                }
                if let Some((_, shorter)) = proof.split_last() {
                    let err = verify_inclusion(&leaf, index, size, shorter, &r);
                    assert!(
                        matches!(err, Err(ProofError::InclusionProofLength { got, expected, .. }) if got + 1 == expected),
                        "leaf {index}, size {size}, dropped: {err:?}"
                    );
                }
                let longer = [&proof[..], &[r]].concat();
                assert!(matches!(
                    verify_inclusion(&leaf, index, size, &longer, &r),
                    Err(ProofError::InclusionProofLength { .. })
                ));
                // The leaf at another index, or another leaf at this index.
                for other in [index.wrapping_sub(1), index + 1] {
                    if other < size {
                        assert!(verify_inclusion(&leaf, other, size, &proof, &r).is_err());
                        let err = verify_inclusion(&d[other as usize], index, size, &proof, &r);
                        assert!(matches!(err, Err(ProofError::RootMismatch { .. })));
                    }
                }
                // Another size, with that size's own root.
                for other in [size - 1, size + 1] {
                    if other > index && other <= MAX as u64 {
                        let err = verify_inclusion(&leaf, index, other, &proof, &root(other));
                        assert!(err.is_err(), "leaf {index}, size {size} as size {other}");
                    }
                }
                assert!(matches!(
                    verify_inclusion(&leaf, size, size, &proof, &r),
                    Err(ProofError::IndexOutOfRange { index: i, size: s }) if i == size && s == size
                ));
            }
        }
    }

    #[test]
    fn tampered_consistency_proofs_are_refused() {
        let tree = Tree::new(leaves(MAX));
        let root = |n: u64| tree.root(n).unwrap();
        for new in 2..=MAX as u64 {
            let r2 = root(new);
            for old in 1..new {
                let r1 = root(old);
                let proof = tree.consistency_proof(old, new).unwrap();
                for i in 0..proof.len() {
                    let err = verify_consistency(old, new, &r1, &r2, &flip(&proof, i));
                    assert!(
                        matches!(err, Err(ProofError::RootMismatch { .. })),
                        "{old} -> {new}, flipped {i}: {err:?}"
                    );
                }
                let (_, shorter) = proof.split_last().unwrap();
                assert!(matches!(
                    verify_consistency(old, new, &r1, &r2, shorter),
                    Err(ProofError::ConsistencyProofLength { .. })
                ));
                let longer = [&proof[..], &[r2]].concat();
                assert!(matches!(
                    verify_consistency(old, new, &r1, &r2, &longer),
                    Err(ProofError::ConsistencyProofLength { .. })
                ));
                let err = verify_consistency(old, new, &r2, &r1, &proof);
                assert!(
                    matches!(err, Err(ProofError::RootMismatch { .. })),
                    "{old} -> {new}, swapped roots: {err:?}"
                );
                assert!(matches!(
                    verify_consistency(new, old, &r2, &r1, &proof),
                    Err(ProofError::OldLargerThanNew { .. })
                ));
                // Other sizes, each with its own root.
                for (m, n) in [
                    (old - 1, new),
                    (old + 1, new),
                    (old, new - 1),
                    (old, new + 1),
                ] {
                    if m >= 1 && m <= n && n <= MAX as u64 && (m, n) != (old, new) {
                        let err = verify_consistency(m, n, &root(m), &root(n), &proof);
                        assert!(err.is_err(), "{old} -> {new} as {m} -> {n}");
                    }
                }
            }
        }
    }

    #[test]
    fn rewritten_history_is_not_consistent() {
        let honest = leaves(MAX);
        let honest_tree = Tree::new(honest.clone());
        for edited in 0..MAX as usize {
            let mut rewritten = honest.clone();
            rewritten[edited] = leaf_hash(b"rewritten");
            let rewritten_tree = Tree::new(rewritten);
            for old in 1..MAX as u64 {
                // The auditor holds the honest head of size `old`.
                let old_root = honest_tree.root(old).unwrap();
                for new in old + 1..=MAX as u64 {
                    let new_root = rewritten_tree.root(new).unwrap();
                    let forged = rewritten_tree.consistency_proof(old, new).unwrap();
                    let honest_proof = honest_tree.consistency_proof(old, new).unwrap();
                    let verdicts = [
                        verify_consistency(old, new, &old_root, &new_root, &forged),
                        verify_consistency(old, new, &old_root, &new_root, &honest_proof),
                    ];
                    if (edited as u64) < old {
                        // A leaf the auditor already saw was changed.
                        for v in verdicts {
                            assert!(
                                matches!(v, Err(ProofError::RootMismatch { .. })),
                                "leaf {edited} rewritten, {old} -> {new}: {v:?}"
                            );
                        }
                    } else {
                        // Only leaves after the old head differ: still an append.
                        verdicts[0].clone().unwrap();
                    }
                }
            }
        }
    }

    #[test]
    fn empty_and_out_of_range_requests_are_refused() {
        let d = leaves(5);
        let tree = Tree::new(d.clone());
        let r = tree.root(5).unwrap();
        assert_eq!(
            verify_inclusion(&d[0], 0, 0, &[], &empty_root()),
            Err(ProofError::EmptyTree)
        );
        assert_eq!(tree.inclusion_proof(0, 0), Err(ProofError::EmptyTree));
        assert_eq!(
            tree.inclusion_proof(5, 5),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            verify_inclusion(&d[0], 7, 5, &[], &r),
            Err(ProofError::IndexOutOfRange { index: 7, size: 5 })
        );
        assert_eq!(
            tree.inclusion_proof(0, 6),
            Err(ProofError::SizeBeyondLeaves { size: 6, len: 5 })
        );
        assert_eq!(
            tree.root(6),
            Err(ProofError::SizeBeyondLeaves { size: 6, len: 5 })
        );
        assert_eq!(
            tree.consistency_proof(1, 6),
            Err(ProofError::SizeBeyondLeaves { size: 6, len: 5 })
        );
        assert_eq!(tree.consistency_proof(0, 5), Err(ProofError::EmptyOldTree));
        assert_eq!(
            verify_consistency(0, 5, &empty_root(), &r, &[]),
            Err(ProofError::EmptyOldTree)
        );
        assert_eq!(
            tree.consistency_proof(4, 3),
            Err(ProofError::OldLargerThanNew { old: 4, new: 3 })
        );
        assert_eq!(
            verify_consistency(5, 4, &r, &r, &[]),
            Err(ProofError::OldLargerThanNew { old: 5, new: 4 })
        );
        // Equal sizes: no proof, and the roots must agree.
        assert_eq!(tree.consistency_proof(5, 5), Ok(Vec::new()));
        verify_consistency(5, 5, &r, &r, &[]).unwrap();
        let other = tree.root(4).unwrap();
        assert_eq!(
            verify_consistency(5, 5, &r, &other, &[]),
            Err(ProofError::SameSizeRootsDiffer {
                size: 5,
                old_root: r,
                new_root: other
            })
        );
        assert_eq!(
            verify_consistency(5, 5, &r, &r, &[r]),
            Err(ProofError::ConsistencyProofLength {
                old: 5,
                new: 5,
                expected: 0,
                got: 1
            })
        );
        let empty = Tree::new(Vec::new());
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.root(0), Ok(empty_root()));
    }

    #[test]
    fn errors_name_what_was_wrong() {
        let d = leaves(8);
        let tree = Tree::new(d.clone());
        let r = tree.root(8).unwrap();
        let proof = tree.inclusion_proof(3, 8).unwrap();

        let err = verify_inclusion(&d[3], 3, 8, &proof[..2], &r).unwrap_err();
        assert_eq!(
            err.to_string(),
            "wrong proof length: an inclusion proof for leaf 3 in a tree of size 8 has 3 hashes, got 2"
        );

        let err = verify_inclusion(&d[3], 3, 8, &flip(&proof, 0), &r).unwrap_err();
        let ProofError::RootMismatch { computed, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            err.to_string(),
            format!(
                "tree root mismatch: the proof leads to {}, but the expected root is {}",
                hex::encode(computed),
                hex::encode(r)
            )
        );

        let r5 = tree.root(5).unwrap();
        let proof = tree.consistency_proof(5, 8).unwrap();
        let err = verify_consistency(5, 8, &leaf_hash(b"x"), &r, &proof).unwrap_err();
        assert!(
            err.to_string().starts_with("old tree root mismatch"),
            "{err}"
        );
        assert!(err.to_string().contains(&hex::encode(r5)), "{err}");
        let err = verify_consistency(5, 8, &r5, &leaf_hash(b"x"), &proof).unwrap_err();
        assert!(
            err.to_string().starts_with("new tree root mismatch"),
            "{err}"
        );
        assert!(err.to_string().contains(&hex::encode(r)), "{err}");
        assert_eq!(
            verify_consistency(5, 8, &r5, &r, &proof[1..])
                .unwrap_err()
                .to_string(),
            "wrong proof length: a consistency proof from tree size 5 to 8 has 4 hashes, got 3"
        );

        for (err, text) in [
            (
                ProofError::EmptyTree,
                "tree size is 0: the empty tree includes no leaves",
            ),
            (
                ProofError::EmptyOldTree,
                "old tree size is 0: consistency proofs need 0 < old size <= new size",
            ),
            (
                ProofError::IndexOutOfRange { index: 8, size: 8 },
                "leaf index 8 is out of range for tree size 8 (index must be < size)",
            ),
            (
                ProofError::OldLargerThanNew { old: 9, new: 8 },
                "old tree size 9 is larger than new tree size 8",
            ),
            (
                ProofError::SizeBeyondLeaves { size: 9, len: 8 },
                "tree size 9 is beyond the 8 leaves held",
            ),
        ] {
            assert_eq!(err.to_string(), text);
        }
        let err = ProofError::SameSizeRootsDiffer {
            size: 8,
            old_root: r5,
            new_root: r,
        };
        assert_eq!(
            err.to_string(),
            format!(
                "trees of the same size 8 have different roots: old {} and new {}",
                hex::encode(r5),
                hex::encode(r)
            )
        );
    }

    /// What an inclusion proof does not bind: the proof for leaf 0 of the
    /// 5-leaf tree has the same shape as in the 6-leaf tree (three right
    /// siblings), so with the 5-leaf root it also "verifies" for size 6.
    /// Size and root must come from the same signed checkpoint.
    #[test]
    fn the_size_is_bound_through_the_root() {
        let d = leaves(6);
        let tree = Tree::new(d.clone());
        let (r5, r6) = (tree.root(5).unwrap(), tree.root(6).unwrap());
        let proof = tree.inclusion_proof(0, 5).unwrap();
        verify_inclusion(&d[0], 0, 5, &proof, &r5).unwrap();
        verify_inclusion(&d[0], 0, 6, &proof, &r5).unwrap();
        assert!(verify_inclusion(&d[0], 0, 6, &proof, &r6).is_err());
    }
}

/// A proof gathered in one pass over the leaves, keeping only the ranges'
/// hashes, is the proof [`Tree`] gives; leaves that stop short give none.
#[test]
fn a_collector_gathers_every_proof_from_one_pass() {
    let all = leaves(45);
    let tree = Tree::new(all.clone());
    let gather = |ranges: Vec<std::ops::Range<u64>>, upto: usize| {
        let mut collector = Collector::new(ranges);
        for (i, leaf) in all[..upto].iter().enumerate() {
            collector.push(i as u64, leaf);
        }
        collector.finish()
    };
    for new in 1..=45u64 {
        for old in 1..=new {
            let ranges = consistency_ranges(old, new).unwrap();
            assert_eq!(
                gather(ranges.clone(), new as usize),
                Some(tree.consistency_proof(old, new).unwrap()),
                "consistency {old} -> {new}"
            );
            if let Some(last) = ranges.iter().map(|r| r.end).max()
                && last > 0
            {
                assert_eq!(
                    gather(ranges, last as usize - 1),
                    None,
                    "{old} -> {new} short"
                );
            }
        }
        for index in 0..new {
            assert_eq!(
                gather(inclusion_ranges(index, new).unwrap(), new as usize),
                Some(tree.inclusion_proof(index, new).unwrap()),
                "inclusion {index} in {new}"
            );
        }
    }
    assert_eq!(
        consistency_ranges(3, 2),
        Err(ProofError::OldLargerThanNew { old: 3, new: 2 })
    );
    assert_eq!(consistency_ranges(0, 2), Err(ProofError::EmptyOldTree));
    assert_eq!(
        inclusion_ranges(2, 2),
        Err(ProofError::IndexOutOfRange { index: 2, size: 2 })
    );
}
