//! RFC 6962 Merkle tree hashing (§2.1): leaf `SHA-256(0x00 ‖ data)`, node
//! `SHA-256(0x01 ‖ left ‖ right)`, the empty tree is `SHA-256("")`.
//!
//! [`Frontier`] is the append-only form the log keeps: the roots of the
//! perfect subtrees that make up the tree (one per set bit of its size), so
//! appending is O(1) amortised and the root is O(log n).

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The right edge of a Merkle tree: enough to append leaves and compute the
/// root without keeping the leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Roots of the perfect subtrees, largest (leftmost) first.
    peaks: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the perfect subtrees, largest first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Rebuilds a frontier from [`Frontier::peaks`]; `None` if their number
    /// does not fit `size` (one per set bit).
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Option<Self> {
        (peaks.len() == size.count_ones() as usize).then_some(Self { size, peaks })
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        // Merge equal-sized subtrees: one merge per trailing set bit of size.
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.peaks.pop().expect("one peak per set bit");
            node = node_hash(&left, &node);
            size >>= 1;
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// The RFC 6962 tree head of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        // MTH of an unbalanced tree: the peaks folded right to left.
        let mut peaks = self.peaks.iter().rev();
        match peaks.next() {
            None => empty_root(),
            Some(last) => peaks.fold(*last, |right, left| node_hash(left, &right)),
        }
    }
}

/// The tree head computed straight from RFC 6962's recursive definition
/// (for tests and for cross-checking [`Frontier`]).
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            // k: the largest power of two smaller than n.
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaves of the RFC 6962 test tree used by Certificate Transparency
    /// implementations, with the published roots for sizes 0 to 8.
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
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn known_roots_for_sizes_0_to_8() {
        let mut frontier = Frontier::new();
        let mut leaves = Vec::new();
        assert_eq!(hex::encode(frontier.root()), ROOTS[0]);
        for (i, data) in LEAVES.iter().enumerate() {
            frontier.push(leaf_hash(data));
            leaves.push(leaf_hash(data));
            assert_eq!(hex::encode(frontier.root()), ROOTS[i + 1], "size {}", i + 1);
            assert_eq!(
                hex::encode(root_of(&leaves)),
                ROOTS[i + 1],
                "size {}",
                i + 1
            );
        }
    }

    #[test]
    fn frontier_matches_the_definition_at_edge_sizes() {
        // 0, 1, 2, 3, 2^k and 2^k+1 up to 2^10+1, and everything in between.
        let leaves: Vec<Hash> = (0..1030u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut frontier = Frontier::new();
        for n in 0..=leaves.len() {
            assert_eq!(frontier.root(), root_of(&leaves[..n]), "size {n}");
            assert_eq!(frontier.size(), n as u64);
            let restored = Frontier::from_peaks(n as u64, frontier.peaks().to_vec()).unwrap();
            assert_eq!(restored, frontier);
            if n < leaves.len() {
                frontier.push(leaves[n]);
            }
        }
    }

    #[test]
    fn one_changed_or_swapped_leaf_changes_the_root() {
        let leaves: Vec<Hash> = (0..9u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let root = root_of(&leaves);
        let mut edited = leaves.clone();
        edited[4] = leaf_hash(b"edited");
        assert_ne!(root_of(&edited), root);
        let mut swapped = leaves.clone();
        swapped.swap(2, 3);
        assert_ne!(root_of(&swapped), root);
        // A leaf is not a node: the second-preimage guard of RFC 6962.
        assert_ne!(
            leaf_hash(&[leaves[0], leaves[1]].concat()),
            node_hash(&leaves[0], &leaves[1])
        );
    }
}
