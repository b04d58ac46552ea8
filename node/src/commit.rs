//! The group committer: the node's single writer.
//!
//! Every mutating use-case runs as a job on one committer thread. The thread takes the first waiting job and then
//! every job already queued (up to `group_commit_max`), runs each against the store (each job's writes applied as one
//! atomic batch, so the next job reads them), and hands the group to the flusher thread, which flushes **once** for
//! every group waiting and only then answers their callers. While a flush runs, the committer already runs the next
//! jobs, so the disk's latency and the jobs' CPU time overlap instead of adding up. So:
//! - nothing is acknowledged before it is durable (the flush precedes every reply);
//! - concurrent writers share flushes (one flusher, many waiters), which is what makes durable writes fast;
//! - jobs are serialised, so read-check-write rules (capacity, uniqueness, versions) need no locks;
//! - a job's audit entry is part of the job's own batch: the change and its audit record are atomic;
//! - the jobs of one group are applied to the store as **one** batch at the end of the group (sled's batch costs a
//!   global write lock and a log reservation each): until then a job's writes wait in the group's overlay, which
//!   the next jobs read through (`Txn::get`, `Txn::scan_rev`); a job that needs the raw store (`Txn::store`, for
//!   scans) first has the overlay applied, so it sees every earlier job of its group.
//!
//! sled's `flush_async` stalls when called from many tasks at once; here only the flusher thread ever flushes.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use ecovol_coordinator::region::DivisionCode;

use crate::audit::{self, AuditContext};
use crate::error::DomainError;
use crate::federation::outbox::Outbox;
use crate::store::{self, Store, StoreError, Write};

/// Called once the group a job belonged to was flushed (or failed to be).
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A use-case closure bound to its reply channel.
type Job = Box<dyn FnOnce(&mut Txn<'_>) -> Completion + Send>;

enum Message {
    Job(Job),
    Stop(oneshot::Sender<()>),
}

/// Counters of the committer, for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Jobs run (committed or refused).
    pub jobs: AtomicU64,
    /// Flushes made; `jobs / flushes` is the mean group size.
    pub flushes: AtomicU64,
    /// Total time spent in flush, microseconds.
    pub flush_micros: AtomicU64,
    /// Time the committer thread spent running jobs and applying their batches, microseconds: divided by the
    /// wall-clock time, how busy the node's single writer is (near 1: writes are limited by it).
    pub busy_micros: AtomicU64,
    /// Duration of each flush (`ecovol_committer_flush_duration_seconds`).
    pub flush_seconds: crate::metrics::FlushHistogram,
}

/// Handle to the committer thread. Cheap to share behind an `Arc`.
pub struct Committer {
    sender: mpsc::Sender<Message>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    stats: Arc<CommitStats>,
    outbox: Arc<Outbox>,
}

impl Committer {
    /// Starts the committer thread over `store`. `queue_max` bounds the jobs waiting (back-pressure on callers);
    /// `group_max` bounds the jobs sharing one flush.
    /// The node has no parent (tests): see `start_with_outbox`.
    pub fn start(store: Arc<dyn Store>, queue_max: usize, group_max: usize) -> Self {
        let origin = DivisionCode::parse("330106").unwrap_or_else(|_| unreachable!("a valid code"));
        Self::start_with_outbox(store, queue_max, group_max, Arc::new(Outbox::standalone(origin)))
    }

    /// As `start`, with the node's outbox: jobs record federation entries into it (`federation::outbox::record`).
    pub fn start_with_outbox(store: Arc<dyn Store>, queue_max: usize, group_max: usize, outbox: Arc<Outbox>) -> Self {
        let (sender, receiver) = mpsc::channel(queue_max.max(1));
        let stats = Arc::new(CommitStats::default());
        let thread_stats = stats.clone();
        let thread_outbox = outbox.clone();
        let thread = std::thread::Builder::new()
            .name("ecovol-committer".into())
            .spawn(move || run(store, receiver, group_max.max(1), thread_stats, thread_outbox))
            .ok();
        Self { sender, thread: std::sync::Mutex::new(thread), stats, outbox }
    }

    /// The node's outbox.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    pub fn stats(&self) -> &CommitStats {
        &self.stats
    }

    /// Runs `use_case` as one atomic, durable, audited write and returns its result once it is durable.
    ///
    /// If `use_case` fails, none of its writes are kept, but the audit entry of the refusal is.
    pub async fn write<T, F>(&self, audit: AuditContext, use_case: F) -> Result<T, DomainError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Txn<'_>) -> Result<T, DomainError> + Send + 'static,
    {
        self.submit(Some(audit), use_case).await
    }

    /// As `write`, without an audit entry: for the federation's bookkeeping (applying a child's entries, which
    /// were audited where they were made; acknowledged positions), never for an office's change.
    pub async fn write_unaudited<T, F>(&self, use_case: F) -> Result<T, DomainError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Txn<'_>) -> Result<T, DomainError> + Send + 'static,
    {
        self.submit(None, use_case).await
    }

    async fn submit<T, F>(&self, audit: Option<AuditContext>, use_case: F) -> Result<T, DomainError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Txn<'_>) -> Result<T, DomainError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, DomainError>>();
        let outbox = self.outbox.clone();
        let job: Job = Box::new(move |txn: &mut Txn<'_>| -> Completion {
            if let Some(error) = txn.refused.take() {
                return Box::new(move |_| {
                    let _ = reply.send(Err(error.into()));
                });
            }
            if let Some(audit) = &audit {
                txn.target = audit.target.clone();
            }
            let result = use_case(txn);
            if result.is_err() {
                txn.writes.clear();
                txn.emitted.clear();
            }
            if let Some(audit) = &audit
                && let Err(error) = audit::append(txn, audit, result.as_ref().err())
            {
                // Without its audit entry a change may not be kept (MLPS: every change audited).
                txn.writes.clear();
                return Box::new(move |_| {
                    let _ = reply.send(Err(error));
                });
            }
            let emitted = std::mem::take(&mut txn.emitted);
            Box::new(move |durable: Result<(), StoreError>| {
                if durable.is_ok() {
                    outbox.appended(&emitted);
                }
                let _ = reply.send(durable.map_err(DomainError::from).and(result));
            })
        });
        self.sender
            .send(Message::Job(job))
            .await
            .map_err(|_| DomainError::Unavailable("the node is shutting down".into()))?;
        // The committer finishes every queued job before it stops, so an answer that never comes means the job
        // panicked (a bug; logged by the committer, nothing of it stored).
        answer
            .await
            .map_err(|_| DomainError::Internal("the write failed inside the node; nothing of it was stored".into()))?
    }

    /// Finishes the queued jobs, flushes, and stops the thread. Later writes are refused with Unavailable.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.sender.send(Message::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
        let handle = self.thread.lock().ok().and_then(|mut thread| thread.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

/// What the committer hands the flusher thread.
enum FlushRequest {
    /// Completions of jobs already applied: answer them once a flush that began after them succeeds, and only if
    /// no flush failed since the group began (`failures_before`): a failed flush may lose writes applied while it
    /// ran, so they are never acknowledged by a later flush.
    Group { completions: Vec<Completion>, failures_before: u64 },
    /// Flush what is left, answer it, signal, and end.
    Stop(oneshot::Sender<()>),
}

/// What the flusher tells the committer about failed flushes.
#[derive(Default)]
struct FlushFailure {
    /// Set after a failed flush and cleared by the next successful one: the committer refuses writes meanwhile.
    failed: std::sync::Mutex<Option<StoreError>>,
    /// Failed flushes so far; raised before `failed` is set.
    failures: AtomicU64,
}

impl FlushFailure {
    fn current(&self) -> Option<StoreError> {
        self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

fn run(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<Message>,
    group_max: usize,
    stats: Arc<CommitStats>,
    outbox: Arc<Outbox>,
) {
    // Jobs run here, flushes happen on the flusher thread: while one group is being flushed the next group's jobs
    // already run (pipelining), and the callers are answered from the flusher, off this thread's serial path.
    // Only the flusher ever flushes (sled's flush stalls when called from many threads at once).
    let failure: Arc<FlushFailure> = Arc::default();
    let (flush_sender, flush_receiver) = std::sync::mpsc::channel::<FlushRequest>();
    let flusher = {
        let (store, stats, failure) = (store.clone(), stats.clone(), failure.clone());
        std::thread::Builder::new()
            .name("ecovol-flusher".into())
            .spawn(move || flush_loop(&*store, &flush_receiver, &stats, &failure))
    };
    let flusher = match flusher {
        Ok(flusher) => flusher,
        Err(error) => {
            tracing::error!(%error, "cannot start the flusher thread: the node takes no writes");
            return;
        }
    };
    let mut clock = MonotonicClock::default();
    let mut stop = None;
    while let Some(first) = receiver.blocking_recv() {
        // Set when a flush failed: writes are refused until a flush succeeds again (the flusher retries with the
        // next group, which the refusals below still form).
        let busy_since = std::time::Instant::now();
        let failures_before = failure.failures.load(Ordering::SeqCst);
        let failed = failure.current();
        let mut pending: Vec<Completion> = Vec::new();
        let overlay = RefCell::new(Overlay::default());
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Stop(done) => {
                    stop = Some(done);
                    break;
                }
                Message::Job(job) => {
                    stats.jobs.fetch_add(1, Ordering::Relaxed);
                    let mut txn = Txn::new(&*store, &outbox, &overlay, clock.now());
                    txn.refused = failed.clone();
                    // A bug that panics inside a use-case must cost one request, not the node's writes: the job's
                    // writes are dropped (nothing of it was applied; sequences and the outbox move only with
                    // applied writes), its caller's reply is dropped with the closure, which the caller reads as
                    // Internal (`submit`), and the committer goes on with the next job.
                    let completion = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut txn))) {
                        Ok(completion) => completion,
                        Err(panic) => {
                            let message = panic
                                .downcast_ref::<&str>()
                                .map(|text| text.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_default();
                            tracing::error!(panic = %message, "a write job panicked: its writes are dropped");
                            if pending.len() >= group_max {
                                break;
                            }
                            next = receiver.try_recv().ok();
                            continue;
                        }
                    };
                    // The job's writes join the group's overlay as a whole: the next jobs read them, and they
                    // reach the store with the group's batch (atomic, so the job's writes stay all-or-nothing).
                    overlay.borrow_mut().writes.extend(txn.writes);
                    pending.push(completion);
                }
            }
            if pending.len() >= group_max {
                break;
            }
            next = receiver.try_recv().ok();
        }
        // One batch for the group's writes not yet applied. If it (or an apply on a job's behalf) failed, no job
        // of the group is answered with success: none of them is vouched for.
        let mut overlay = overlay.into_inner();
        if overlay.failed.is_none() && !overlay.writes.is_empty() {
            let writes: Vec<Write> = std::mem::take(&mut overlay.writes).into_iter().collect();
            overlay.failed = store.apply(&writes).err();
        }
        if let Some(error) = overlay.failed {
            for completion in pending.drain(..) {
                completion(Err(error.clone()));
            }
        }
        stats.busy_micros.fetch_add(busy_since.elapsed().as_micros() as u64, Ordering::Relaxed);
        if !pending.is_empty()
            && flush_sender.send(FlushRequest::Group { completions: pending, failures_before }).is_err()
        {
            tracing::error!("the flusher thread ended: the node takes no more writes");
            return;
        }
        if stop.is_some() {
            break;
        }
    }
    let (done, stopped) = oneshot::channel();
    let _ = flush_sender.send(FlushRequest::Stop(done));
    let _ = stopped.blocking_recv();
    let _ = flusher.join();
    if let Some(done) = stop {
        let _ = done.send(());
    }
}

/// The flusher thread: takes every group waiting, flushes **once** for all of them, then answers their callers.
/// A flush covers every write applied before it began, and a group is sent only after its jobs were applied, so
/// nothing is answered before it is durable.
fn flush_loop(
    store: &dyn Store,
    receiver: &std::sync::mpsc::Receiver<FlushRequest>,
    stats: &CommitStats,
    failure: &FlushFailure,
) {
    while let Ok(first) = receiver.recv() {
        let mut groups = Vec::new();
        let mut stop = None;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                FlushRequest::Group { completions, failures_before } => groups.push((completions, failures_before)),
                FlushRequest::Stop(done) => {
                    stop = Some(done);
                    break;
                }
            }
            next = receiver.try_recv().ok();
        }
        if !groups.is_empty() || stop.is_some() {
            let started = std::time::Instant::now();
            let flushed = store.flush();
            stats.flushes.fetch_add(1, Ordering::Relaxed);
            stats.flush_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            stats.flush_seconds.observe(started.elapsed());
            if let Err(error) = &flushed {
                tracing::error!(%error, "store flush failed: refusing writes until it succeeds");
                failure.failures.fetch_add(1, Ordering::SeqCst);
            }
            let mut failed = failure.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let earlier_failure = failed.clone();
            *failed = flushed.clone().err();
            drop(failed);
            let failures_now = failure.failures.load(Ordering::SeqCst);
            for (completions, failures_before) in groups {
                // A flush failed after this group began: its writes may have gone with the failed handle, so a
                // later successful flush does not vouch for them.
                let outcome = match &flushed {
                    Ok(()) if failures_before != failures_now => Err(earlier_failure.clone().unwrap_or_else(|| {
                        StoreError::Unavailable("an earlier flush failed while this write was applied".into())
                    })),
                    _ => flushed.clone(),
                };
                for completion in completions {
                    completion(outcome.clone());
                }
            }
        }
        if let Some(done) = stop {
            let _ = done.send(());
            return;
        }
    }
}

/// Visits the entries of `overlaid` (latest last) above `key`, or all of them when `key` is None, skipping
/// deletions; true if `visit` broke.
fn drain_above(
    overlaid: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
    key: Option<&[u8]>,
    visit: &mut store::Visit<'_>,
) -> bool {
    while let Some((next, _)) = overlaid.last() {
        if key.is_some_and(|key| next.as_slice() <= key) {
            return false;
        }
        if let Some((next, Some(value))) = overlaid.pop()
            && visit(&next, &value).is_break()
        {
            return true;
        }
    }
    false
}

/// The writes of a group's jobs not yet applied to the store, and the failure of an apply made for the group.
#[derive(Default)]
struct Overlay {
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    failed: Option<StoreError>,
}

/// Wall-clock time that never goes backwards, so audit order is time order.
#[derive(Default)]
struct MonotonicClock {
    last: Option<DateTime<Utc>>,
}

impl MonotonicClock {
    fn now(&mut self) -> DateTime<Utc> {
        let now = Utc::now();
        let now = match self.last {
            Some(last) if last > now => last,
            _ => now,
        };
        self.last = Some(now);
        now
    }
}

/// One job's view of the store: reads see the store plus this job's own writes; writes are collected and applied
/// as one atomic batch when the job returns.
pub struct Txn<'a> {
    store: &'a dyn Store,
    outbox: &'a Outbox,
    /// The writes of the group's earlier jobs not yet applied to the store.
    overlay: &'a RefCell<Overlay>,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Outbox entries this job appended, announced to the uplink once durable.
    emitted: Vec<(DivisionCode, u64)>,
    now: DateTime<Utc>,
    refused: Option<StoreError>,
    /// What the audit entry names as acted on; starts as the request's target, a use-case may refine it.
    pub target: String,
    /// Extra words for the audit entry (a reason the caller gave).
    pub detail: String,
}

impl<'a> Txn<'a> {
    fn new(store: &'a dyn Store, outbox: &'a Outbox, overlay: &'a RefCell<Overlay>, now: DateTime<Utc>) -> Self {
        Self {
            store,
            outbox,
            overlay,
            writes: BTreeMap::new(),
            emitted: Vec::new(),
            now,
            refused: None,
            target: String::new(),
            detail: String::new(),
        }
    }

    /// The node's outbox (its code, whether it has a parent, the volunteer key).
    pub fn outbox(&self) -> &'a Outbox {
        self.outbox
    }

    /// Notes an outbox entry appended by this job (see `federation::outbox::append`).
    pub(crate) fn emitted(&mut self, origin: DivisionCode, seq: u64) {
        self.emitted.push((origin, seq));
    }

    /// The time of this job's group: every record of the job carries it.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The store, for scans: the group's earlier jobs are applied to it first, so it holds everything but this
    /// job's own writes (scans do not see those).
    pub fn store(&self) -> &dyn Store {
        let mut overlay = self.overlay.borrow_mut();
        if overlay.failed.is_none() && !overlay.writes.is_empty() {
            let writes: Vec<Write> = std::mem::take(&mut overlay.writes).into_iter().collect();
            // On failure the whole group fails (see `run`): what this job decides on the store no longer matters.
            overlay.failed = self.store.apply(&writes).err();
        }
        self.store
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(value) = self.writes.get(key) {
            return Ok(value.clone());
        }
        if let Some(value) = self.overlay.borrow().writes.get(key) {
            return Ok(value.clone());
        }
        self.store.get(key)
    }

    /// As `Store::scan_rev` over the store and the group's earlier jobs (not this job's own writes), without
    /// applying those jobs first: the scan of the hot write path (a volunteer's records) costs no extra batch.
    pub fn scan_rev(
        &self,
        prefix: &[u8],
        start_before: Option<&[u8]>,
        visit: &mut store::Visit<'_>,
    ) -> Result<(), StoreError> {
        let end = start_before.filter(|before| before.starts_with(prefix));
        // The overlay's entries in range, in key order, popped from the back: latest first (few: the group's
        // writes under one prefix).
        let mut overlaid: Vec<(Vec<u8>, Option<Vec<u8>>)> = {
            let overlay = self.overlay.borrow();
            let upper = match end {
                Some(before) => std::ops::Bound::Excluded(before.to_vec()),
                None => std::ops::Bound::Unbounded,
            };
            overlay
                .writes
                .range::<Vec<u8>, _>((std::ops::Bound::Included(prefix.to_vec()), upper))
                .filter(|(key, _)| key.starts_with(prefix))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        };
        if overlaid.is_empty() {
            return self.store.scan_rev(prefix, start_before, visit);
        }
        let mut stopped = false;
        self.store.scan_rev(prefix, start_before, &mut |key, value| {
            if drain_above(&mut overlaid, Some(key), visit) {
                stopped = true;
                return ControlFlow::Break(());
            }
            // An entry the overlay also holds: the overlay's value (or deletion) wins, visited just above.
            if let Some((next, _)) = overlaid.last()
                && next.as_slice() == key
            {
                return match overlaid.pop() {
                    Some((next, Some(value))) => {
                        let flow = visit(&next, &value);
                        stopped = flow.is_break();
                        flow
                    }
                    _ => ControlFlow::Continue(()),
                };
            }
            let flow = visit(key, value);
            stopped = flow.is_break();
            flow
        })?;
        if !stopped {
            drain_above(&mut overlaid, None, visit);
        }
        Ok(())
    }

    pub fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.get(key.as_bytes())? {
            Some(value) => store::decode(key.as_bytes(), &value).map(Some),
            None => Ok(None),
        }
    }

    pub fn put_json<T: serde::Serialize>(&mut self, key: impl Into<Vec<u8>>, value: &T) {
        self.writes.insert(key.into(), Some(store::encode(value)));
    }

    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.insert(key.into(), Some(value.into()));
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.writes.insert(key.into(), None);
    }

    /// The next number of the named sequence (1, 2, 3, …), gap-free across committed jobs.
    pub fn next_seq(&mut self, name: &str) -> Result<u64, StoreError> {
        let key = format!("meta/seq/{name}");
        let current = match self.get(key.as_bytes())? {
            Some(value) => std::str::from_utf8(&value)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or_else(|| StoreError::Corrupt { key: key.clone(), message: "not a number".into() })?,
            None => 0,
        };
        let next = current + 1;
        self.put(key, next.to_string());
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::audit::{self, AuditQuery};
    use crate::auth::Caller;
    use crate::page::PageRequest;
    use crate::store::SledStore;

    fn open() -> (tempfile::TempDir, Arc<dyn Store>, Committer) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("db"), 8 << 20).unwrap());
        let committer = Committer::start(store.clone(), 4096, 1024);
        (dir, store, committer)
    }

    fn context() -> AuditContext {
        AuditContext::new(&Caller::system("test"), "Test/Write", "target")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_flushes_and_all_are_durable_when_answered() {
        let (_dir, store, committer) = open();
        let committer = Arc::new(committer);
        let writers: Vec<_> = (0..400u32)
            .map(|index| {
                let committer = committer.clone();
                tokio::spawn(async move {
                    committer
                        .write(context(), move |txn| {
                            txn.put(format!("k/{index:05}"), index.to_string());
                            Ok(index)
                        })
                        .await
                })
            })
            .collect();
        for (index, writer) in writers.into_iter().enumerate() {
            assert_eq!(writer.await.unwrap().unwrap(), index as u32);
            assert!(store.get(format!("k/{index:05}").as_bytes()).unwrap().is_some());
        }
        let stats = committer.stats();
        let (jobs, flushes) = (stats.jobs.load(Ordering::Relaxed), stats.flushes.load(Ordering::Relaxed));
        assert_eq!(jobs, 400);
        assert!(flushes < jobs, "group commit: {flushes} flushes for {jobs} jobs");
        committer.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_costs_one_request_and_stores_nothing() {
        let (_dir, store, committer) = open();
        let panicked = committer
            .write(context(), |txn| -> Result<(), DomainError> {
                txn.put("half/done", "x");
                panic!("a bug in a use-case");
            })
            .await
            .unwrap_err();
        assert!(matches!(panicked, DomainError::Internal(_)), "{panicked:?}");
        assert!(store.get(b"half/done").unwrap().is_none(), "nothing of the panicking job is stored");
        let after = committer
            .write(context(), |txn| {
                txn.put("after/panic", "y");
                Ok(7)
            })
            .await
            .unwrap();
        assert_eq!(after, 7, "the committer goes on after a panic");
        assert!(store.get(b"after/panic").unwrap().is_some());
        committer.stop().await;
    }

    #[tokio::test]
    async fn a_refused_job_keeps_only_its_audit_entry() {
        let (_dir, store, committer) = open();
        let refused = committer
            .write(context(), |txn| -> Result<(), DomainError> {
                txn.put("should/not/exist", "x");
                txn.next_seq("widget")?;
                Err(DomainError::invalid("field", "is wrong"))
            })
            .await;
        assert!(matches!(refused, Err(DomainError::Invalid(_))));
        assert_eq!(store.get(b"should/not/exist").unwrap(), None);
        assert_eq!(store.get(b"meta/seq/widget").unwrap(), None, "a refused job uses no sequence number");
        let page = PageRequest { size: 10, after: None };
        let entries = audit::list(&*store, &AuditQuery::default(), &page).unwrap().items;
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].outcome, audit::Outcome::Invalid);
        assert_eq!(entries[0].detail, "invalid request: field: is wrong");
        committer.stop().await;
    }

    /// A sled store whose next flush fails once when told to (a full disk, say).
    struct FlakyStore {
        inner: SledStore,
        fail_next_flush: std::sync::atomic::AtomicBool,
    }

    impl Store for FlakyStore {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }
        fn scan(&self, prefix: &[u8], after: Option<&[u8]>, visit: &mut store::Visit<'_>) -> Result<(), StoreError> {
            self.inner.scan(prefix, after, visit)
        }
        fn scan_rev(
            &self,
            prefix: &[u8],
            before: Option<&[u8]>,
            visit: &mut store::Visit<'_>,
        ) -> Result<(), StoreError> {
            self.inner.scan_rev(prefix, before, visit)
        }
        fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
            self.inner.apply(writes)
        }
        fn flush(&self) -> Result<(), StoreError> {
            if self.fail_next_flush.swap(false, Ordering::SeqCst) {
                return Err(StoreError::Unavailable("no space left on device".into()));
            }
            self.inner.flush()
        }
        fn size_on_disk(&self) -> Result<u64, StoreError> {
            self.inner.size_on_disk()
        }
    }

    #[tokio::test]
    async fn a_failed_flush_fails_its_group_refuses_writes_until_a_flush_succeeds_then_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let flaky = Arc::new(FlakyStore {
            inner: SledStore::open(&dir.path().join("db"), 8 << 20).unwrap(),
            fail_next_flush: std::sync::atomic::AtomicBool::new(true),
        });
        let store: Arc<dyn Store> = flaky.clone();
        let committer = Committer::start(store.clone(), 16, 16);
        let write = |key: &'static str| {
            committer.write(context(), move |txn| {
                txn.put(key, "1");
                Ok(())
            })
        };
        assert!(matches!(write("first").await, Err(DomainError::Unavailable(_))), "never acknowledged: not durable");
        assert!(matches!(write("second").await, Err(DomainError::Unavailable(_))), "refused after a failed flush");
        assert_eq!(store.get(b"second").unwrap(), None, "a refused write is not applied");
        write("third").await.expect("the refusal's flush succeeded: writes are taken again");
        assert!(store.get(b"third").unwrap().is_some());
        committer.stop().await;
    }

    /// Keys and values under `prefix`, latest first, as `Txn::scan_rev` visits them.
    fn scan_rev_all(txn: &Txn<'_>, prefix: &str, before: Option<&str>) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        txn.scan_rev(prefix.as_bytes(), before.map(str::as_bytes), &mut |key, value| {
            seen.push((String::from_utf8_lossy(key).into_owned(), String::from_utf8_lossy(value).into_owned()));
            ControlFlow::Continue(())
        })
        .unwrap();
        seen
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_of_one_group_read_and_scan_the_earlier_jobs_writes_before_the_group_is_applied() {
        let (_dir, store, committer) = open();
        let committer = Arc::new(committer);
        committer
            .write(context(), |txn| {
                for (key, value) in [("s/1", "a"), ("s/3", "c"), ("s/5", "e")] {
                    txn.put(key, value);
                }
                Ok(())
            })
            .await
            .unwrap();
        // The first job holds the committer until the two others are queued: the three form one group.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let committer = committer.clone();
            tokio::spawn(async move {
                committer
                    .write(context(), move |txn| {
                        let _ = started.send(());
                        let _ = hold.recv_timeout(std::time::Duration::from_secs(10));
                        txn.put("s/2", "b");
                        txn.put("s/5", "E");
                        txn.delete("s/3");
                        Ok(())
                    })
                    .await
            })
        };
        // The first job runs before the others are queued, so it is the first of the group.
        running.await.unwrap();
        // The second job is queued before the third: one task polls the two writes in order (`join!` polls its
        // first future first), which queues them in that order; two spawned tasks could be queued either way.
        let later = {
            let committer = committer.clone();
            tokio::spawn(async move {
                let second = committer.write(context(), |txn| {
                    let all = scan_rev_all(txn, "s/", None);
                    let below_five = scan_rev_all(txn, "s/", Some("s/5"));
                    let below_two = scan_rev_all(txn, "s/", Some("s/2"));
                    let got = txn.get(b"s/2")?.map(|value| String::from_utf8_lossy(&value).into_owned());
                    txn.put("s/4", "d");
                    Ok((all, below_five, below_two, got))
                });
                let third = committer.write(context(), |txn| {
                    let mut keys = Vec::new();
                    txn.store().scan(b"s/", None, &mut |key, _| {
                        keys.push(String::from_utf8_lossy(key).into_owned());
                        ControlFlow::Continue(())
                    })?;
                    Ok(keys)
                });
                tokio::join!(second, third)
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        let (second, third) = later.await.unwrap();
        let (all, below_five, below_two, got) = second.unwrap();
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
        };
        assert_eq!(all, pairs(&[("s/5", "E"), ("s/2", "b"), ("s/1", "a")]), "overlay wins, deletions hidden");
        assert_eq!(below_five, pairs(&[("s/2", "b"), ("s/1", "a")]));
        assert_eq!(below_two, pairs(&[("s/1", "a")]));
        assert_eq!(got.as_deref(), Some("b"));
        assert_eq!(third.unwrap(), ["s/1", "s/2", "s/4", "s/5"], "the raw store holds the earlier jobs");
        for (key, value) in [("s/1", "a"), ("s/2", "b"), ("s/4", "d"), ("s/5", "E")] {
            assert_eq!(store.get(key.as_bytes()).unwrap().as_deref(), Some(value.as_bytes()), "{key} stored");
        }
        assert_eq!(store.get(b"s/3").unwrap(), None);
        committer.stop().await;
    }

    #[tokio::test]
    async fn a_job_reads_its_own_writes_and_sequences_are_gap_free() {
        let (_dir, _store, committer) = open();
        let (first, second) = committer
            .write(context(), |txn| {
                txn.put("a", "1");
                assert_eq!(txn.get(b"a")?.as_deref(), Some(&b"1"[..]));
                txn.delete("a");
                assert_eq!(txn.get(b"a")?, None);
                Ok((txn.next_seq("n")?, txn.next_seq("n")?))
            })
            .await
            .unwrap();
        assert_eq!((first, second), (1, 2));
        let third = committer.write(context(), |txn| Ok(txn.next_seq("n")?)).await.unwrap();
        assert_eq!(third, 3);
        committer.stop().await;
        let after_stop = committer.write(context(), |_| Ok(())).await;
        assert!(matches!(after_stop, Err(DomainError::Unavailable(_))));
    }
}
