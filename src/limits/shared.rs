//! Rate limits shared by replicas on one PostgreSQL store.
//!
//! Each replica keeps its own buckets and admits on them alone (a call
//! never waits for the database). Every `sync_interval` a thread of its
//! own, on a connection of its own:
//!
//! 1. **publishes** what this replica admitted since the last round: one
//!    row per (replica, key) in `rate_limit_usage`, whose `consumed` is
//!    the replica's running total for the key (`consumed + n`), with the
//!    time of the update;
//! 2. **debits** what the others admitted: it reads the others' rows
//!    updated lately, and takes from its own buckets the growth of each
//!    row's total since it last read it (a bucket may go into debt);
//! 3. once a minute, deletes rows not updated for an hour.
//!
//! A replica gets a new id at each start, so a total only grows. The first
//! round only notes the others' totals: what they admitted before this
//! replica started is not debited (its buckets start full, as one more
//! replica's would). A total below what was noted means the row was
//! pruned and made again: all of it is new.
//!
//! **The bound.** A replica's buckets miss, at any time, what the others
//! admitted in the last two rounds at most (one to publish, one to read),
//! and a replica starts with full buckets. So with N replicas, the calls
//! admitted for one key over any stretch of time exceed what one bucket
//! would admit by at most (N - 1) x (burst + 2 x rate x sync_interval),
//! plus burst for each replica that started within the stretch. Debits
//! arrive late, so a replica may also refuse up to one round of refill
//! early.
//!
//! **Failures.** A round that fails (no database, a lost connection, a
//! statement timeout) is logged at most once a minute and counted
//! (`warden_rate_limit_sync_failures_total`); what was not published is
//! kept for the next round, the buckets keep working on what this replica
//! admits, and the next round connects again. Connections time out after
//! 5 s, statements after 10 s, and unacknowledged data after 10 s, so a
//! database that goes away holds up only this thread.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use postgres::Client;

use super::{Key, Limits};

/// Rows not updated for this long are deleted.
const KEEP: Duration = Duration::from_secs(3600);
/// How often old rows are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// A totals' note is kept this long after it last changed (longer than
/// rows are kept, so a row seen again after it was pruned is a new row).
const FORGET_NOTES: Duration = Duration::from_secs(2 * 3600);
/// The others' rows updated within this long are read (more after a
/// failed round).
const WINDOW: Duration = Duration::from_secs(30);
/// Rows published per statement.
const CHUNK: usize = 5_000;
/// Failures are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The exchange with the other replicas; dropping it ends the thread
/// after its current round.
pub struct Sync {
    _stop: mpsc::Sender<()>,
}

impl Sync {
    /// Starts the thread that exchanges `limits`' consumption through the
    /// database at `url`.
    pub fn start(limits: Arc<Limits>, url: String) -> Sync {
        let (stop, stopped) = mpsc::channel();
        let every = limits.config.sync_interval;
        let cap = limits.config.max_buckets.saturating_mul(4);
        let spawned = std::thread::Builder::new()
            .name("warden-rate-limits".into())
            .spawn(move || {
                let mut exchange = Exchange::new(url, cap);
                loop {
                    match stopped.recv_timeout(every) {
                        Err(mpsc::RecvTimeoutError::Timeout) => exchange.round(&limits),
                        // Stopping: what was admitted since the last round
                        // is published, if the database answers.
                        _ => {
                            exchange.publish_only(&limits);
                            return;
                        }
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(target: "warden::limits", %error, "rate limits are not shared: no thread to exchange them");
        }
        Sync { _stop: stop }
    }
}

/// What the others' totals were when last read.
#[derive(Debug, Default)]
pub struct Notes {
    /// Replica id → a small number.
    replicas: HashMap<String, u32>,
    /// (replica, key) → (total, when it last changed).
    totals: HashMap<(u32, Key), (i64, Instant)>,
    /// Most notes kept (4 x `max_buckets`); a row beyond them is not
    /// debited.
    cap: usize,
}

impl Notes {
    pub fn new(cap: usize) -> Notes {
        Notes {
            cap,
            ..Notes::default()
        }
    }

    /// Notes the rows read and returns what the others admitted since the
    /// last read, by key (`debit = false`: only notes, the first round).
    pub fn read(
        &mut self,
        rows: impl IntoIterator<Item = (String, Key, i64)>,
        debit: bool,
        now: Instant,
    ) -> Vec<(Key, u64)> {
        let mut debits: HashMap<Key, u64> = HashMap::new();
        for (replica, key, total) in rows {
            let next = self.replicas.len() as u32;
            let replica = *self.replicas.entry(replica).or_insert(next);
            let noted = self.totals.get(&(replica, key)).map(|(t, _)| *t);
            if noted.is_none() && self.totals.len() >= self.cap {
                continue;
            }
            let grown = match noted {
                Some(seen) if total >= seen => total - seen,
                // Pruned and made again (or never seen): all of it is new.
                _ => total,
            };
            if noted != Some(total) {
                self.totals.insert((replica, key), (total, now));
            }
            if debit && grown > 0 {
                *debits.entry(key).or_default() += grown as u64;
            }
        }
        debits.into_iter().collect()
    }

    /// Forgets notes that have not changed for [`FORGET_NOTES`].
    pub fn forget_old(&mut self, now: Instant) {
        self.totals
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < FORGET_NOTES);
        let live: std::collections::HashSet<u32> = self.totals.keys().map(|(r, _)| *r).collect();
        self.replicas.retain(|_, r| live.contains(r));
    }

    pub fn len(&self) -> usize {
        self.totals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }
}

/// One replica's side of the exchange (on its thread).
struct Exchange {
    url: String,
    /// This run of this replica.
    replica: String,
    client: Option<Client>,
    notes: Notes,
    /// Whether the others' totals were read once (then they are debited).
    seeded: bool,
    /// When the others' rows were last read.
    last_read: Option<Instant>,
    last_prune: Option<Instant>,
    last_logged: Option<Instant>,
}

impl Exchange {
    fn new(url: String, cap: usize) -> Exchange {
        Exchange {
            url,
            replica: uuid::Uuid::now_v7().to_string(),
            client: None,
            notes: Notes::new(cap),
            seeded: false,
            last_read: None,
            last_prune: None,
            last_logged: None,
        }
    }

    /// The connection, made if there is none (or it was closed).
    fn client(&mut self) -> Result<&mut Client, String> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let mut client = crate::store::postgres::connect(&with_timeouts(&self.url))?;
            client
                .batch_execute("SET statement_timeout = '10s'")
                .map_err(|e| crate::store::postgres::describe(&e))?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// One round: publish, read and debit, and now and then prune.
    fn round(&mut self, limits: &Limits) {
        let now = Instant::now();
        if let Err(error) = self.exchange(limits, now) {
            self.failed(limits, &error);
            return;
        }
        limits.metrics.limits.syncs.inc();
        if self
            .last_prune
            .is_none_or(|at| now.duration_since(at) >= PRUNE_EVERY)
        {
            self.last_prune = Some(now);
            self.notes.forget_old(now);
            let pruned = self.client().and_then(|client| {
                client
                    .execute(
                        "DELETE FROM rate_limit_usage WHERE updated < now() - make_interval(secs => $1)",
                        &[&KEEP.as_secs_f64()],
                    )
                    .map_err(|e| crate::store::postgres::describe(&e))
            });
            if let Err(error) = pruned {
                self.failed(limits, &error);
            }
        }
    }

    fn exchange(&mut self, limits: &Limits, now: Instant) -> Result<(), String> {
        self.publish(limits)?;
        // After a failed round the window covers the time since the last
        // read (up to an hour: older rows are gone).
        let window = self
            .last_read
            .map_or(WINDOW, |at| (now.duration_since(at) * 2).max(WINDOW))
            .min(KEEP);
        let seeded = self.seeded;
        let replica = self.replica.clone();
        let client = self.client()?;
        let rows = if seeded {
            client.query(
                "SELECT replica, key, consumed FROM rate_limit_usage \
                 WHERE replica <> $1 AND updated > now() - make_interval(secs => $2)",
                &[&replica, &window.as_secs_f64()],
            )
        } else {
            client.query(
                "SELECT replica, key, consumed FROM rate_limit_usage WHERE replica <> $1",
                &[&replica],
            )
        }
        .map_err(|e| crate::store::postgres::describe(&e))?;
        let rows = rows.iter().filter_map(|row| {
            let key = Key::from_bytes(row.get::<_, &[u8]>(1))?;
            Some((row.get::<_, String>(0), key, row.get::<_, i64>(2)))
        });
        let debits = self.notes.read(rows, seeded, now);
        limits.debit(&debits);
        self.seeded = true;
        self.last_read = Some(now);
        Ok(())
    }

    /// Publishes what was admitted since the last round; on failure it is
    /// kept for the next.
    fn publish(&mut self, limits: &Limits) -> Result<(), String> {
        let taken = limits.drain();
        if taken.is_empty() {
            return Ok(());
        }
        let replica = self.replica.clone();
        let published = self.client().and_then(|client| {
            for chunk in taken.chunks(CHUNK) {
                let keys: Vec<Vec<u8>> = chunk.iter().map(|(k, _)| k.to_bytes()).collect();
                let counts: Vec<i64> = chunk
                    .iter()
                    .map(|(_, n)| i64::try_from(*n).unwrap_or(i64::MAX))
                    .collect();
                client
                    .execute(
                        "INSERT INTO rate_limit_usage (replica, key, consumed, updated) \
                         SELECT $1, k, c, now() FROM unnest($2::bytea[], $3::int8[]) AS t(k, c) \
                         ON CONFLICT (replica, key) DO UPDATE \
                         SET consumed = rate_limit_usage.consumed + EXCLUDED.consumed, updated = now()",
                        &[&replica, &keys, &counts],
                    )
                    .map_err(|e| crate::store::postgres::describe(&e))?;
            }
            Ok(())
        });
        if published.is_err() {
            limits.restore(taken);
        }
        published
    }

    /// The last round, when the replica stops.
    fn publish_only(&mut self, limits: &Limits) {
        if let Err(error) = self.publish(limits) {
            tracing::warn!(target: "warden::limits", %error, "what this replica admitted last was not shared with the other replicas");
        }
    }

    fn failed(&mut self, limits: &Limits, error: &str) {
        limits.metrics.limits.sync_failures.inc();
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        let now = Instant::now();
        if self
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
        {
            self.last_logged = Some(now);
            tracing::warn!(
                target: "warden::limits",
                %error,
                "rate limits not exchanged with the other replicas; each replica limits on what it admits \
                 until the database answers (logged once a minute)"
            );
        }
    }
}

/// `url` with a limit on unacknowledged data (10 s), unless it sets one,
/// so a database that vanishes from the network fails a round instead of
/// holding it.
fn with_timeouts(url: &str) -> String {
    if url.contains("tcp_user_timeout") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}tcp_user_timeout=10")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limit;

    fn key(n: &str) -> Key {
        Key::new(Limit::Principal, &["t", n])
    }

    #[test]
    fn the_first_read_only_notes_then_growth_is_debited() {
        let mut notes = Notes::new(100);
        let now = Instant::now();
        let rows = vec![("b".to_owned(), key("1"), 10)];
        assert!(
            notes.read(rows, false, now).is_empty(),
            "the first round notes"
        );
        let rows = vec![
            ("b".to_owned(), key("1"), 14),
            ("c".to_owned(), key("1"), 3),
            ("c".to_owned(), key("2"), 5),
        ];
        let mut debits = notes.read(rows, true, now);
        debits.sort_by_key(|(_, n)| *n);
        assert_eq!(debits, vec![(key("2"), 5), (key("1"), 7)]);
        // Read again unchanged (the window overlaps): nothing more.
        let rows = vec![
            ("b".to_owned(), key("1"), 14),
            ("c".to_owned(), key("2"), 5),
        ];
        assert!(notes.read(rows, true, now).is_empty());
    }

    #[test]
    fn a_row_made_again_after_pruning_counts_whole() {
        let mut notes = Notes::new(100);
        let now = Instant::now();
        notes.read(vec![("b".to_owned(), key("1"), 50)], true, now);
        let debits = notes.read(vec![("b".to_owned(), key("1"), 4)], true, now);
        assert_eq!(debits, vec![(key("1"), 4)]);
    }

    #[test]
    fn notes_are_bounded_and_forgotten() {
        let mut notes = Notes::new(2);
        let now = Instant::now();
        let rows = (0..5).map(|i| ("b".to_owned(), key(&i.to_string()), 1));
        assert_eq!(
            notes.read(rows, true, now).len(),
            2,
            "beyond the cap, not debited"
        );
        assert_eq!(notes.len(), 2);
        notes.forget_old(now + FORGET_NOTES);
        assert!(notes.is_empty());
        assert!(notes.replicas.is_empty());
    }

    #[test]
    fn a_database_that_does_not_answer_fails_the_round_and_keeps_what_was_admitted() {
        let metrics = crate::metrics::Metrics::new();
        let config = crate::limits::LimitsConfig {
            principal: crate::limits::Rate {
                rate: 60,
                per: Duration::from_secs(60),
                burst: Some(2),
                enabled: true,
            },
            ..crate::limits::LimitsConfig::default()
        };
        let limits = Limits::new(config, metrics.clone());
        limits
            .shared
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut alice = crate::call::Principal::anonymous(None);
        alice.oid = "alice".into();
        limits.admit_call(&alice, "t").unwrap();
        // Nothing listens on port 1: the round fails at once.
        let mut exchange = Exchange::new("postgres://warden@127.0.0.1:1/warden".into(), 100);
        exchange.round(&limits);
        assert_eq!(metrics.limits.sync_failures.get(), 1);
        assert_eq!(metrics.limits.syncs.get(), 0);
        // The buckets keep working on what this replica admits.
        limits.admit_call(&alice, "u").unwrap();
        assert_eq!(
            limits.admit_call(&alice, "v").unwrap_err().limit,
            Limit::Principal
        );
        // What was not published is published with the next round's.
        let principal = Key::new(Limit::Principal, &["anonymous", "alice"]);
        let pending: u64 = limits
            .drain()
            .iter()
            .filter(|(k, _)| *k == principal)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(pending, 2);
    }

    #[test]
    fn a_tcp_timeout_is_added_unless_set() {
        assert_eq!(
            with_timeouts("postgres://u@h/db"),
            "postgres://u@h/db?tcp_user_timeout=10"
        );
        assert_eq!(
            with_timeouts("postgres://u@h/db?sslmode=require"),
            "postgres://u@h/db?sslmode=require&tcp_user_timeout=10"
        );
        assert_eq!(
            with_timeouts("postgres://u@h/db?tcp_user_timeout=3"),
            "postgres://u@h/db?tcp_user_timeout=3"
        );
    }
}
