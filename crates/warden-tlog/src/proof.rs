//! Merkle inclusion and consistency proofs: RFC 9162 §2.1.3 and §2.1.4
//! (the same proofs as RFC 6962 §2.1.1 and §2.1.2, with the verification
//! algorithms spelled out).
//!
//! [`Tree`] holds every leaf hash of a log together with the hash of every
//! perfect (power-of-two sized, aligned) subtree, and answers the RFC's
//! `MTH`, `PATH` and `PROOF` for any tree size up to its length.
//! [`verify_inclusion`] and [`verify_consistency`] are the verifier's side
//! and need nothing but the proof and the two tree heads.
//!
//! Sizes and indices are `u64`, as in a checkpoint. Proof hashes are listed
//! as the RFC lists them: from the leaf (or the old tree) towards the root.

use std::ops::Range;

use crate::merkle::{Frontier, Hash, empty_root, node_hash};

/// Which root a [`ProofError::RootMismatch`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// The root an inclusion proof leads to.
    Tree,
    /// The old tree's root, rebuilt from a consistency proof.
    Old,
    /// The new tree's root, rebuilt from a consistency proof.
    New,
}

impl std::fmt::Display for RootKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RootKind::Tree => "tree",
            RootKind::Old => "old tree",
            RootKind::New => "new tree",
        })
    }
}

/// Why a proof could not be produced or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// An inclusion proof in a tree of size 0: the empty tree has no leaves.
    #[error("tree size is 0: the empty tree includes no leaves")]
    EmptyTree,
    /// A consistency proof from a tree of size 0 (RFC 9162 needs `0 < old size`).
    #[error("old tree size is 0: consistency proofs need 0 < old size <= new size")]
    EmptyOldTree,
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is out of range for tree size {size} (index must be < size)")]
    IndexOutOfRange { index: u64, size: u64 },
    /// The old tree is larger than the new one (a log cannot shrink).
    #[error("old tree size {old} is larger than new tree size {new}")]
    OldLargerThanNew { old: u64, new: u64 },
    /// A [`Tree`] was asked about more leaves than it holds.
    #[error("tree size {size} is beyond the {len} leaves held")]
    SizeBeyondLeaves { size: u64, len: u64 },
    /// An inclusion proof with the wrong number of hashes for its index and size.
    #[error(
        "wrong proof length: an inclusion proof for leaf {index} in a tree of size {size} has {expected} hashes, got {got}"
    )]
    InclusionProofLength {
        index: u64,
        size: u64,
        expected: usize,
        got: usize,
    },
    /// A consistency proof with the wrong number of hashes for its sizes.
    #[error(
        "wrong proof length: a consistency proof from tree size {old} to {new} has {expected} hashes, got {got}"
    )]
    ConsistencyProofLength {
        old: u64,
        new: u64,
        expected: usize,
        got: usize,
    },
    /// Two tree heads of the same size with different roots: not one log.
    #[error(
        "trees of the same size {size} have different roots: old {} and new {}",
        hex::encode(.old_root),
        hex::encode(.new_root)
    )]
    SameSizeRootsDiffer {
        size: u64,
        old_root: Hash,
        new_root: Hash,
    },
    /// The proof leads to a root other than the one expected.
    #[error(
        "{which} root mismatch: the proof leads to {}, but the expected root is {}",
        hex::encode(.computed),
        hex::encode(.expected)
    )]
    RootMismatch {
        which: RootKind,
        computed: Hash,
        expected: Hash,
    },
}

/// All leaf hashes of a log held in memory, with every perfect subtree's
/// hash precomputed, producing roots and proofs for any tree size up to
/// [`Tree::len`].
///
/// `levels[0]` are the leaf hashes and `levels[l][i]` is the hash of the
/// perfect subtree over leaves `i·2^l .. (i+1)·2^l`: about `2n` hashes in
/// all, built with `n - 1` node hashes. Every subtree the RFC's recursive
/// definitions name is one of these, or (on the right edge of a smaller
/// tree) a fold of at most `log2 n` of them, so a root costs O(log n) node
/// hashes and a proof O(log² n) at worst, whatever the tree size.
#[derive(Clone)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tree")
            .field("len", &self.len())
            .field("levels", &self.levels.len())
            .finish()
    }
}

/// The largest power of two smaller than `n` (the RFC's `k`); `n >= 2`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

impl Tree {
    /// Builds the perfect-subtree levels over `leaves` (leaf hashes, see
    /// [`crate::merkle::leaf_hash`]).
    pub fn new(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while let Some(below) = levels.last().filter(|level| level.len() >= 2) {
            let above = below
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(above);
        }
        Self { levels }
    }

    /// The number of leaves held.
    pub fn len(&self) -> u64 {
        self.levels[0].len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.len() {
            return Err(ProofError::SizeBeyondLeaves {
                size,
                len: self.len(),
            });
        }
        Ok(())
    }

    /// `MTH(D[start:end])` for a subtree the RFC's recursion names: `start`
    /// is a multiple of the smallest power of two not below `end - start`,
    /// so the range splits into aligned perfect subtrees, one per set bit of
    /// its length, largest first. The MTH of such a range is those subtrees
    /// folded from the right.
    fn subtree_hash(&self, start: u64, end: u64) -> Hash {
        debug_assert!(start <= end && end <= self.len());
        let width = end - start;
        debug_assert!(width == 0 || start.is_multiple_of(width.next_power_of_two()));
        let mut folded: Option<Hash> = None;
        // Smallest (rightmost) subtree first; `rest` keeps the higher bits,
        // which are also the offset of the current subtree from `start`.
        let mut rest = width;
        while rest != 0 {
            let level = rest.trailing_zeros();
            rest &= rest - 1;
            let offset = start + rest;
            let hash = self.levels[level as usize][(offset >> level) as usize];
            folded = Some(match folded {
                None => hash,
                Some(right) => node_hash(&hash, &right),
            });
        }
        folded.unwrap_or_else(empty_root)
    }

    /// `MTH(D[0:size])`, the root of the first `size` leaves (the hash of
    /// the empty string for size 0).
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        Ok(self.subtree_hash(0, size))
    }

    /// `PATH(index, D[0:size])` (RFC 9162 §2.1.3.1): the inclusion proof of
    /// leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        Ok(self.hashes(&inclusion_ranges(index, size)?))
    }

    /// `PROOF(old_size, D[0:new_size])` (RFC 9162 §2.1.4.1): the
    /// consistency proof between the trees of the first `old_size` and the
    /// first `new_size` leaves, `0 < old_size <= new_size`; empty when the
    /// sizes are equal.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(new_size)?;
        Ok(self.hashes(&consistency_ranges(old_size, new_size)?))
    }

    fn hashes(&self, ranges: &[Range<u64>]) -> Vec<Hash> {
        ranges
            .iter()
            .map(|r| self.subtree_hash(r.start, r.end))
            .collect()
    }
}

/// The leaf ranges whose tree heads make up `PATH(index, D[0:size])`, in
/// the proof's order: the proof is `MTH(D[range])` for each. The ranges are
/// disjoint, so a [`Collector`] can hash them from a single pass over the
/// leaves.
pub fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<Range<u64>>, ProofError> {
    if size == 0 {
        return Err(ProofError::EmptyTree);
    }
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // The recursion walked from the root down: each step names the half
    // that does not hold the leaf, and the RFC appends it after the deeper
    // steps' hashes, so the list is reversed at the end.
    let (mut m, mut start, mut n) = (index, 0, size);
    let mut ranges = Vec::new();
    while n > 1 {
        let k = split_point(n);
        if m < k {
            ranges.push(start + k..start + n);
            n = k;
        } else {
            ranges.push(start..start + k);
            m -= k;
            start += k;
            n -= k;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

/// The leaf ranges whose tree heads make up `PROOF(old_size,
/// D[0:new_size])`, in the proof's order (see [`inclusion_ranges`]);
/// `0 < old_size <= new_size`, none when the sizes are equal.
pub fn consistency_ranges(old_size: u64, new_size: u64) -> Result<Vec<Range<u64>>, ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldLargerThanNew {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    // SUBPROOF(m, D[start:start+n], b), top down and reversed at the end as
    // in `inclusion_ranges`.
    let (mut m, mut start, mut n, mut known) = (old_size, 0, new_size, true);
    let mut ranges = Vec::new();
    while m != n {
        let k = split_point(n);
        if m <= k {
            ranges.push(start + k..start + n);
            n = k;
        } else {
            ranges.push(start..start + k);
            m -= k;
            start += k;
            n -= k;
            known = false;
        }
    }
    // m == n: the verifier holds MTH(D[0:old_size]) only if this subtree is
    // the whole old tree; otherwise the proof starts with it.
    if !known {
        ranges.push(start..start + n);
    }
    ranges.reverse();
    Ok(ranges)
}

/// Gathers the tree heads of disjoint leaf ranges (a proof's, from
/// [`inclusion_ranges`] or [`consistency_ranges`]) from one pass over a
/// log's leaves, keeping O(log n) hashes: a verifier that streams a whole
/// log can produce a proof without holding the log.
#[derive(Debug, Clone)]
pub struct Collector {
    /// (range, its place in the proof), by start.
    ranges: Vec<(Range<u64>, usize)>,
    /// The next range to fill.
    next: usize,
    current: Frontier,
    hashes: Vec<Option<Hash>>,
}

impl Collector {
    /// `ranges` must be disjoint (as a proof's are).
    pub fn new(ranges: Vec<Range<u64>>) -> Self {
        let count = ranges.len();
        let mut ranges: Vec<(Range<u64>, usize)> = ranges.into_iter().zip(0..).collect();
        ranges.sort_by_key(|(r, _)| r.start);
        debug_assert!(ranges.windows(2).all(|w| w[0].0.end <= w[1].0.start));
        Self {
            ranges,
            next: 0,
            current: Frontier::new(),
            hashes: vec![None; count],
        }
    }

    /// Feeds leaf `index` (leaves must come in order; the ones no range
    /// holds are skipped).
    pub fn push(&mut self, index: u64, leaf: &Hash) {
        let Some((range, place)) = self.ranges.get(self.next) else {
            return;
        };
        if !range.contains(&index) {
            return;
        }
        self.current.push(*leaf);
        if index + 1 == range.end {
            self.hashes[*place] = Some(self.current.root());
            self.current = Frontier::new();
            self.next += 1;
        }
    }

    /// The hashes in the proof's order, once every range was fed; `None`
    /// if the leaves stopped short.
    pub fn finish(self) -> Option<Vec<Hash>> {
        self.hashes.into_iter().collect()
    }
}

/// The number of hashes in `PATH(index, D[size])`, `index < size`: below the
/// level where the paths to `index` and to the last leaf meet, every level
/// has a sibling; above it, only the levels where the node is a right child.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let last = size - 1;
    let inner = 64 - (index ^ last).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// The number of hashes in `PROOF(old, D[new])`, `0 < old < new`: the
/// inclusion proof of the largest perfect subtree ending the old tree, plus
/// that subtree's own hash unless it is the whole old tree.
fn consistency_proof_len(old: u64, new: u64) -> usize {
    let level = old.trailing_zeros();
    let len = inclusion_proof_len((old - 1) >> level, ((new - 1) >> level) + 1);
    if old.is_power_of_two() { len } else { len + 1 }
}

/// Verifies that `leaf` (a leaf hash) is leaf `index` of the tree of `size`
/// leaves whose root is `root`, following RFC 9162 §2.1.3.2.
///
/// The proof must have exactly the length the index and size call for. Take
/// `size` and `root` from the same signed checkpoint: the proof binds the
/// leaf and its index to `root`, and a `size` whose tree has the same shape
/// along the path is only told apart by its root.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if size == 0 {
        return Err(ProofError::EmptyTree);
    }
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let length_error = || ProofError::InclusionProofLength {
        index,
        size,
        expected: inclusion_proof_len(index, size),
        got: proof.len(),
    };
    if proof.len() != inclusion_proof_len(index, size) {
        return Err(length_error());
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(length_error());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            // The last node of its level climbs until it is a right child.
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(length_error());
    }
    if r != *root {
        return Err(ProofError::RootMismatch {
            which: RootKind::Tree,
            computed: r,
            expected: *root,
        });
    }
    Ok(())
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`, following
/// RFC 9162 §2.1.4.2. `0 < old_size <= new_size`; for equal sizes the proof
/// is empty and the roots must be equal.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldLargerThanNew {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    let expected = if old_size == new_size {
        0
    } else {
        consistency_proof_len(old_size, new_size)
    };
    let length_error = || ProofError::ConsistencyProofLength {
        old: old_size,
        new: new_size,
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(length_error());
    }
    if old_size == new_size {
        if old_root != new_root {
            return Err(ProofError::SameSizeRootsDiffer {
                size: old_size,
                old_root: *old_root,
                new_root: *new_root,
            });
        }
        return Ok(());
    }
    // When the old tree is a perfect subtree, the verifier already holds its
    // hash: it is where both computations start.
    let (start, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        let (first, rest) = proof.split_first().ok_or_else(length_error)?;
        (first, rest)
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*start, *start);
    for c in rest {
        if sn == 0 {
            return Err(length_error());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(length_error());
    }
    if fr != *old_root {
        return Err(ProofError::RootMismatch {
            which: RootKind::Old,
            computed: fr,
            expected: *old_root,
        });
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch {
            which: RootKind::New,
            computed: sr,
            expected: *new_root,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, root_of};

    fn leaves(n: u32) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// PATH(m, D[n]) transcribed from RFC 9162 §2.1.3.1 over the leaves,
    /// with [`root_of`] for every MTH.
    fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
        if d.len() <= 1 {
            return Vec::new();
        }
        let k = split_point(d.len() as u64) as usize;
        if m < k {
            let mut p = path(m, &d[..k]);
            p.push(root_of(&d[k..]));
            p
        } else {
            let mut p = path(m - k, &d[k..]);
            p.push(root_of(&d[..k]));
            p
        }
    }

    /// SUBPROOF(m, D[n], b) transcribed from RFC 9162 §2.1.4.1.
    fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { Vec::new() } else { vec![root_of(d)] };
        }
        let k = split_point(n as u64) as usize;
        if m <= k {
            let mut p = subproof(m, &d[..k], b);
            p.push(root_of(&d[k..]));
            p
        } else {
            let mut p = subproof(m - k, &d[k..], false);
            p.push(root_of(&d[..k]));
            p
        }
    }

    #[test]
    fn split_point_is_the_largest_power_of_two_below() {
        for (n, k) in [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (u64::MAX, 1 << 63),
        ] {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }

    #[test]
    fn levels_hold_about_two_hashes_per_leaf() {
        for n in [0u32, 1, 2, 3, 7, 8, 9, 100, 1025] {
            let tree = Tree::new(leaves(n));
            let held: usize = tree.levels.iter().map(Vec::len).sum();
            assert!(held <= 2 * n as usize, "n = {n}: {held} hashes");
            assert!(tree.levels.last().unwrap().len() <= 1);
        }
    }

    #[test]
    fn proofs_match_the_recursive_definitions() {
        let d = leaves(70);
        let tree = Tree::new(d.clone());
        for n in 1..=d.len() {
            for m in 0..n {
                let proof = tree.inclusion_proof(m as u64, n as u64).unwrap();
                assert_eq!(proof, path(m, &d[..n]), "PATH({m}, D[{n}])");
                assert_eq!(proof.len(), inclusion_proof_len(m as u64, n as u64));
            }
            for m in 1..=n {
                let proof = tree.consistency_proof(m as u64, n as u64).unwrap();
                assert_eq!(proof, subproof(m, &d[..n], true), "PROOF({m}, D[{n}])");
                if m < n {
                    assert_eq!(proof.len(), consistency_proof_len(m as u64, n as u64));
                }
            }
        }
    }

    #[test]
    fn proof_lengths_are_logarithmic_in_large_trees() {
        let n: u64 = (1 << 40) + 12345;
        for index in [0, 1, n / 3, (1 << 40) - 1, 1 << 40, n - 2, n - 1] {
            assert!(inclusion_proof_len(index, n) <= 41, "index {index}");
        }
        for old in [1, 2, 3, 1 << 39, (1 << 40) + 1, n - 1] {
            assert!(consistency_proof_len(old, n) <= 2 * 41, "old {old}");
        }
    }
}
