//! Where jobs wait for a commit, and who commits them.
//!
//! Every job goes into one queue. The writer thread commits what is queued,
//! as many jobs in one transaction as have gathered ([`super::writer`]).
//! On SQLite a caller may also commit its own job, on its own thread: when
//! the writer thread is idle and nothing that needs a commit is queued
//! ahead (at most lingering appends wait), it takes the writer, commits
//! its job with whatever lingers, and is answered without a hand-off to
//! the writer thread and back, two wake-ups of sleeping threads. Under
//! load the writer thread is busy, jobs queue, and it commits them in
//! groups while the callers' threads go on with other work.
//!
//! The queue is closed when the store's last handle is dropped: what is
//! queued is still committed, then the writer thread returns. If a commit
//! panics, the queue is stopped: what is queued is dropped, so its callers
//! learn [`StoreError::Stopped`] instead of waiting.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use super::writer::{LINGER, MAX_BATCH};
use super::{Job, StoreError};

/// What commits a batch of jobs (the writer, whichever thread runs it).
pub(super) trait Commit: Send {
    fn commit(&mut self, batch: Vec<Job>);
}

pub(super) struct Queue {
    pending: Mutex<Pending>,
    /// Wakes the writer thread: a job arrived, or the queue closed.
    arrived: Condvar,
    /// The writer; `None` until installed and after it has finished.
    writer: Mutex<Option<Box<dyn Commit>>>,
    /// Whether callers may commit their own jobs.
    callers_commit: bool,
    /// How long lingering jobs alone wait for company.
    linger: Duration,
}

#[derive(Default)]
struct Pending {
    jobs: VecDeque<Job>,
    /// The store's handles are all gone.
    closed: bool,
    /// Nothing will be committed any more.
    stopped: bool,
    /// The writer thread is waiting for work (or for company for
    /// lingering jobs), not committing.
    writer_idle: bool,
}

impl Pending {
    /// Whether every queued job may wait for company.
    fn only_lingering(&self) -> bool {
        self.jobs.iter().all(Job::lingers)
    }
}

impl Queue {
    pub fn new(callers_commit: bool) -> Self {
        Self {
            pending: Mutex::default(),
            arrived: Condvar::new(),
            writer: Mutex::new(None),
            callers_commit,
            linger: LINGER,
        }
    }

    /// A queue whose writer has gone: every submit fails.
    #[cfg(test)]
    pub fn stopped() -> Self {
        let queue = Self::new(false);
        queue.pending().stopped = true;
        queue
    }

    pub fn install(&self, writer: Box<dyn Commit>) {
        *self.writer.lock().unwrap_or_else(|p| p.into_inner()) = Some(writer);
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        // Nothing panics while holding this lock; a poisoned lock's data
        // is still whole.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job`; it is answered through its reply once committed or
    /// failed. Commits it on the calling thread when nothing that needs a
    /// commit is queued ahead (see the module's documentation).
    pub fn submit(&self, job: Job) -> Result<(), StoreError> {
        let lead = {
            let mut pending = self.pending();
            if pending.stopped {
                return Err(StoreError::Stopped);
            }
            let lead = self.callers_commit
                && pending.writer_idle
                && !job.lingers()
                && pending.only_lingering();
            // The writer thread needs waking only when it waits and the
            // job changes what it waits for: a job that is due now, or
            // the first of lingering jobs (whose wait it then times).
            // A busy writer looks at the queue again before it waits; a
            // notification it does not need is still a system call.
            let wake = !lead && pending.writer_idle && (!job.lingers() || pending.jobs.is_empty());
            pending.jobs.push_back(job);
            if wake {
                self.arrived.notify_one();
            }
            lead
        };
        if lead {
            self.lead();
        }
        Ok(())
    }

    /// Commits what is queued if the writer is free. If another thread
    /// holds it, that thread looks at the queue again once it lets go
    /// (the writer thread in its loop, a caller in [`Self::after_lead`]),
    /// so the job is not left behind.
    fn lead(&self) {
        let mut writer = match self.writer.try_lock() {
            Ok(writer) => writer,
            Err(TryLockError::WouldBlock) => return,
            Err(TryLockError::Poisoned(_)) => return self.stop(),
        };
        self.commit_queued(&mut writer);
        drop(writer);
        self.after_lead();
    }

    /// Commits up to [`MAX_BATCH`] queued jobs, oldest first, with the
    /// writer the caller holds (none once it has finished: then they are
    /// dropped, and their callers learn the store stopped).
    fn commit_queued(&self, writer: &mut Option<Box<dyn Commit>>) {
        let batch = {
            let mut pending = self.pending();
            let n = pending.jobs.len().min(MAX_BATCH);
            pending.jobs.drain(..n).collect::<Vec<_>>()
        };
        if let Some(w) = writer.as_mut()
            && !batch.is_empty()
        {
            w.commit(batch);
        }
    }

    /// Hands on to the writer thread what arrived while a caller
    /// committed.
    fn after_lead(&self) {
        let pending = self.pending();
        if pending.writer_idle && !pending.jobs.is_empty() {
            self.arrived.notify_one();
        }
    }

    /// Called when the store's last handle goes.
    pub fn close(&self) {
        self.pending().closed = true;
        self.arrived.notify_one();
    }

    /// Drops what is queued (its callers learn the store stopped) and
    /// refuses what comes.
    fn stop(&self) {
        let dropped = {
            let mut pending = self.pending();
            pending.stopped = true;
            std::mem::take(&mut pending.jobs)
        };
        drop(dropped);
    }

    /// Waits until a batch is due: a job that does not linger, lingering
    /// jobs that have waited [`LINGER`], or anything once closed. `false`
    /// when the queue is closed and empty.
    fn wait_due(&self) -> bool {
        let mut pending = self.pending();
        let mut lingering_since: Option<Instant> = None;
        pending.writer_idle = true;
        let due = loop {
            if pending.jobs.is_empty() {
                if pending.closed {
                    break false;
                }
                lingering_since = None;
                pending = self
                    .arrived
                    .wait(pending)
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
            if pending.closed || !pending.only_lingering() {
                break true;
            }
            let since = *lingering_since.get_or_insert_with(Instant::now);
            let Some(left) = self.linger.checked_sub(since.elapsed()) else {
                break true;
            };
            pending = self
                .arrived
                .wait_timeout(pending, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        pending.writer_idle = false;
        due
    }

    /// The writer thread's loop: commits batches as they fall due until
    /// the queue is closed and empty, then drops the writer.
    pub fn run(&self) {
        let stop_on_panic = StopOnDrop(self);
        while self.wait_due() {
            let mut writer = match self.writer.lock() {
                Ok(writer) => writer,
                Err(_) => break,
            };
            self.commit_queued(&mut writer);
        }
        drop(stop_on_panic);
    }
}

/// Stops the queue and drops the writer when the writer thread leaves,
/// by returning or by a panic.
struct StopOnDrop<'a>(&'a Queue);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
        let writer = match self.0.writer.lock() {
            Ok(mut writer) => writer.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(writer);
    }
}

impl Job {
    /// Whether the job may wait a moment for the next to share its commit.
    fn lingers(&self) -> bool {
        matches!(self, Job::Append { linger: true, .. })
    }
}

/// What the store's handles share: the queue, closed when the last handle
/// goes.
pub(super) struct Handle(pub std::sync::Arc<Queue>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;
    use tokio::sync::oneshot;

    /// Records which thread committed which jobs (by their first sealer
    /// count, used here as a label), answers each, and may block or panic.
    struct Fake {
        commits: mpsc::Sender<(String, Vec<usize>)>,
        /// When set, each commit first says it has begun, then waits to be
        /// let through.
        gate: Option<Gate>,
        panics: bool,
    }

    impl Commit for Fake {
        fn commit(&mut self, batch: Vec<Job>) {
            if let Some((begun, through)) = &self.gate {
                begun.send(()).unwrap();
                through.recv().unwrap();
            }
            assert!(!self.panics, "the commit failed");
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            let mut labels = Vec::new();
            for job in batch {
                let Job::Append { sealers, reply, .. } = job else {
                    unreachable!("the tests queue appends only")
                };
                labels.push(sealers.len());
                let _ = reply.send(Ok(vec![sealers.len() as u64]));
            }
            self.commits.send((thread, labels)).unwrap();
        }
    }

    type Answer = oneshot::Receiver<Result<Vec<u64>, StoreError>>;
    type Gate = (mpsc::Sender<()>, mpsc::Receiver<()>);
    /// Which thread committed which jobs, commit by commit.
    type Commits = mpsc::Receiver<(String, Vec<usize>)>;

    /// A gate, the commits' signal that they began, and the way through.
    fn gate() -> (Gate, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (begun, begins) = mpsc::channel();
        let (open, through) = mpsc::channel();
        ((begun, through), begins, open)
    }

    /// An append labelled by its number of (never called) sealers.
    fn job(label: usize, linger: bool) -> (Job, Answer) {
        let (reply, answer) = oneshot::channel();
        let sealers = (0..label)
            .map(|_| Box::new(|_| Err("not sealed".to_owned())) as super::super::Sealer)
            .collect();
        let job = Job::Append {
            sealers,
            guard: None,
            linger,
            reply,
        };
        (job, answer)
    }

    fn start(
        queue: Queue,
        gate: Option<Gate>,
        panics: bool,
    ) -> (Arc<Queue>, Commits, std::thread::JoinHandle<()>) {
        let (commits, committed) = mpsc::channel();
        queue.install(Box::new(Fake {
            commits,
            gate,
            panics,
        }));
        let queue = Arc::new(queue);
        let runs = queue.clone();
        let writer = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || runs.run())
            .unwrap();
        // Wait until the writer thread waits for work: it sets the flag
        // and waits under the one lock, so once the flag is seen here, it
        // is waiting.
        while !queue.pending().writer_idle {
            std::thread::yield_now();
        }
        (queue, committed, writer)
    }

    /// Submits appends labelled and lingering as given; their answers.
    fn submit_all(queue: &Queue, jobs: &[(usize, bool)]) -> Vec<Answer> {
        jobs.iter()
            .map(|&(label, linger)| {
                let (j, answer) = job(label, linger);
                queue.submit(j).unwrap();
                answer
            })
            .collect()
    }

    fn answered(answer: Answer) -> Result<Vec<u64>, StoreError> {
        answer.blocking_recv().unwrap_or(Err(StoreError::Stopped))
    }

    #[test]
    fn a_caller_commits_its_job_and_what_lingers_when_the_writer_is_idle() {
        let mut queue = Queue::new(true);
        queue.linger = Duration::from_secs(600);
        // The outcome is queued before the writer thread starts: it finds
        // the outcome, lingers, and is not woken again (the caller below
        // commits instead of waking it).
        let (outcome, outcome_answer) = job(1, true);
        queue.submit(outcome).unwrap();
        let (queue, committed, writer) = start(queue, None, false);
        let here = std::thread::current().name().unwrap().to_owned();
        let (intent, intent_answer) = job(2, false);
        queue.submit(intent).unwrap();
        // Both in one commit, on this thread, before the linger ran out.
        assert_eq!(committed.try_recv().unwrap(), (here, vec![1, 2]));
        assert_eq!(answered(outcome_answer).unwrap(), vec![1]);
        assert_eq!(answered(intent_answer).unwrap(), vec![2]);
        drop(Handle(queue));
        writer.join().unwrap();
        assert!(committed.try_recv().is_err(), "nothing committed twice");
    }

    #[test]
    fn a_job_queued_while_a_caller_commits_is_committed_by_the_writer_thread() {
        let (gate, begins, open) = gate();
        let (queue, committed, writer) = start(Queue::new(true), Some(gate), false);
        // The first caller leads and is held inside its commit.
        let leads = queue.clone();
        let (first, first_answer) = job(1, false);
        let leader = std::thread::Builder::new()
            .name("leader".into())
            .spawn(move || leads.submit(first).unwrap())
            .unwrap();
        begins.recv().unwrap();
        // The second finds the writer taken and leaves its job queued.
        let (second, second_answer) = job(2, false);
        queue.submit(second).unwrap();
        open.send(()).unwrap();
        open.send(()).unwrap();
        leader.join().unwrap();
        assert_eq!(committed.recv().unwrap(), ("leader".to_owned(), vec![1]));
        assert_eq!(committed.recv().unwrap(), ("writer".to_owned(), vec![2]));
        assert_eq!(answered(first_answer).unwrap(), vec![1]);
        assert_eq!(answered(second_answer).unwrap(), vec![2]);
        drop(Handle(queue));
        writer.join().unwrap();
    }

    #[test]
    fn without_callers_committing_the_writer_thread_commits_everything() {
        let (queue, committed, writer) = start(Queue::new(false), None, false);
        let (intent, answer) = job(3, false);
        queue.submit(intent).unwrap();
        assert_eq!(answered(answer).unwrap(), vec![3]);
        assert_eq!(committed.recv().unwrap(), ("writer".to_owned(), vec![3]));
        drop(Handle(queue));
        writer.join().unwrap();
    }

    #[test]
    fn jobs_queued_while_the_writer_thread_commits_are_committed_next_without_a_wake_up() {
        let (gate, begins, open) = gate();
        let (queue, committed, writer) = start(Queue::new(false), Some(gate), false);
        let (first, first_answer) = job(1, false);
        queue.submit(first).unwrap();
        begins.recv().unwrap();
        // The writer thread is inside its commit: not waiting, so these
        // notify nobody, and it finds them when it looks again.
        assert!(!queue.pending().writer_idle);
        let answers = submit_all(&queue, &[(2, false), (3, true)]);
        open.send(()).unwrap();
        open.send(()).unwrap();
        let within = Duration::from_secs(30);
        assert_eq!(
            committed.recv_timeout(within).unwrap(),
            ("writer".to_owned(), vec![1])
        );
        assert_eq!(
            committed.recv_timeout(within).unwrap(),
            ("writer".to_owned(), vec![2, 3])
        );
        assert_eq!(answered(first_answer).unwrap(), vec![1]);
        for (answer, label) in answers.into_iter().zip([2, 3]) {
            assert_eq!(answered(answer).unwrap(), vec![label]);
        }
        drop(Handle(queue));
        writer.join().unwrap();
    }

    #[test]
    fn closing_commits_what_is_queued_lingering_or_not_then_the_writer_returns() {
        let mut queue = Queue::new(false);
        queue.linger = Duration::from_secs(600);
        let (gate, _begins, open) = gate();
        let (queue, committed, writer) = start(queue, Some(gate), false);
        let answers = submit_all(&queue, &[(1, true), (2, true)]);
        // Closed while they linger: they are committed without waiting.
        drop(Handle(queue));
        open.send(()).unwrap();
        writer.join().unwrap();
        assert_eq!(committed.recv().unwrap(), ("writer".to_owned(), vec![1, 2]));
        for (answer, label) in answers.into_iter().zip([1, 2]) {
            assert_eq!(answered(answer).unwrap(), vec![label]);
        }
    }

    #[test]
    fn a_commit_that_panics_stops_the_queue_and_no_caller_waits() {
        let (queue, _committed, writer) = start(Queue::new(false), None, true);
        let (intent, answer) = job(1, false);
        queue.submit(intent).unwrap();
        assert!(writer.join().is_err(), "the writer thread panicked");
        assert!(matches!(answered(answer), Err(StoreError::Stopped)));
        let (next, _) = job(1, false);
        assert!(matches!(queue.submit(next), Err(StoreError::Stopped)));
    }
}
