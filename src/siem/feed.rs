//! One sink's loop: claim the sink (its cursor row), read the records
//! after the cursor, ship them in a batch until the receiver takes it,
//! then move the cursor; and again.
//!
//! **The cursor** is a row of the store's `state` table (namespace
//! [`NS`], key the sink's name): the last sequence number shipped, which
//! replica holds the sink, and until when. It is written after every
//! batch the receiver took, by compare-and-set against the row as this
//! feed last read or wrote it, so a feed that lost the sink to another
//! replica cannot move the cursor back.
//!
//! **One shipper per sink.** On PostgreSQL every replica runs the feed;
//! the holder named in the row ships, the others wait. The holder renews
//! its claim while it works (at least every third of the claim's length,
//! which is twice the sink's timeout plus 30 s); a claim not renewed in
//! time (its replica stopped without releasing it, or lost the database)
//! is taken over by another replica, which resumes after the cursor. On
//! SQLite one process holds the store, so the feed takes the row whoever
//! it names.
//!
//! **At least once.** A batch the receiver took is shipped again only if
//! the feed stops (or loses the sink) between the receiver's answer and
//! the cursor's write: the receiver then sees those records twice, each
//! with its sequence number, which tells the copies apart.
//!
//! **Gaps.** Sequence numbers are contiguous by construction; a number
//! missing between the cursor and the next record (a row removed behind
//! the store's triggers) is a gap: logged, counted
//! (`warden_siem_gaps_total`, `warden_siem_missing_records_total`) and
//! shipped as an event of its own before the record after it.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::Format;
use super::config::Start;
use super::event::{Device, Item, Stored, gap_message};
use super::transport::{Failure, Transport};
use crate::delivery::next_wait;
use crate::metrics::Metrics;
use crate::store::{Guard, RecordRow, Store, StoreError};

/// The `state` namespace of the cursors.
pub const NS: &str = "siem.cursor";

/// What every sink's loop shares.
pub(super) struct Settings {
    pub batch: usize,
    pub max_bytes: usize,
    pub poll_interval: Duration,
    pub first_backoff: Duration,
    pub device: Device,
}

/// How long a claim on a sink lasts without renewal.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lease {
    pub length: Duration,
}

impl Lease {
    /// Long enough for two attempts in a row to time out.
    pub fn for_timeout(timeout: Duration) -> Lease {
        Lease {
            length: timeout * 2 + Duration::from_secs(30),
        }
    }

    /// Renewed once a third of it has passed.
    fn renew_after(self) -> Duration {
        self.length / 3
    }
}

/// The cursor row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The last sequence number shipped (or accounted for as missing);
    /// -1 before the first.
    pub last: i64,
    /// The feed that holds the sink.
    pub holder: String,
    /// Until when the holder's claim lasts, in Unix milliseconds.
    pub until_ms: i64,
}

/// One sink and its loop's state.
pub(super) struct Sink {
    pub name: String,
    pub format: Format,
    pub transport: Box<dyn Transport>,
    pub start: Start,
    pub lease: Lease,
}

/// A sink's loop, with what it knows of its cursor row.
struct Runner {
    sink: Sink,
    settings: Arc<Settings>,
    store: Store,
    metrics: Metrics,
    stop: CancellationToken,
    /// This feed's name in cursor rows.
    holder: String,
    /// The store is this process's alone (SQLite): claims are not waited for.
    exclusive: bool,
    /// The row as this feed last read or wrote it, while it holds the sink.
    held: Option<(Vec<u8>, Cursor)>,
    /// Gaps up to here were logged and counted by this process.
    gaps_reported_to: Option<u64>,
    /// The store was found shorter than the cursor (reported once).
    shorter_reported: bool,
}

/// Runs `sink` until `stop` is cancelled.
pub(super) async fn run(
    sink: Sink,
    settings: Arc<Settings>,
    store: Store,
    metrics: Metrics,
    holder: String,
    stop: CancellationToken,
) {
    let exclusive = store.location().sqlite_path().is_some();
    let mut runner = Runner {
        sink,
        settings,
        store,
        metrics,
        stop,
        holder,
        exclusive,
        held: None,
        gaps_reported_to: None,
        shorter_reported: false,
    };
    runner.metrics.siem_configured(&runner.sink.name);
    info!(sink = %runner.sink.name, format = runner.sink.format.as_str(), "siem: feed started");
    runner.run().await;
    runner.release().await;
    info!(sink = %runner.sink.name, "siem: feed stopped");
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A batch ready to send.
struct Batch {
    body: Vec<u8>,
    /// The last sequence number it accounts for.
    last: u64,
    records: u64,
}

impl Runner {
    async fn run(&mut self) {
        while !self.stop.is_cancelled() {
            match self.claim().await {
                Ok(true) => {}
                Ok(false) => {
                    // Another replica ships; look again soon enough to
                    // take over quickly when it lets the sink go.
                    let again = (self.settings.poll_interval * 5)
                        .clamp(Duration::from_secs(1), self.sink.lease.renew_after());
                    self.pause(again).await;
                    continue;
                }
                Err(e) => {
                    warn!(sink = %self.sink.name, error = %e, "siem: cannot read or claim the cursor");
                    self.pause(self.settings.poll_interval.max(Duration::from_secs(1)))
                        .await;
                    continue;
                }
            }
            let last = self.held.as_ref().map(|(_, c)| c.last).unwrap_or(-1);
            let from = (last + 1).max(0) as u64;
            let (rows, max) = match self.read(from).await {
                Ok(read) => read,
                Err(e) => {
                    warn!(sink = %self.sink.name, error = %e, "siem: cannot read the audit log");
                    self.pause(self.settings.poll_interval.max(Duration::from_secs(1)))
                        .await;
                    continue;
                }
            };
            self.show_lag(max, last);
            self.check_length(max, last);
            if rows.is_empty() {
                self.pause(self.settings.poll_interval).await;
                continue;
            }
            let items = self.items(from, rows);
            let batch = self.encode(&items);
            if !self.ship(&batch).await {
                continue;
            }
            match self.advance(batch.last as i64).await {
                Ok(()) => {
                    self.metrics.siem_shipped(&self.sink.name, batch.records);
                    self.metrics.siem_cursor(&self.sink.name, batch.last as i64);
                    self.show_lag(max, batch.last as i64);
                    debug!(sink = %self.sink.name, records = batch.records, last = batch.last, "siem: batch shipped");
                }
                Err(StoreError::Conflict(_)) => {
                    warn!(sink = %self.sink.name, "siem: another replica took this sink over; the batch it just shipped may be shipped again");
                    self.held = None;
                }
                Err(e) => {
                    // The receiver has the batch; without the cursor it is
                    // shipped again (at least once).
                    warn!(sink = %self.sink.name, error = %e, "siem: the batch was shipped but the cursor could not be saved; it will be shipped again");
                    self.held = None;
                    self.pause(self.settings.poll_interval.max(Duration::from_secs(1)))
                        .await;
                }
            }
        }
    }

    /// Waits `wait`, or less if the feed is stopped.
    async fn pause(&self, wait: Duration) {
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }

    fn show_lag(&self, max: Option<i64>, last: i64) {
        let Some(max) = max else {
            self.metrics.siem_lag(&self.sink.name, 0);
            return;
        };
        self.metrics.siem_lag(&self.sink.name, (max - last).max(0));
    }

    /// Reports (once) a store whose newest record is older than the
    /// cursor: records were removed from its end, or the store was
    /// replaced by an older copy.
    fn check_length(&mut self, max: Option<i64>, last: i64) {
        let newest = max.unwrap_or(-1);
        if newest >= last {
            self.shorter_reported = false;
            return;
        }
        if !self.shorter_reported {
            self.shorter_reported = true;
            error!(sink = %self.sink.name, newest, cursor = last, "siem: the audit log ends before the last record this sink shipped: records were removed from its end, or the store was restored from an older copy (run warden audit verify); shipping resumes after the cursor");
        }
    }

    /// Reads the cursor row; whether this feed holds the sink (claiming
    /// or renewing it when it may).
    async fn claim(&mut self) -> Result<bool, StoreError> {
        if let Some((_, cursor)) = &self.held
            && cursor.holder == self.holder
            && cursor.until_ms - now_ms()
                > (self.sink.lease.length - self.sink.lease.renew_after()).as_millis() as i64
        {
            return Ok(true);
        }
        let key = self.sink.name.clone();
        let read = self
            .store
            .read(move |reader| {
                let row = reader.state_entry(NS, &key, chrono::Utc::now())?;
                let max = reader.max_seq()?;
                Ok((row, max))
            })
            .await?;
        let (row, max) = read;
        let now = now_ms();
        let until_ms = now + self.sink.lease.length.as_millis() as i64;
        let (expected, last) = match row {
            None => {
                let last = match self.sink.start {
                    Start::Beginning => -1,
                    Start::End => max.unwrap_or(-1),
                };
                info!(sink = %self.sink.name, after = last, "siem: no cursor yet; starting after this sequence number");
                (None, last)
            }
            Some(bytes) => {
                let Ok(cursor) = serde_json::from_slice::<Cursor>(&bytes) else {
                    return Err(StoreError::Read(format!(
                        "the cursor of sink {} is not readable",
                        self.sink.name
                    )));
                };
                let mine = cursor.holder == self.holder;
                if !mine && !self.exclusive && cursor.until_ms > now {
                    // Every replica reports the sink's progress.
                    self.metrics.siem_cursor(&self.sink.name, cursor.last);
                    self.show_lag(max, cursor.last);
                    self.held = None;
                    debug!(sink = %self.sink.name, holder = %cursor.holder, "siem: another replica ships this sink");
                    return Ok(false);
                }
                if !mine {
                    info!(sink = %self.sink.name, after = cursor.last, previous = %cursor.holder, "siem: taking the sink over");
                }
                (Some(bytes), cursor.last)
            }
        };
        let cursor = Cursor {
            last,
            holder: self.holder.clone(),
            until_ms,
        };
        match self.write(expected, &cursor).await {
            Ok(bytes) => {
                self.held = Some((bytes, cursor));
                self.metrics.siem_cursor(&self.sink.name, last);
                Ok(true)
            }
            Err(StoreError::Conflict(_)) => {
                self.held = None;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes `cursor` if the row still holds `expected`; its bytes.
    async fn write(
        &self,
        expected: Option<Vec<u8>>,
        cursor: &Cursor,
    ) -> Result<Vec<u8>, StoreError> {
        let bytes = serde_json::to_vec(cursor).unwrap_or_default();
        self.store
            .append_guarded(
                Vec::new(),
                Guard {
                    ns: NS.to_owned(),
                    key: self.sink.name.clone(),
                    expected,
                    new: bytes.clone(),
                },
            )
            .await?;
        Ok(bytes)
    }

    /// Moves the cursor to `last` (and renews the claim).
    async fn advance(&mut self, last: i64) -> Result<(), StoreError> {
        let Some((expected, _)) = self.held.clone() else {
            return Err(StoreError::Conflict(self.sink.name.clone()));
        };
        let cursor = Cursor {
            last,
            holder: self.holder.clone(),
            until_ms: now_ms() + self.sink.lease.length.as_millis() as i64,
        };
        let bytes = self.write(Some(expected), &cursor).await?;
        self.held = Some((bytes, cursor));
        Ok(())
    }

    /// Renews the claim if it is due; false if the sink was lost.
    async fn keep(&mut self) -> bool {
        match self.claim().await {
            Ok(held) => held,
            // The store is away: keep going on the claim this feed has.
            Err(e) => {
                warn!(sink = %self.sink.name, error = %e, "siem: cannot renew the claim on the sink");
                self.held.is_some()
            }
        }
    }

    /// Lets the sink go at shutdown, so that another replica takes it
    /// over at once.
    async fn release(&mut self) {
        let Some((expected, cursor)) = self.held.take() else {
            return;
        };
        let released = Cursor {
            until_ms: 0,
            ..cursor
        };
        if let Err(e) = self.write(Some(expected), &released).await {
            debug!(sink = %self.sink.name, error = %e, "siem: the sink's claim was not released");
        }
    }

    /// At most `batch` records from `from` on, and the newest sequence
    /// number in the store.
    async fn read(&self, from: u64) -> Result<(Vec<RecordRow>, Option<i64>), StoreError> {
        let limit = self.settings.batch;
        self.store
            .read(move |reader| {
                let max = reader.max_seq()?;
                let mut rows = Vec::new();
                let read = reader.for_each_record(from as i64, |row| {
                    rows.push(row);
                    if rows.len() >= limit {
                        // Enough: stop the walk (the error is this stop).
                        return Err(StoreError::Read("batch full".into()));
                    }
                    Ok(())
                });
                match read {
                    Err(_) if rows.len() >= limit => {}
                    other => other?,
                }
                Ok((rows, max))
            })
            .await
    }

    /// The rows as items, with a gap item before a row whose sequence
    /// number is not the one expected.
    fn items(&mut self, from: u64, rows: Vec<RecordRow>) -> Vec<Item> {
        let mut expected = from;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let seq = row.seq.max(0) as u64;
            if seq > expected {
                self.report_gap(expected, seq - 1);
                items.push(Item::Gap {
                    first: expected,
                    last: seq - 1,
                });
            }
            let stored = Stored::new(seq, row.leaf_hash, row.bytes);
            if stored.value.get("seq").and_then(|s| s.as_u64()) != Some(seq) {
                warn!(sink = %self.sink.name, seq, "siem: the record stored under this sequence number names another one (run warden audit verify)");
            }
            items.push(Item::Record(stored));
            expected = seq + 1;
        }
        items
    }

    fn report_gap(&mut self, first: u64, last: u64) {
        if self.gaps_reported_to.is_some_and(|to| to >= last) {
            return;
        }
        self.gaps_reported_to = Some(last);
        error!(sink = %self.sink.name, first, last, "siem: {} (deleted behind the store's triggers? run warden audit verify); a gap event is shipped in their place", gap_message(first, last));
        self.metrics.siem_gap(&self.sink.name, last - first + 1);
    }

    /// The first items that fit `max_bytes` (at least one), encoded.
    fn encode(&self, items: &[Item]) -> Batch {
        let max = self.settings.max_bytes;
        let format = self.sink.format;
        let device = &self.settings.device;
        let mut events: Vec<Vec<u8>> = Vec::new();
        let mut size = format.overhead();
        let mut last = 0;
        let mut records = 0;
        for item in items {
            let mut event = format.encode(item, device, true);
            if format.separated_size(&event) + format.overhead() > max {
                // Too large alone: without the record's bulk.
                event = format.encode(item, device, false);
                if let Item::Record(stored) = item {
                    warn!(sink = %self.sink.name, seq = stored.seq, bytes = stored.bytes.len(), "siem: record too large for one batch; shipped without its body");
                }
            }
            let added = format.separated_size(&event);
            if !events.is_empty() && size + added > max {
                break;
            }
            size += added;
            events.push(event);
            last = item.last_seq();
            if matches!(item, Item::Record(_)) {
                records += 1;
            }
        }
        Batch {
            body: format.assemble(events),
            last,
            records,
        }
    }

    /// Sends `batch` until the receiver takes it: true. False if the
    /// feed stopped or lost the sink meanwhile.
    async fn ship(&mut self, batch: &Batch) -> bool {
        let mut attempt = 0u32;
        loop {
            if self.stop.is_cancelled() || !self.keep().await {
                return false;
            }
            if attempt > 0 {
                self.metrics.siem_retry(&self.sink.name);
            }
            let sent = tokio::select! {
                _ = self.stop.cancelled() => return false,
                sent = self.sink.transport.send(&batch.body) => sent,
            };
            let Failure {
                detail,
                retry_after,
            } = match sent {
                Ok(()) => return true,
                Err(failure) => failure,
            };
            attempt += 1;
            self.metrics.siem_failure(&self.sink.name);
            let wait = next_wait(retry_after, self.settings.first_backoff, attempt);
            warn!(
                sink = %self.sink.name,
                attempt,
                records = batch.records,
                last = batch.last,
                wait_ms = wait.as_millis() as u64,
                "siem: the receiver did not take the batch: {detail}; retrying"
            );
            self.pause(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::{Value, json};

    use super::*;
    use crate::siem::transport::Failure;
    use crate::store::{Columns, Sealed, Sealer};

    /// A receiver in memory: refuses the first `refuse` batches, then
    /// keeps every batch's body.
    struct Memory {
        refuse: u32,
        bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    #[async_trait::async_trait]
    impl Transport for Memory {
        async fn send(&mut self, body: &[u8]) -> Result<(), Failure> {
            if self.refuse > 0 {
                self.refuse -= 1;
                return Err(Failure {
                    detail: "answered 503 Service Unavailable: busy".into(),
                    retry_after: Some(Duration::ZERO),
                });
            }
            self.bodies.lock().unwrap().push(body.to_vec());
            Ok(())
        }
    }

    fn heartbeat(pad: usize) -> Sealer {
        Box::new(move |seq| {
            let record = json!({
                "seq": seq, "event_id": format!("e-{seq}"), "ts": "2026-03-01T00:00:00Z",
                "kind": "heartbeat", "details": {"pad": "x".repeat(pad)},
            });
            Ok(Sealed {
                columns: Columns {
                    ts: "2026-03-01T00:00:00Z".into(),
                    kind: "heartbeat".into(),
                    ..Columns::default()
                },
                leaf_hash: [seq as u8; 32],
                bytes: serde_json_canonicalizer::to_vec(&record).unwrap(),
            })
        })
    }

    fn settings(batch: usize, max_bytes: usize) -> Arc<Settings> {
        Arc::new(Settings {
            batch,
            max_bytes,
            poll_interval: Duration::from_millis(10),
            first_backoff: Duration::from_millis(10),
            device: Device::new(Some("test")),
        })
    }

    /// Runs a feed until the receiver holds `until` events; the bodies.
    async fn ship(
        store: &Store,
        settings: Arc<Settings>,
        refuse: u32,
        bodies: Arc<Mutex<Vec<Vec<u8>>>>,
        until: usize,
    ) {
        let sink = Sink {
            name: "memory".into(),
            format: Format::Ocsf,
            transport: Box::new(Memory {
                refuse,
                bodies: bodies.clone(),
            }),
            start: Start::Beginning,
            lease: Lease::for_timeout(Duration::from_secs(1)),
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            sink,
            settings,
            store.clone(),
            Metrics::new(),
            "test".into(),
            stop.clone(),
        ));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while events(&bodies).len() < until {
            assert!(std::time::Instant::now() < deadline, "not shipped");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The cursor follows the receiver's answer; wait for it.
        let last = events(&bodies).last().unwrap()["metadata"]["sequence"]
            .as_i64()
            .unwrap();
        while cursor(store).await.map(|c| c.last) != Some(last) {
            assert!(std::time::Instant::now() < deadline, "no cursor");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        task.await.unwrap();
    }

    fn events(bodies: &Mutex<Vec<Vec<u8>>>) -> Vec<Value> {
        bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| serde_json::from_slice::<Vec<Value>>(b).unwrap())
            .collect()
    }

    async fn cursor(store: &Store) -> Option<Cursor> {
        store
            .read(|r| r.state_entry(NS, "memory", chrono::Utc::now()))
            .await
            .unwrap()
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[tokio::test]
    async fn batches_are_bounded_retried_and_resumed_after_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Store::open(dir.path().join("w.db"), Box::new(|_, _, _| {})).unwrap();
        let store = opened.store.clone();
        store
            .append((0..30).map(|_| heartbeat(200)).collect())
            .await
            .unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        ship(&store, settings(8, 2048), 2, bodies.clone(), 30).await;
        let seqs: Vec<i64> = events(&bodies)
            .iter()
            .map(|e| e["metadata"]["sequence"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, (0..30).collect::<Vec<_>>());
        for body in bodies.lock().unwrap().iter() {
            assert!(body.len() <= 2048, "a batch of {} bytes", body.len());
            assert!(serde_json::from_slice::<Vec<Value>>(body).unwrap().len() <= 8);
        }
        let cursor_row = cursor(&store).await.unwrap();
        assert_eq!(cursor_row.last, 29);
        assert_eq!(cursor_row.until_ms, 0, "released at stop");

        // Another run resumes after the cursor; a record too large for a
        // batch goes without its bulk.
        store
            .append(vec![heartbeat(10), heartbeat(5000), heartbeat(10)])
            .await
            .unwrap();
        let again = Arc::new(Mutex::new(Vec::new()));
        ship(&store, settings(8, 2048), 0, again.clone(), 3).await;
        let events = events(&again);
        let seqs: Vec<i64> = events
            .iter()
            .map(|e| e["metadata"]["sequence"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, [30, 31, 32]);
        assert_eq!(events[1]["unmapped"]["truncated"], true);
        assert!(events[0]["unmapped"].get("truncated").is_none());
    }
}
