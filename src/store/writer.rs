//! The writer both backends share: one connection, and **group commit**.
//! Jobs that arrive while a transaction is being made durable wait in the
//! queue ([`super::queue`], which also decides which thread commits) and
//! share the next one; each caller is answered only once its transaction
//! has committed (fsync'd on SQLite, flushed with `synchronous_commit = on`
//! on PostgreSQL).
//!
//! Sequence numbers are assigned here, in commit order. On SQLite this
//! writer is the log's only one. On PostgreSQL several replicas append to
//! one log: a transaction that appends first locks the log's head row, learns
//! the records other replicas appended since this writer's last commit (their
//! leaf hashes go to the commit hook first, so every replica's Merkle
//! frontier covers the whole log), numbers its own records after them and
//! moves the head, all before it commits.

use tokio::sync::oneshot;

use super::{CheckpointRow, CommitHook, Guard, Job, Sealed, StateChange, StoreError};

/// Most jobs one transaction takes (bounds the latency of the first caller).
pub(super) const MAX_BATCH: usize = 4096;

/// Longest a batch of lingering appends alone waits for another job to
/// share its commit.
pub(crate) const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// One backend's writing connection. Every method but `begin` runs inside
/// the transaction `begin` opened.
pub(super) trait Backend {
    fn begin(&mut self) -> Result<(), StoreError>;
    /// Locks the log for this transaction; returns its next sequence number
    /// and the leaf hashes of the records from `known` to it, which other
    /// writers appended.
    fn lock_log(&mut self, known: u64) -> Result<(u64, Vec<[u8; 32]>), StoreError>;
    /// Inserts records numbered from `first`.
    fn insert_records(&mut self, first: u64, records: &[Sealed]) -> Result<(), StoreError>;
    /// The log's next sequence number is now `next` (after own appends).
    fn move_head(&mut self, next: u64) -> Result<(), StoreError>;
    fn insert_checkpoint(&mut self, row: &CheckpointRow) -> Result<(), StoreError>;
    fn upsert_baselines(&mut self, rows: &[(String, Vec<u8>)]) -> Result<(), StoreError>;
    /// Appends risk events, numbered after every committed one.
    fn insert_risk_events(&mut self, events: &[(i64, Vec<u8>)]) -> Result<(), StoreError>;
    fn prune_risk_events(&mut self, before: i64) -> Result<(), StoreError>;
    fn insert_facts(&mut self, request_id: &str, facts: &[u8]) -> Result<(), StoreError>;
    fn apply_state(&mut self, change: &StateChange) -> Result<(), StoreError>;
    /// Sets `guard.new` if `(ns, key)` holds `guard.expected` (racing
    /// writers serialize on the row); else [`StoreError::Conflict`].
    fn compare_and_set(&mut self, guard: &Guard) -> Result<(), StoreError>;
    fn savepoint(&mut self) -> Result<(), StoreError>;
    fn release(&mut self) -> Result<(), StoreError>;
    fn rollback_to_savepoint(&mut self);
    fn commit(&mut self) -> Result<(), StoreError>;
    fn rollback(&mut self);
}

pub(super) struct Writer<B> {
    pub backend: B,
    /// The next sequence number as this writer knows it: every record
    /// below it has reached the commit hook.
    pub next_seq: u64,
    pub hook: CommitHook,
}

enum Done {
    Append(
        oneshot::Sender<Result<Vec<u64>, StoreError>>,
        Result<Vec<u64>, StoreError>,
    ),
    Unit(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
}

impl Done {
    fn answer(self, error: Option<&StoreError>) {
        match (self, error) {
            (Done::Append(reply, _), Some(e)) => drop(reply.send(Err(e.clone()))),
            (Done::Unit(reply, _), Some(e)) => drop(reply.send(Err(e.clone()))),
            (Done::Append(reply, result), None) => drop(reply.send(result)),
            (Done::Unit(reply, result), None) => drop(reply.send(result)),
        }
    }
}

pub(super) fn fail(job: Job, error: StoreError) {
    match job {
        Job::Append { reply, .. } => drop(reply.send(Err(error))),
        Job::Checkpoint { reply, .. }
        | Job::SaveBaselines { reply, .. }
        | Job::RiskEvents { reply, .. }
        | Job::PruneRiskEvents { reply, .. }
        | Job::SaveFacts { reply, .. }
        | Job::State { reply, .. } => drop(reply.send(Err(error))),
    }
}

impl<B: Backend + Send> super::queue::Commit for Writer<B> {
    fn commit(&mut self, batch: Vec<Job>) {
        Writer::commit(self, batch);
    }
}

impl<B: Backend> Writer<B> {
    /// One transaction for the whole batch; a job that fails alone is
    /// rolled back to its savepoint and the others still commit.
    fn commit(&mut self, batch: Vec<Job>) {
        if let Err(error) = self.backend.begin() {
            for job in batch {
                fail(job, error.clone());
            }
            return;
        }
        let touches_log = batch
            .iter()
            .any(|j| matches!(j, Job::Append { .. } | Job::Checkpoint { .. }));
        let (head, mut leaves): (u64, Vec<[u8; 32]>) = if touches_log {
            match self.backend.lock_log(self.next_seq) {
                Ok(found) => found,
                Err(error) => {
                    self.backend.rollback();
                    for job in batch {
                        fail(job, error.clone());
                    }
                    return;
                }
            }
        } else {
            (self.next_seq, Vec::new())
        };
        let first_seq = self.next_seq;
        let mut next_seq = head;
        let mut done = Vec::with_capacity(batch.len());
        // The batch's unguarded appends go in with one statement, as do
        // its risk events.
        let mut unguarded = Unguarded::default();
        let mut learned = Vec::new();
        let mut learned_replies = Vec::new();
        for job in batch {
            match job {
                Job::Append {
                    sealers,
                    guard: None,
                    reply,
                    ..
                } => match seal(sealers, next_seq) {
                    Ok(records) => {
                        let first = next_seq;
                        next_seq += records.len() as u64;
                        unguarded.push(reply, first, records);
                    }
                    Err(error) => done.push(Done::Append(reply, Err(error))),
                },
                Job::Append {
                    sealers,
                    guard: Some(guard),
                    reply,
                    ..
                } => {
                    // The unguarded appends numbered before it go in first.
                    self.insert_unguarded(&mut unguarded, &mut next_seq, &mut leaves, &mut done);
                    let result = self.append(sealers, Some(&guard), next_seq);
                    if let Ok((seqs, mine)) = &result {
                        next_seq += seqs.len() as u64;
                        leaves.extend_from_slice(mine);
                    }
                    done.push(Done::Append(reply, result.map(|(seqs, _)| seqs)));
                }
                Job::Checkpoint { row, reply } => {
                    let result = self.backend.insert_checkpoint(&row);
                    done.push(Done::Unit(reply, result));
                }
                Job::SaveBaselines { rows, reply } => {
                    let result = self.in_savepoint(|b| b.upsert_baselines(&rows));
                    done.push(Done::Unit(reply, result));
                }
                Job::RiskEvents { events, reply } => {
                    learned.extend(events);
                    learned_replies.push(reply);
                }
                Job::PruneRiskEvents { before, reply } => {
                    let result = self.in_savepoint(|b| b.prune_risk_events(before));
                    done.push(Done::Unit(reply, result));
                }
                Job::SaveFacts {
                    request_id,
                    facts,
                    reply,
                } => {
                    let result = self.backend.insert_facts(&request_id, &facts);
                    done.push(Done::Unit(reply, result));
                }
                Job::State { change, reply } => {
                    let result = self.backend.apply_state(&change);
                    done.push(Done::Unit(reply, result));
                }
            }
        }
        self.insert_unguarded(&mut unguarded, &mut next_seq, &mut leaves, &mut done);
        if !learned_replies.is_empty() {
            let result = self.in_savepoint(|b| b.insert_risk_events(&learned));
            for reply in learned_replies {
                done.push(Done::Unit(reply, result.clone()));
            }
        }
        let committed = if next_seq != head {
            self.backend.move_head(next_seq)
        } else {
            Ok(())
        }
        .and_then(|()| self.backend.commit());
        if let Err(error) = committed {
            self.backend.rollback();
            for d in done {
                d.answer(Some(&error));
            }
            return;
        }
        self.next_seq = next_seq;
        if !leaves.is_empty() {
            let own = (next_seq - head) as usize;
            (self.hook)(first_seq, &leaves, own);
        }
        for d in done {
            d.answer(None);
        }
    }

    /// Inserts the sealed unguarded appends with one statement, in one
    /// savepoint. They were numbered last, so if the insert fails their
    /// numbers are given back and every one of them fails (a statement
    /// that fails here means the connection or the database failed).
    fn insert_unguarded(
        &mut self,
        unguarded: &mut Unguarded,
        next_seq: &mut u64,
        leaves: &mut Vec<[u8; 32]>,
        done: &mut Vec<Done>,
    ) {
        let Unguarded { records, jobs } = std::mem::take(unguarded);
        let Some(first) = records.first().map(|(seq, _)| *seq) else {
            // Jobs with nothing to append, if any.
            for (reply, seqs) in jobs {
                done.push(Done::Append(reply, Ok(seqs)));
            }
            return;
        };
        let sealed: Vec<Sealed> = records.into_iter().map(|(_, r)| r).collect();
        match self.in_savepoint(|b| b.insert_records(first, &sealed)) {
            Ok(()) => {
                leaves.extend(sealed.iter().map(|r| r.leaf_hash));
                for (reply, seqs) in jobs {
                    done.push(Done::Append(reply, Ok(seqs)));
                }
            }
            Err(error) => {
                *next_seq = first;
                for (reply, _) in jobs {
                    done.push(Done::Append(reply, Err(error.clone())));
                }
            }
        }
    }

    /// Seals and inserts one job's records from `first`, all or none.
    fn append(
        &mut self,
        sealers: Vec<super::Sealer>,
        guard: Option<&Guard>,
        first: u64,
    ) -> Result<(Vec<u64>, Vec<[u8; 32]>), StoreError> {
        let records = seal(sealers, first)?;
        self.in_savepoint(|b| {
            if let Some(guard) = guard {
                b.compare_and_set(guard)?;
            }
            b.insert_records(first, &records)
        })?;
        let seqs = (first..first + records.len() as u64).collect();
        Ok((seqs, records.iter().map(|r| r.leaf_hash).collect()))
    }

    fn in_savepoint(
        &mut self,
        work: impl FnOnce(&mut B) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.backend.savepoint()?;
        match work(&mut self.backend) {
            Ok(()) => self.backend.release(),
            Err(e) => {
                self.backend.rollback_to_savepoint();
                Err(e)
            }
        }
    }
}

/// Seals one job's records, numbered from `first`.
fn seal(sealers: Vec<super::Sealer>, first: u64) -> Result<Vec<Sealed>, StoreError> {
    sealers
        .into_iter()
        .enumerate()
        .map(|(i, seal)| seal(first + i as u64).map_err(StoreError::Seal))
        .collect()
}

/// Where an append's caller waits for its sequence numbers.
type AppendReply = oneshot::Sender<Result<Vec<u64>, StoreError>>;

/// Unguarded appends sealed in a batch, waiting to be inserted together:
/// their records (with sequence numbers, contiguous) and each job's reply
/// and numbers.
#[derive(Default)]
struct Unguarded {
    records: Vec<(u64, Sealed)>,
    jobs: Vec<(AppendReply, Vec<u64>)>,
}

impl Unguarded {
    /// One job's records, numbered from `first`.
    fn push(&mut self, reply: AppendReply, first: u64, records: Vec<Sealed>) {
        let seqs: Vec<u64> = (first..).take(records.len()).collect();
        self.records.extend(seqs.iter().copied().zip(records));
        self.jobs.push((reply, seqs));
    }
}
