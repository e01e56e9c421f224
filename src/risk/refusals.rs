//! Refused tokens by source address, for the `refused_tokens` feature:
//! someone trying tokens from an address, then making a call from it.
//!
//! The authentication stage hands every refusal here (through the audit
//! log's hook, installed by the pipeline). Only the last
//! [`WINDOW_SECS`] are kept, at most [`PER_ADDRESS`] per address and
//! [`ADDRESSES`] addresses; this replica's refusals only.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// How far back refusals count.
pub const WINDOW_SECS: i64 = 15 * 60;
/// Refusals kept per address (more count as this many).
pub const PER_ADDRESS: usize = 64;
/// Addresses kept; beyond, the quietest are forgotten.
pub const ADDRESSES: usize = 10_000;

#[derive(Debug, Default)]
pub struct Refusals {
    by_address: HashMap<IpAddr, VecDeque<i64>>,
}

impl Refusals {
    /// Notes a refusal from `ip` at `at` (Unix seconds).
    pub fn note(&mut self, ip: IpAddr, at: i64) {
        if !self.by_address.contains_key(&ip) && self.by_address.len() >= ADDRESSES {
            self.prune(at);
        }
        let times = self.by_address.entry(ip).or_default();
        times.push_back(at);
        while times.len() > PER_ADDRESS {
            times.pop_front();
        }
    }

    /// Refusals from `ip` in the window before `at`.
    pub fn recent(&self, ip: IpAddr, at: i64) -> usize {
        self.by_address.get(&ip).map_or(0, |times| {
            times.iter().filter(|t| **t > at - WINDOW_SECS).count()
        })
    }

    /// Forgets what is out of the window, then, if still full, the
    /// addresses with the fewest refusals.
    fn prune(&mut self, at: i64) {
        self.by_address.retain(|_, times| {
            times.retain(|t| *t > at - WINDOW_SECS);
            !times.is_empty()
        });
        if self.by_address.len() >= ADDRESSES {
            let mut counts: Vec<(usize, IpAddr)> = self
                .by_address
                .iter()
                .map(|(ip, times)| (times.len(), *ip))
                .collect();
            counts.sort();
            for (_, ip) in counts.into_iter().take(ADDRESSES / 10) {
                self.by_address.remove(&ip);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_address.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_address.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_window_per_address_and_stays_bounded() {
        let mut r = Refusals::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..5 {
            r.note(a, 1_000 + i);
        }
        r.note(b, 1_000);
        assert_eq!(r.recent(a, 1_010), 5);
        assert_eq!(r.recent(b, 1_010), 1);
        assert_eq!(
            r.recent(a, 1_000 + WINDOW_SECS + 3),
            1,
            "older ones drop out"
        );
        for i in 0..200 {
            r.note(a, 2_000 + i);
        }
        assert_eq!(r.recent(a, 2_200), PER_ADDRESS);
        for i in 0..(ADDRESSES as u32 + 50) {
            r.note(IpAddr::from(i.to_be_bytes()), 3_000);
        }
        assert!(r.len() <= ADDRESSES, "{}", r.len());
    }
}
