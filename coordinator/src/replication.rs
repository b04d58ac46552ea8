//! Upward replication windows (REP-1, REP-2) and the subtree rule for incoming entries (AUTH-1).
//!
//! Every change that matters above a node is an outbox entry keyed by [`EntryKey`] `(origin, seq)`; `seq`
//! starts at 1 and has no gaps per origin. A node forwards its own entries and everything its children sent it.
//!
//! - [`Uplink`] (child side) decides what to send: one batch in flight at a time, resent after
//!   `ack_timeout_ms`, capped exponential back-off after a lost connection, a backlog cap that raises an alarm
//!   and never drops anything.
//! - [`Inbox`] (parent side) decides what to apply: exactly the next contiguous entries per origin, each once;
//!   a batch carrying any entry from outside the sending child's subtree is refused whole (AUTH-1).
//!
//! Neither side stores anything: they return what the node must persist ([`Receipt::checkpoints`]) and the
//! node reports back when it has ([`Inbox::persisted`]).
//!
//! Test-only fault switches ([`InboxFault`], [`UplinkFault`]) turn known protocol bugs on at run time, so the
//! deterministic simulation (`tests/src/sim`) can show it catches them. They are off unless a test sets one;
//! production never does, and the correct paths do not look at them beyond one `Option` test per call.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::region::DivisionCode;

/// The key of one outbox entry: the node that made the change and its position in that node's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryKey {
    /// The node where the change happened.
    pub origin: DivisionCode,
    /// 1-based, gap-free position in the origin's log.
    pub seq: u64,
}

/// The named limits of an [`Uplink`] (STYLE.md "Configuration").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UplinkConfig {
    /// Most entries in one [`SendBatch`], over all origins. At least 1.
    pub batch_entries_max: u64,
    /// Unacknowledged entries (over all origins) at which [`Uplink::alarm`] turns on. Nothing is dropped.
    pub backlog_entries_max: u64,
    /// How long to wait for the acknowledgement of an in-flight batch before sending again.
    pub ack_timeout_ms: u64,
    /// First wait after a lost connection.
    pub retry_backoff_ms_min: u64,
    /// Longest wait after repeated lost connections; the wait doubles up to this.
    pub retry_backoff_ms_max: u64,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            batch_entries_max: 500,
            backlog_entries_max: 1_000_000,
            ack_timeout_ms: 10_000,
            retry_backoff_ms_min: 500,
            retry_backoff_ms_max: 60_000,
        }
    }
}

/// A run of consecutive entries of one origin, `from_seq..=to_seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    /// The origin of every entry in the run.
    pub origin: DivisionCode,
    /// First sequence number, inclusive.
    pub from_seq: u64,
    /// Last sequence number, inclusive; `>= from_seq`.
    pub to_seq: u64,
}

impl SeqRange {
    /// Number of entries in the run.
    pub fn len(&self) -> u64 {
        self.to_seq - self.from_seq + 1
    }

    /// Always false: a range holds at least one entry.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What [`Uplink::poll`] asks the node to send now: read these entries from the outbox and stream them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendBatch {
    /// One range per origin, origins in ascending order; at most `batch_entries_max` entries in total.
    pub ranges: Vec<SeqRange>,
}

impl SendBatch {
    /// The keys of the batch, in sending order.
    pub fn entries(&self) -> impl Iterator<Item = EntryKey> + '_ {
        self.ranges.iter().flat_map(|r| (r.from_seq..=r.to_seq).map(move |seq| EntryKey { origin: r.origin, seq }))
    }

    /// Number of entries in the batch.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(SeqRange::len).sum()
    }

    /// True if the batch holds no entry (never returned by [`Uplink::poll`]).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// The batch waiting for its acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    batch: SendBatch,
    sent_at_ms: u64,
}

/// Back-off after a lost connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backoff {
    /// The wait chosen at the last loss; doubles on the next loss up to `retry_backoff_ms_max`.
    wait_ms: u64,
    /// No sending before this time.
    until_ms: u64,
}

/// The child side of upward replication: which outbox entries to send next.
///
/// The node calls [`appended`](Uplink::appended) when an outbox entry is committed (its own, or one forwarded
/// from a child), [`acknowledged`](Uplink::acknowledged) when the parent acks, and [`poll`](Uplink::poll) on
/// every tick. The node persists the acknowledged positions (and may then delete the acknowledged outbox
/// entries); on restart it rebuilds the uplink with [`restore`](Uplink::restore). Acknowledged positions never
/// move backwards, so a stale or duplicated ack is harmless.
#[derive(Debug, Clone)]
pub struct Uplink {
    config: UplinkConfig,
    appended: BTreeMap<DivisionCode, u64>,
    acked: BTreeMap<DivisionCode, u64>,
    in_flight: Option<InFlight>,
    backoff: Option<Backoff>,
    /// Test-only mutation; `None` in production.
    fault: Option<UplinkFault>,
    /// Under [`UplinkFault::ForgetsResend`] only: the highest seq sent per origin, never rewound.
    sent: BTreeMap<DivisionCode, u64>,
}

/// A known bug an [`Uplink`] can be told to have, for mutation tests of the simulation. Test-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UplinkFault {
    /// Sends from a "sent up to" cursor that a lost connection or an ack timeout does not rewind, so the
    /// entries of a lost batch are never sent again (breaks REP-2).
    ForgetsResend,
}

impl Uplink {
    /// A fresh uplink with an empty outbox.
    pub fn new(config: UplinkConfig) -> Uplink {
        Uplink::restore(config, BTreeMap::new(), BTreeMap::new())
    }

    /// Rebuilds an uplink from persisted positions: the parent's acknowledged seq per origin, and the highest
    /// appended seq per origin in the outbox. Nothing is in flight after a restart. An acked position above
    /// the appended one (the outbox already trimmed) counts as appended.
    pub fn restore(
        config: UplinkConfig,
        acked: BTreeMap<DivisionCode, u64>,
        appended: BTreeMap<DivisionCode, u64>,
    ) -> Uplink {
        let mut appended = appended;
        for (origin, seq) in &acked {
            let a = appended.entry(*origin).or_insert(0);
            *a = (*a).max(*seq);
        }
        Uplink { config, appended, acked, in_flight: None, backoff: None, fault: None, sent: BTreeMap::new() }
    }

    /// Test-only: gives this uplink a known bug (see [`UplinkFault`]); `None` removes it. Never called in
    /// production.
    pub fn set_fault(&mut self, fault: Option<UplinkFault>) {
        self.fault = fault;
        self.sent.clear();
    }

    /// The limits this uplink runs with.
    pub fn config(&self) -> &UplinkConfig {
        &self.config
    }

    /// The outbox now holds entries of `origin` up to `seq`. Lower or equal values are ignored.
    pub fn appended(&mut self, origin: DivisionCode, seq: u64) {
        let a = self.appended.entry(origin).or_insert(0);
        *a = (*a).max(seq);
    }

    /// The parent has durably applied `origin`'s entries up to `acked_seq`. Stale or duplicate acks (not
    /// above the current position) are ignored; an ack beyond what was appended is clamped to it. When every
    /// range of the in-flight batch is covered, the batch is done; any progress ends a back-off.
    pub fn acknowledged(&mut self, origin: DivisionCode, acked_seq: u64) {
        let appended = self.appended.get(&origin).copied().unwrap_or(0);
        let acked_seq = acked_seq.min(appended);
        let current = self.acked.entry(origin).or_insert(0);
        if acked_seq <= *current {
            return;
        }
        *current = acked_seq;
        self.backoff = None;
        if let Some(in_flight) = &self.in_flight
            && in_flight.batch.ranges.iter().all(|r| self.acked_seq(r.origin) >= r.to_seq)
        {
            self.in_flight = None;
        }
    }

    /// The parent answered the in-flight batch with `acks` (one per origin of the batch): applies them and
    /// ends the in-flight batch even if the parent applied only part of it, so the next [`poll`](Uplink::poll)
    /// sends from the new positions at once.
    pub fn batch_answered(&mut self, acks: &[(DivisionCode, u64)]) {
        for (origin, seq) in acks {
            self.acknowledged(*origin, *seq);
        }
        self.in_flight = None;
        self.backoff = None;
    }

    /// The connection to the parent is gone: the in-flight batch is forgotten (it will be resent) and sending
    /// waits `retry_backoff_ms_min`, doubling on each further loss up to `retry_backoff_ms_max`.
    pub fn connection_lost(&mut self, now_ms: u64) {
        self.in_flight = None;
        let min = self.config.retry_backoff_ms_min;
        let max = self.config.retry_backoff_ms_max.max(min);
        let wait_ms = match self.backoff {
            None => min,
            Some(b) => b.wait_ms.saturating_mul(2).clamp(min, max),
        };
        self.backoff = Some(Backoff { wait_ms, until_ms: now_ms.saturating_add(wait_ms) });
    }

    /// The next batch to send, if any: `None` during a back-off, while a batch is in flight and younger than
    /// `ack_timeout_ms`, or when nothing is unacknowledged. A timed-out batch is sent again from the current
    /// acknowledged positions.
    pub fn poll(&mut self, now_ms: u64) -> Option<SendBatch> {
        if let Some(b) = self.backoff
            && now_ms < b.until_ms
        {
            return None;
        }
        if let Some(in_flight) = &self.in_flight
            && now_ms < in_flight.sent_at_ms.saturating_add(self.config.ack_timeout_ms)
        {
            return None;
        }
        let mut budget = self.config.batch_entries_max.max(1);
        let mut ranges = Vec::new();
        for (origin, appended) in &self.appended {
            if budget == 0 {
                break;
            }
            let mut from_seq = self.acked.get(origin).copied().unwrap_or(0) + 1;
            if self.fault == Some(UplinkFault::ForgetsResend) {
                from_seq = from_seq.max(self.sent.get(origin).copied().unwrap_or(0) + 1);
            }
            if from_seq > *appended {
                continue;
            }
            let to_seq = (*appended).min(from_seq + budget - 1);
            budget -= to_seq - from_seq + 1;
            ranges.push(SeqRange { origin: *origin, from_seq, to_seq });
        }
        if self.fault == Some(UplinkFault::ForgetsResend) {
            for range in &ranges {
                self.sent.insert(range.origin, range.to_seq);
            }
        }
        if ranges.is_empty() {
            self.in_flight = None;
            return None;
        }
        let batch = SendBatch { ranges };
        self.in_flight = Some(InFlight { batch: batch.clone(), sent_at_ms: now_ms });
        Some(batch)
    }

    /// The acknowledged position of `origin` (0 if none).
    pub fn acked_seq(&self, origin: DivisionCode) -> u64 {
        self.acked.get(&origin).copied().unwrap_or(0)
    }

    /// Acknowledged position per origin, for persisting.
    pub fn acked(&self) -> &BTreeMap<DivisionCode, u64> {
        &self.acked
    }

    /// Unacknowledged entries per origin (appended − acked); origins with none are left out.
    pub fn backlog(&self) -> BTreeMap<DivisionCode, u64> {
        self.appended
            .iter()
            .map(|(origin, appended)| (*origin, appended - self.acked_seq(*origin).min(*appended)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Unacknowledged entries over all origins.
    pub fn backlog_total(&self) -> u64 {
        self.backlog().values().sum()
    }

    /// True when the backlog has reached `backlog_entries_max`: the node raises an alarm (metric + log) and
    /// keeps every entry.
    pub fn alarm(&self) -> bool {
        self.backlog_total() >= self.config.backlog_entries_max
    }

    /// True while a batch waits for its acknowledgement.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }
}

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Refusal {
    /// AUTH-1: a child may only send entries that originate in its own subtree.
    #[error("entry {origin}#{seq} lies outside the subtree of child {child} (AUTH-1)")]
    OutsideSubtree {
        /// The sending child.
        child: DivisionCode,
        /// The offending entry's origin.
        origin: DivisionCode,
        /// The offending entry's seq.
        seq: u64,
    },
    /// Sequence numbers start at 1.
    #[error("entry {origin}#0: sequence numbers start at 1")]
    ZeroSeq {
        /// The offending entry's origin.
        origin: DivisionCode,
    },
}

/// The parent's decision on one batch from a child.
///
/// REP-1: the node writes [`apply`](Receipt::apply)'s entries and [`checkpoints`](Receipt::checkpoints) in the
/// same store batch, flushes it, calls [`Inbox::persisted`], and only then sends [`acks`](Receipt::acks) to the
/// child. If the write fails, the node sends nothing and the inbox is unchanged, so the child's resend is
/// applied then.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Receipt {
    /// Entries to apply, in order: per origin exactly the ones continuing the applied position without a gap.
    pub apply: Vec<EntryKey>,
    /// The applied position per origin of the batch after applying, to persist with the entries.
    pub checkpoints: BTreeMap<DivisionCode, u64>,
    /// Acknowledgement per origin of the batch: the highest contiguous applied seq. Empty when refused.
    pub acks: BTreeMap<DivisionCode, u64>,
    /// Set when the whole batch is refused; then nothing is applied or acknowledged.
    pub refused: Option<Refusal>,
}

/// The parent side of upward replication: which received entries to apply, per origin, exactly once.
///
/// Origins are unique in the federation and children's subtrees are disjoint, so one map of applied positions
/// serves all children; the node handles one batch per child at a time.
#[derive(Debug, Clone, Default)]
pub struct Inbox {
    applied: BTreeMap<DivisionCode, u64>,
    /// Test-only mutation; `None` in production.
    fault: Option<InboxFault>,
    /// Under [`InboxFault::AcksBeforePersist`] only: positions taken at receipt, before the node persisted.
    early: std::cell::RefCell<BTreeMap<DivisionCode, u64>>,
}

/// A known bug an [`Inbox`] can be told to have, for mutation tests of the simulation. Test-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxFault {
    /// Takes the new positions when it decides, not when the node reports them persisted: if the node's write
    /// then fails, the resent entries count as duplicates and are acknowledged unstored (breaks REP-1).
    AcksBeforePersist,
    /// Does not skip entries it has already applied: a resent entry is applied a second time (double count).
    ReappliesDuplicates,
}

impl Inbox {
    /// An inbox that has applied nothing.
    pub fn new() -> Inbox {
        Inbox::default()
    }

    /// Rebuilds an inbox from the persisted applied position per origin.
    pub fn restore(applied: BTreeMap<DivisionCode, u64>) -> Inbox {
        Inbox { applied, fault: None, early: Default::default() }
    }

    /// Test-only: gives this inbox a known bug (see [`InboxFault`]); `None` removes it. Never called in
    /// production.
    pub fn set_fault(&mut self, fault: Option<InboxFault>) {
        self.fault = fault;
    }

    /// Decides on a batch from `child` without changing the inbox (see [`Receipt`] for what the node does
    /// next). AUTH-1: if any entry's origin is outside `child`'s subtree, or has seq 0, the batch is refused
    /// whole. Otherwise, in the batch's order, an entry is applied when its seq is the origin's position + 1;
    /// duplicates and already-applied entries are skipped; entries after a gap wait for the resend.
    pub fn receive(&self, child: DivisionCode, entries: &[EntryKey]) -> Receipt {
        for e in entries {
            if !child.contains(e.origin) {
                return Receipt {
                    refused: Some(Refusal::OutsideSubtree { child, origin: e.origin, seq: e.seq }),
                    ..Receipt::default()
                };
            }
            if e.seq == 0 {
                return Receipt { refused: Some(Refusal::ZeroSeq { origin: e.origin }), ..Receipt::default() };
            }
        }
        if let Some(fault) = self.fault {
            return self.receive_with_fault(fault, entries);
        }
        let mut receipt = Receipt::default();
        let mut position: BTreeMap<DivisionCode, u64> = BTreeMap::new();
        for e in entries {
            let p = position.entry(e.origin).or_insert_with(|| self.applied_seq(e.origin));
            if e.seq == *p + 1 {
                *p = e.seq;
                receipt.apply.push(*e);
                receipt.checkpoints.insert(e.origin, e.seq);
            }
        }
        receipt.acks = position;
        receipt
    }

    /// [`receive`](Inbox::receive) with a known bug, after the AUTH-1 checks passed.
    fn receive_with_fault(&self, fault: InboxFault, entries: &[EntryKey]) -> Receipt {
        let mut receipt = Receipt::default();
        let mut position: BTreeMap<DivisionCode, u64> = BTreeMap::new();
        let mut early = self.early.borrow_mut();
        for e in entries {
            let p = position.entry(e.origin).or_insert_with(|| {
                let taken = early.get(&e.origin).copied().unwrap_or(0);
                self.applied_seq(e.origin).max(taken)
            });
            let again = fault == InboxFault::ReappliesDuplicates && e.seq <= *p;
            if e.seq == *p + 1 || again {
                *p = (*p).max(e.seq);
                receipt.apply.push(*e);
                receipt.checkpoints.insert(e.origin, *p);
            }
        }
        if fault == InboxFault::AcksBeforePersist {
            early.extend(receipt.checkpoints.iter().map(|(origin, seq)| (*origin, *seq)));
        }
        receipt.acks = position;
        receipt
    }

    /// The node has durably written the receipt's entries and checkpoints: advance the applied positions.
    /// Positions never move backwards, so persisting an older receipt again changes nothing.
    pub fn persisted(&mut self, receipt: &Receipt) {
        for (origin, seq) in &receipt.checkpoints {
            let p = self.applied.entry(*origin).or_insert(0);
            *p = (*p).max(*seq);
        }
    }

    /// The applied position of `origin` (0 if none).
    pub fn applied_seq(&self, origin: DivisionCode) -> u64 {
        self.applied.get(&origin).copied().unwrap_or(0)
    }

    /// Applied position per origin.
    pub fn applied(&self) -> &BTreeMap<DivisionCode, u64> {
        &self.applied
    }
}

#[cfg(test)]
mod tests;
