//! Where a source address is: country and ASN from a local lookup table
//! (`[risk] geo`), a CSV of `network,country,asn` rows, e.g.
//!
//! ```text
//! network,country,asn
//! 20.33.0.0/16,NL,8075
//! 2a01:111::/32,IE,8075
//! ```
//!
//! Warden never asks a service on the internet where a caller is; a
//! deployment exports the table from the GeoIP database it licenses.

use std::net::IpAddr;
use std::path::Path;

/// One network of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub country: String,
    pub asn: Option<u32>,
}

/// Sorted, non-overlapping ranges (the narrowest wins where the file nests them).
#[derive(Debug, Clone, Default)]
pub struct GeoTable {
    ranges: Vec<(u128, u128, Place)>,
}

impl GeoTable {
    /// Reads the CSV at `path`; errors name the file and line.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("risk.geo: cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("risk.geo: {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut table = GeoTable::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || (i == 0 && line.starts_with("network")) {
                continue;
            }
            let mut fields = line.split(',').map(str::trim);
            let (Some(net), Some(country)) = (fields.next(), fields.next()) else {
                return Err(format!("line {}: expected network,country[,asn]", i + 1));
            };
            let asn = match fields.next().filter(|a| !a.is_empty()) {
                Some(a) => Some(
                    a.trim_start_matches("AS")
                        .parse::<u32>()
                        .map_err(|_| format!("line {}: ASN {a:?} is not a number", i + 1))?,
                ),
                None => None,
            };
            let (start, end) = cidr(net).map_err(|e| format!("line {}: {e}", i + 1))?;
            table.insert(
                start,
                end,
                Place {
                    country: country.to_ascii_uppercase(),
                    asn,
                },
            );
        }
        table.ranges.sort_by_key(|r| (r.0, std::cmp::Reverse(r.1)));
        Ok(table)
    }

    /// Adds a network (the eval harness builds its table this way).
    pub fn insert(&mut self, start: u128, end: u128, place: Place) {
        self.ranges.push((start, end, place));
    }

    /// Sorts after [`GeoTable::insert`]s.
    pub fn finish(&mut self) {
        self.ranges.sort_by_key(|r| (r.0, std::cmp::Reverse(r.1)));
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The narrowest network holding `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&Place> {
        let x = key(ip);
        let upto = self.ranges.partition_point(|r| r.0 <= x);
        self.ranges[..upto]
            .iter()
            .rev()
            .take(64)
            .filter(|r| r.1 >= x)
            .min_by_key(|r| r.1 - r.0)
            .map(|r| &r.2)
    }
}

/// Addresses on one line: IPv4 mapped into IPv6 space.
pub fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// `a.b.c.d/n` or `x::/n` → inclusive range on the IPv6 line.
pub fn cidr(net: &str) -> Result<(u128, u128), String> {
    let (addr, len) = net.split_once('/').unwrap_or((net, ""));
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{net:?} is not an address or network"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u32 = if len.is_empty() {
        max
    } else {
        len.parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("{net:?}: prefix length must be 0..={max}"))?
    };
    let bits = 128 - (max - len);
    let start = key(ip);
    let host = if bits == 0 {
        u128::MAX
    } else {
        (1u128 << (128 - bits)) - 1
    };
    Ok((start & !host, (start & !host) | host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_the_narrowest_network() {
        let t = GeoTable::parse(
            "network,country,asn\n10.0.0.0/8,de,3320\n10.1.0.0/16,FR,AS3215\n2a01:111::/32,IE,8075\n",
        )
        .unwrap();
        let at = |s: &str| {
            t.lookup(s.parse().unwrap())
                .map(|p| (p.country.clone(), p.asn))
        };
        assert_eq!(at("10.2.3.4"), Some(("DE".into(), Some(3320))));
        assert_eq!(at("10.1.3.4"), Some(("FR".into(), Some(3215))));
        assert_eq!(at("2a01:111:0:1::5"), Some(("IE".into(), Some(8075))));
        assert_eq!(at("11.0.0.1"), None);
    }

    #[test]
    fn bad_rows_name_the_line() {
        let e = GeoTable::parse("10.0.0.0/8,DE\n10.0.0.0/33,DE\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("prefix length"), "{e}");
        let e = GeoTable::parse("nonsense\n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = GeoTable::parse("10.0.0.0/8,DE,ASx\n").unwrap_err();
        assert!(e.contains("ASN"), "{e}");
    }
}
