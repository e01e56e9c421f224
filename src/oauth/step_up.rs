//! Step-up marks on the facade's grants, as a pure state machine with the
//! time as input (MCP authorization, "Step-Up Authorization Flow").
//!
//! When policy asks a facade-signed-in caller for MFA, the tool call fails
//! with a tool error and the grant is **wanted** for a step-up. The next
//! `/mcp` request with one of the grant's tokens **takes** the mark: it is
//! answered `403 insufficient_scope` naming the grant's scopes and the
//! step-up scope, and the grant is **asked**. A client that follows the
//! spec authorizes again with those scopes; when that sign-in comes back
//! from Entra for the same user and client, the asked grant is **found**
//! and stepped up in place (its MCP sessions stay usable), and the mark is
//! gone.
//!
//! - A mark is taken once: one `403` per step-up, so a client that cannot
//!   step up is refused one request, never locked out.
//! - While a grant is asked, denials do not mark it again: a client that
//!   ignored the `403` gets tool errors only, until the mark lapses.
//! - Marks lapse after the lifetime given to [`StepUps::new`] (the facade
//!   uses `oauth.lifetimes.transaction`). Alone, they live in memory, so a
//!   restart forgets them (the next denial marks again); on a store that
//!   replicas share the facade keeps each mark in the store too and reads
//!   it before each step ([`StepUps::mark`], [`StepUps::put`]), so a mark
//!   set on one replica is taken once on any and answered on any.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Marks kept at once (the oldest is dropped first).
const MAX_MARKS: usize = 10_000;

/// Who a grant belongs to: the user (`tid`, `oid`) and the client id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub tid: String,
    pub oid: String,
    pub client_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    /// The next request is to be refused with the challenge.
    Wanted,
    /// The challenge was sent; a step-up sign-in is awaited.
    Asked,
}

/// A grant's mark (as the store keeps it when replicas share it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    holder: Holder,
    state: State,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
}

impl Mark {
    /// When it lapses.
    pub fn until(&self) -> DateTime<Utc> {
        self.until
    }
}

/// What [`StepUps::want`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// The grant is marked: its next request gets the challenge.
    Marked,
    /// The challenge was already sent and the step-up is awaited; the mark
    /// is unchanged.
    AlreadyAsked,
}

/// Step-up marks by grant id.
#[derive(Debug)]
pub struct StepUps {
    marks: HashMap<String, Mark>,
    lifetime: chrono::Duration,
    max: usize,
}

impl StepUps {
    /// Marks live `lifetime` from when they were set or taken.
    pub fn new(lifetime: std::time::Duration) -> StepUps {
        StepUps::bounded(lifetime, MAX_MARKS)
    }

    fn bounded(lifetime: std::time::Duration, max: usize) -> StepUps {
        StepUps {
            marks: HashMap::new(),
            lifetime: chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::MAX),
            max: max.max(1),
        }
    }

    /// Policy wants `grant` stepped up.
    pub fn want(&mut self, grant: &str, holder: Holder, now: DateTime<Utc>) -> Wanted {
        if let Some(mark) = self.marks.get(grant)
            && mark.state == State::Asked
            && mark.until > now
        {
            return Wanted::AlreadyAsked;
        }
        self.make_room(now);
        self.marks.insert(
            grant.to_owned(),
            Mark {
                holder,
                state: State::Wanted,
                since: now,
                until: now + self.lifetime,
            },
        );
        Wanted::Marked
    }

    /// Takes the mark of `grant` for the request at hand: true once per
    /// [`want`](Self::want) (the request is refused with the challenge).
    pub fn take(&mut self, grant: &str, now: DateTime<Utc>) -> bool {
        match self.marks.get_mut(grant) {
            Some(mark) if mark.state == State::Wanted && mark.until > now => {
                mark.state = State::Asked;
                mark.since = now;
                mark.until = now + self.lifetime;
                true
            }
            _ => false,
        }
    }

    /// The grant a step-up sign-in of `holder` answers, removed: of the
    /// holder's live marks (asked or still wanted), the one set or taken
    /// last.
    pub fn answered(&mut self, holder: &Holder, now: DateTime<Utc>) -> Option<String> {
        let grant = self
            .marks
            .iter()
            .filter(|(_, mark)| mark.holder == *holder && mark.until > now)
            .max_by_key(|(_, mark)| mark.since)
            .map(|(grant, _)| grant.clone())?;
        self.marks.remove(&grant);
        Some(grant)
    }

    /// The mark of `grant`, if any.
    pub fn mark(&self, grant: &str) -> Option<Mark> {
        self.marks.get(grant).cloned()
    }

    /// Replaces the mark of `grant` with the store's copy (`None`: none).
    pub fn put(&mut self, grant: &str, mark: Option<Mark>) {
        match mark {
            Some(mark) => {
                self.marks.insert(grant.to_owned(), mark);
            }
            None => {
                self.marks.remove(grant);
            }
        }
    }

    /// Replaces every mark with the store's copies.
    pub fn put_all(&mut self, marks: impl IntoIterator<Item = (String, Mark)>) {
        self.marks = marks.into_iter().collect();
    }

    /// Forgets lapsed marks, and the oldest one when full.
    fn make_room(&mut self, now: DateTime<Utc>) {
        self.marks.retain(|_, mark| mark.until > now);
        if self.marks.len() >= self.max
            && let Some(oldest) = self
                .marks
                .iter()
                .min_by_key(|(_, mark)| mark.since)
                .map(|(grant, _)| grant.clone())
        {
            self.marks.remove(&oldest);
        }
    }

    /// Forgets lapsed marks.
    pub fn sweep(&mut self, now: DateTime<Utc>) {
        self.marks.retain(|_, mark| mark.until > now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.marks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    fn holder(oid: &str, client: &str) -> Holder {
        Holder {
            tid: "t".into(),
            oid: oid.into(),
            client_id: client.into(),
        }
    }

    fn marks() -> StepUps {
        StepUps::new(std::time::Duration::from_secs(600))
    }

    #[test]
    fn a_mark_is_taken_once() {
        let mut s = marks();
        assert!(!s.take("g1", t0()), "nothing wanted");
        assert_eq!(s.want("g1", holder("u", "c"), t0()), Wanted::Marked);
        assert!(s.take("g1", t0() + secs(1)));
        assert!(!s.take("g1", t0() + secs(2)), "one challenge per step-up");
        // Asked: another denial does not mark it again.
        assert_eq!(
            s.want("g1", holder("u", "c"), t0() + secs(3)),
            Wanted::AlreadyAsked
        );
        assert!(!s.take("g1", t0() + secs(4)));
        // Once the ask lapses, a denial marks it again.
        let later = t0() + secs(1) + secs(600);
        assert_eq!(s.want("g1", holder("u", "c"), later), Wanted::Marked);
        assert!(s.take("g1", later + secs(1)));
    }

    #[test]
    fn a_mark_lapses() {
        let mut s = marks();
        s.want("g1", holder("u", "c"), t0());
        assert!(!s.take("g1", t0() + secs(600)));
        assert_eq!(s.answered(&holder("u", "c"), t0() + secs(600)), None);
        s.want("g2", holder("u", "c"), t0());
        s.sweep(t0() + secs(600));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_step_up_sign_in_answers_the_holders_latest_mark() {
        let mut s = marks();
        s.want("g1", holder("u", "c"), t0());
        s.want("g2", holder("u", "c"), t0() + secs(5));
        s.want("other-user", holder("v", "c"), t0() + secs(6));
        s.want("other-client", holder("u", "d"), t0() + secs(7));
        // g1 was taken last: it is the one being answered.
        assert!(s.take("g1", t0() + secs(10)));
        assert_eq!(
            s.answered(&holder("u", "c"), t0() + secs(20)).as_deref(),
            Some("g1")
        );
        assert_eq!(
            s.answered(&holder("u", "c"), t0() + secs(21)).as_deref(),
            Some("g2")
        );
        assert_eq!(s.answered(&holder("u", "c"), t0() + secs(22)), None);
        assert_eq!(s.len(), 2, "other users' and clients' marks stay");
        // An answered grant is no longer marked.
        assert!(!s.take("g1", t0() + secs(23)));
    }

    #[test]
    fn a_mark_read_back_from_the_store_behaves_the_same() {
        let mut here = marks();
        here.want("g1", holder("u", "c"), t0());
        let stored = serde_json::to_vec(&here.mark("g1").unwrap()).unwrap();
        // Another replica reads it: takes it once.
        let mut there = marks();
        there.put("g1", Some(serde_json::from_slice(&stored).unwrap()));
        assert!(there.take("g1", t0() + secs(1)));
        assert!(!there.take("g1", t0() + secs(2)));
        // A third answers it.
        let mut third = marks();
        third.put_all([("g1".to_owned(), there.mark("g1").unwrap())]);
        assert_eq!(
            third.answered(&holder("u", "c"), t0() + secs(3)).as_deref(),
            Some("g1")
        );
        third.put("g1", None);
        assert!(third.mark("g1").is_none());
    }

    #[test]
    fn marks_are_bounded() {
        let mut s = StepUps::bounded(std::time::Duration::from_secs(600), 3);
        for i in 0..5 {
            s.want(&format!("g{i}"), holder("u", "c"), t0() + secs(i));
        }
        assert_eq!(s.len(), 3);
        // The oldest went first.
        assert!(!s.take("g0", t0() + secs(6)) && !s.take("g1", t0() + secs(6)));
        assert!(s.take("g4", t0() + secs(6)));
    }
}
