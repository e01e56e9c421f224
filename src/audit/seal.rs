//! Sealing a record for the store: its canonical bytes with the sequence
//! number the writer assigns, and their leaf hash.
//!
//! The store's writer is one thread and numbers records in commit order, so
//! whatever it does per record bounds the log's throughput. The expensive
//! part, canonicalising the record (RFC 8785), is done before the record is
//! queued, by the task that appends it: the record is canonicalised once
//! with a placeholder number, and the writer only puts the real number's
//! digits in its place and hashes the result. The bytes are exactly those
//! [`Record::canonical`] gives with the real number (tested below); when
//! that cannot be guaranteed (the placeholder's text occurs more than once,
//! which a nested `"seq"` key with that very value would cause, or a number
//! at or above 2^53, which RFC 8785 would not print as digits) the writer
//! canonicalises the whole record as before.

use super::merkle::leaf_hash;
use super::record::Record;
use crate::store::{Columns, Sealed, Sealer};

/// The placeholder number: the largest integer RFC 8785 prints as digits
/// (2^53 - 1). Real numbers are below it.
const PLACEHOLDER: u64 = (1 << 53) - 1;

/// The placeholder as the canonical bytes hold it.
const PLACEHOLDER_FIELD: &[u8] = b"\"seq\":9007199254740991";

/// The bytes of the field before its value.
const FIELD_NAME: &[u8] = b"\"seq\":";

/// The store's sealer for `record`: canonicalised now, numbered later.
pub fn sealer(mut record: Record) -> Sealer {
    let index = Index::of(&record);
    record.seq = PLACEHOLDER;
    let split = match record.canonical() {
        Ok(bytes) => Split::of(bytes),
        Err(e) => return Box::new(move |_| Err(e.to_string())),
    };
    match split {
        Some(split) => Box::new(move |seq| {
            if seq >= PLACEHOLDER {
                record.seq = seq;
                return whole(&record, index);
            }
            Ok(index.seal(split.with(seq)))
        }),
        None => Box::new(move |seq| {
            record.seq = seq;
            whole(&record, index)
        }),
    }
}

/// Canonicalises the whole record (the fallback).
fn whole(record: &Record, index: Index) -> Result<Sealed, String> {
    let bytes = record.canonical().map_err(|e| e.to_string())?;
    Ok(index.seal(bytes))
}

/// Canonical bytes around the value of the top-level `seq`.
struct Split {
    bytes: Vec<u8>,
    /// Where the placeholder's digits start and end.
    digits: (usize, usize),
}

impl Split {
    /// Finds the placeholder in `bytes`; `None` unless it occurs once
    /// (then it is the top-level field: a `"` inside a string is escaped,
    /// so the pattern cannot start inside one).
    fn of(bytes: Vec<u8>) -> Option<Split> {
        let mut found = bytes
            .windows(PLACEHOLDER_FIELD.len())
            .enumerate()
            .filter(|(_, w)| *w == PLACEHOLDER_FIELD)
            .map(|(at, _)| at);
        let at = found.next()?;
        if found.next().is_some() {
            return None;
        }
        let start = at + FIELD_NAME.len();
        Some(Split {
            bytes,
            digits: (start, at + PLACEHOLDER_FIELD.len()),
        })
    }

    /// The bytes with `seq` in place of the placeholder.
    fn with(self, seq: u64) -> Vec<u8> {
        let Split {
            bytes,
            digits: (start, end),
        } = self;
        let digits = seq.to_string();
        let digits = digits.as_bytes();
        let mut out = Vec::with_capacity(bytes.len() - (end - start) + digits.len());
        out.extend_from_slice(&bytes[..start]);
        out.extend_from_slice(digits);
        out.extend_from_slice(&bytes[end..]);
        out
    }
}

/// The record's indexed columns, read before it is queued.
struct Index(Columns);

impl Index {
    fn of(record: &Record) -> Index {
        Index(record.columns())
    }

    fn seal(self, bytes: Vec<u8>) -> Sealed {
        Sealed {
            columns: self.0,
            leaf_hash: leaf_hash(&bytes),
            bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::Kind;
    use crate::audit::record::columns_of;

    fn record(details: serde_json::Value) -> Record {
        let mut r = Record::new(Kind::Intent);
        r.event_id = "e-1".into();
        r.ts = "2026-12-06T12:00:00.000Z".into();
        r.call_id = Some("c-1".into());
        r.tool = Some("vm_delete".into());
        r.details = Some(details);
        r
    }

    /// What the writer stored before: the whole record canonicalised with
    /// its number.
    fn expected(mut r: Record, seq: u64) -> Vec<u8> {
        r.seq = seq;
        r.canonical().unwrap()
    }

    #[test]
    fn sealed_bytes_are_the_records_canonical_bytes_at_every_number() {
        let details = serde_json::json!({
            "args": {"text": "\"seq\":9007199254740991", "n": 1.5},
            "zeta": [1, 2, {"seq": 3}],
        });
        for seq in [
            0,
            1,
            9,
            10,
            99,
            12_345,
            1 << 40,
            PLACEHOLDER - 1,
            PLACEHOLDER,
            u64::MAX,
        ] {
            let r = record(details.clone());
            let sealed = sealer(r.clone())(seq).unwrap();
            let bytes = expected(r, seq);
            assert_eq!(sealed.bytes, bytes, "seq {seq}");
            assert_eq!(sealed.leaf_hash, leaf_hash(&bytes));
            assert_eq!(sealed.columns.call_id.as_deref(), Some("c-1"));
            assert_eq!(sealed.columns.tool.as_deref(), Some("vm_delete"));
            assert_eq!(sealed.columns.kind, "intent");
            // What verification reads back from the bytes.
            assert_eq!(columns_of(&sealed.bytes), Some(sealed.columns.clone()));
        }
    }

    #[test]
    fn a_nested_seq_with_the_placeholder_value_falls_back_to_the_whole_record() {
        let r = record(serde_json::json!({"inner": {"seq": PLACEHOLDER}}));
        let mut probe = r.clone();
        probe.seq = PLACEHOLDER;
        assert!(
            Split::of(probe.canonical().unwrap()).is_none(),
            "the placeholder occurs twice"
        );
        for seq in [0, 7, 4_000_000] {
            let sealed = sealer(r.clone())(seq).unwrap();
            assert_eq!(sealed.bytes, expected(r.clone(), seq), "seq {seq}");
        }
    }

    #[test]
    fn a_string_holding_the_placeholder_text_does_not_count() {
        let r = record(serde_json::json!({"note": "\"seq\":9007199254740991"}));
        let mut probe = r.clone();
        probe.seq = PLACEHOLDER;
        assert!(Split::of(probe.canonical().unwrap()).is_some());
    }
}
