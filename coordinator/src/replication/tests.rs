//! Tests of the replication windows: tables for `Inbox` and `Uplink`, and proptests of REP-1, REP-2 and AUTH-1
//! over a lossy, duplicating, reordering channel.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::region::code;

fn key(origin: &str, seq: u64) -> EntryKey {
    EntryKey { origin: code(origin), seq }
}

fn config(batch_entries_max: u64) -> UplinkConfig {
    UplinkConfig {
        batch_entries_max,
        backlog_entries_max: 10,
        ack_timeout_ms: 1_000,
        retry_backoff_ms_min: 100,
        retry_backoff_ms_max: 800,
    }
}

fn positions(pairs: &[(&str, u64)]) -> BTreeMap<DivisionCode, u64> {
    pairs.iter().map(|(o, s)| (code(o), *s)).collect()
}

// ------------------------------------------------------------------------------------------------------------
// Inbox
// ------------------------------------------------------------------------------------------------------------

/// Receives `entries` from `child` on an inbox restored at `applied`, and compares the receipt.
fn check(
    applied: &[(&str, u64)],
    child: &str,
    entries: &[(&str, u64)],
    expected_apply: &[(&str, u64)],
    expected_acks: &[(&str, u64)],
) {
    let inbox = Inbox::restore(positions(applied));
    let batch: Vec<EntryKey> = entries.iter().map(|(o, s)| key(o, *s)).collect();
    let receipt = inbox.receive(code(child), &batch);
    let apply: Vec<EntryKey> = expected_apply.iter().map(|(o, s)| key(o, *s)).collect();
    assert_eq!(receipt.refused, None, "{entries:?}");
    assert_eq!(receipt.apply, apply, "apply for {entries:?} on {applied:?}");
    assert_eq!(receipt.acks, positions(expected_acks), "acks for {entries:?} on {applied:?}");
    let moved: BTreeMap<DivisionCode, u64> =
        receipt.acks.iter().filter(|(o, s)| **s > inbox.applied_seq(**o)).map(|(o, s)| (*o, *s)).collect();
    assert_eq!(receipt.checkpoints, moved, "checkpoints for {entries:?} on {applied:?}");
}

#[test]
fn inbox_applies_exactly_the_contiguous_entries() {
    let c = "330100";
    let k = "330106";
    // (applied before, batch, applied, acks)
    type Case<'a> = (&'a [(&'a str, u64)], &'a [(&'a str, u64)], &'a [(&'a str, u64)], &'a [(&'a str, u64)]);
    let cases: &[Case] = &[
        (&[], &[], &[], &[]),
        (&[], &[(k, 1), (k, 2), (k, 3)], &[(k, 1), (k, 2), (k, 3)], &[(k, 3)]),
        // Duplicates within the batch and already-applied entries are skipped.
        (&[(k, 2)], &[(k, 1), (k, 2), (k, 3), (k, 3), (k, 4)], &[(k, 3), (k, 4)], &[(k, 4)]),
        // Everything already applied: nothing to apply, the ack repeats the position.
        (&[(k, 5)], &[(k, 4), (k, 5)], &[], &[(k, 5)]),
        // A gap stops the origin; later entries wait for the resend.
        (&[], &[(k, 1), (k, 3), (k, 4)], &[(k, 1)], &[(k, 1)]),
        (&[(k, 1)], &[(k, 3)], &[], &[(k, 1)]),
        // Reordered within the batch: only what continues the position when it is seen.
        (&[], &[(k, 2), (k, 1)], &[(k, 1)], &[(k, 1)]),
        // Several origins are independent; the child's own entries count too.
        (
            &[(c, 1)],
            &[(c, 2), ("330102", 1), (k, 2), (c, 3), ("330102", 2)],
            &[(c, 2), ("330102", 1), (c, 3), ("330102", 2)],
            &[(c, 3), ("330102", 2), (k, 0)],
        ),
    ];
    for (applied, batch, apply, acks) in cases {
        check(applied, c, batch, apply, acks);
    }
}

#[test]
fn inbox_refuses_a_whole_batch_with_an_entry_outside_the_subtree() {
    type Case<'a> = (&'a str, &'a [(&'a str, u64)], Refusal);
    let cases: &[Case] = &[
        (
            "330100",
            &[("330106", 1), ("330206", 1)],
            Refusal::OutsideSubtree { child: code("330100"), origin: code("330206"), seq: 1 },
        ),
        ("330100", &[("330000", 7)], Refusal::OutsideSubtree { child: code("330100"), origin: code("330000"), seq: 7 }),
        (
            "330106",
            &[("330106", 1), ("330105", 1)],
            Refusal::OutsideSubtree { child: code("330106"), origin: code("330105"), seq: 1 },
        ),
        ("429000", &[("429004", 1)], Refusal::OutsideSubtree { child: code("429000"), origin: code("429004"), seq: 1 }),
        ("330100", &[("330106", 1), ("330106", 0)], Refusal::ZeroSeq { origin: code("330106") }),
    ];
    for (child, entries, refusal) in cases {
        let inbox = Inbox::new();
        let batch: Vec<EntryKey> = entries.iter().map(|(o, s)| key(o, *s)).collect();
        let receipt = inbox.receive(code(child), &batch);
        assert_eq!(receipt.refused.as_ref(), Some(refusal), "{child} {entries:?}");
        assert!(receipt.apply.is_empty() && receipt.acks.is_empty() && receipt.checkpoints.is_empty());
    }
    assert_eq!(
        Refusal::OutsideSubtree { child: code("330100"), origin: code("330206"), seq: 1 }.to_string(),
        "entry 330206#1 lies outside the subtree of child 330100 (AUTH-1)"
    );
}

#[test]
fn inbox_changes_only_when_persisted_and_never_backwards() {
    let mut inbox = Inbox::new();
    let first = inbox.receive(code("330106"), &[key("330106", 1), key("330106", 2)]);
    assert_eq!(inbox.applied_seq(code("330106")), 0, "receive alone changes nothing");
    // A crash before the write: the resend is applied again.
    let again = inbox.receive(code("330106"), &[key("330106", 1), key("330106", 2)]);
    assert_eq!(again, first);
    inbox.persisted(&first);
    assert_eq!(inbox.applied_seq(code("330106")), 2);
    let old = Receipt { checkpoints: positions(&[("330106", 1)]), ..Receipt::default() };
    inbox.persisted(&old);
    assert_eq!(inbox.applied_seq(code("330106")), 2);
    let restored = Inbox::restore(inbox.applied().clone());
    assert_eq!(restored.receive(code("330106"), &[key("330106", 2)]).apply, []);
}

// ------------------------------------------------------------------------------------------------------------
// Uplink
// ------------------------------------------------------------------------------------------------------------

fn ranges(batch: &Option<SendBatch>) -> Vec<(String, u64, u64)> {
    batch.iter().flat_map(|b| &b.ranges).map(|r| (r.origin.to_string(), r.from_seq, r.to_seq)).collect()
}

#[test]
fn uplink_batches_up_to_the_limit_over_origins() {
    let mut up = Uplink::new(config(5));
    assert_eq!(up.poll(0), None, "nothing to send");
    up.appended(code("330106"), 3);
    up.appended(code("330100"), 4);
    let batch = up.poll(0);
    assert_eq!(ranges(&batch), [("330100".into(), 1, 4), ("330106".into(), 1, 1)]);
    assert_eq!(batch.as_ref().map(SendBatch::len), Some(5));
    assert_eq!(
        batch.iter().flat_map(SendBatch::entries).collect::<Vec<_>>(),
        [key("330100", 1), key("330100", 2), key("330100", 3), key("330100", 4), key("330106", 1)]
    );
    assert!(up.in_flight());
    assert_eq!(up.poll(999), None, "one batch in flight");
    up.acknowledged(code("330100"), 4);
    assert!(up.in_flight(), "330106 not yet covered");
    up.acknowledged(code("330106"), 1);
    assert!(!up.in_flight());
    assert_eq!(ranges(&up.poll(1_000)), [("330106".into(), 2, 3)]);
}

#[test]
fn uplink_resends_after_the_ack_timeout_from_the_acked_position() {
    let mut up = Uplink::new(config(10));
    up.appended(code("330106"), 6);
    assert_eq!(ranges(&up.poll(0)), [("330106".into(), 1, 6)]);
    up.acknowledged(code("330106"), 2);
    assert_eq!(up.poll(999), None);
    assert_eq!(ranges(&up.poll(1_000)), [("330106".into(), 3, 6)]);
    // A partial answer ends the batch at once.
    up.batch_answered(&[(code("330106"), 4)]);
    assert_eq!(ranges(&up.poll(1_001)), [("330106".into(), 5, 6)]);
}

#[test]
fn uplink_ignores_stale_duplicate_and_excessive_acks() {
    let mut up = Uplink::new(config(10));
    up.appended(code("330106"), 5);
    up.acknowledged(code("330106"), 3);
    up.acknowledged(code("330106"), 3);
    up.acknowledged(code("330106"), 1);
    assert_eq!(up.acked_seq(code("330106")), 3);
    up.acknowledged(code("330106"), 99);
    assert_eq!(up.acked_seq(code("330106")), 5, "clamped to appended");
    up.appended(code("330106"), 4);
    assert_eq!(up.backlog(), BTreeMap::new(), "appended never moves backwards");
    up.acknowledged(code("330102"), 1);
    assert_eq!(up.acked_seq(code("330102")), 0, "nothing appended, nothing to ack");
}

#[test]
fn uplink_backs_off_exponentially_up_to_the_cap() {
    let mut up = Uplink::new(config(10));
    up.appended(code("330106"), 1);
    // (time of loss, expected wait)
    // (time of loss, expected wait): no progress in between, so each loss doubles the wait up to the cap.
    let cases = [(0, 100), (100, 200), (300, 400), (700, 800), (1_500, 800)];
    for (lost_at, wait) in cases {
        up.connection_lost(lost_at);
        assert!(!up.in_flight());
        assert_eq!(up.poll(lost_at + wait - 1), None, "still backing off at {lost_at} + {wait} - 1");
        assert!(up.poll(lost_at + wait).is_some(), "back-off of {wait} over");
    }
    // Progress resets the back-off.
    up.acknowledged(code("330106"), 1);
    up.appended(code("330106"), 2);
    up.connection_lost(10_000);
    assert!(up.poll(10_100).is_some(), "back to the minimum after progress");
}

#[test]
fn uplink_backlog_and_alarm_never_drop() {
    let mut up = Uplink::new(config(3));
    up.appended(code("330106"), 6);
    up.appended(code("330102"), 3);
    assert_eq!(up.backlog(), positions(&[("330102", 3), ("330106", 6)]));
    assert!(!up.alarm());
    up.appended(code("330100"), 1);
    assert_eq!(up.backlog_total(), 10);
    assert!(up.alarm(), "reached backlog_entries_max");
    up.appended(code("330100"), 5);
    assert_eq!(up.backlog_total(), 14, "nothing dropped");
    up.acknowledged(code("330106"), 6);
    assert!(!up.alarm());
}

#[test]
fn uplink_restores_from_checkpoints() {
    let mut up = Uplink::restore(config(10), positions(&[("330106", 4), ("330102", 9)]), positions(&[("330106", 7)]));
    assert_eq!(up.backlog(), positions(&[("330106", 3)]));
    assert_eq!(ranges(&up.poll(0)), [("330106".into(), 5, 7)]);
}

// ------------------------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------------------------

/// A seeded pseudo-random sequence (PCG-style LCG), so the channel's chaos comes from proptest's inputs.
struct Chaos(u64);

impl Chaos {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The parent's durable store in the simulation: applied entries per origin, and the checkpoints.
#[derive(Default)]
struct Store {
    log: BTreeMap<DivisionCode, Vec<u64>>,
    checkpoints: BTreeMap<DivisionCode, u64>,
}

impl Store {
    /// Writes a receipt durably, as the node does, checking that each entry is applied once and in order.
    fn write(&mut self, receipt: &Receipt) {
        for e in &receipt.apply {
            let log = self.log.entry(e.origin).or_default();
            assert_eq!(e.seq, log.len() as u64 + 1, "applied out of order or twice: {e:?}");
            log.push(e.seq);
        }
        for (o, s) in &receipt.checkpoints {
            assert_eq!(*s, self.log.get(o).map_or(0, |l| l.len() as u64), "checkpoint matches the log");
            self.checkpoints.insert(*o, *s);
        }
    }

    /// REP-1: an ack never names an entry that is not durably applied.
    fn check_acks(&self, acks: &BTreeMap<DivisionCode, u64>) {
        for (o, s) in acks {
            assert!(*s <= self.checkpoints.get(o).copied().unwrap_or(0), "acked {o}#{s} before it was durable");
        }
    }
}

const CHILD: &str = "330100";
const ORIGINS: [&str; 3] = ["330100", "330102", "330106"];

fn simulate(counts: [u64; 3], seed: u64, chaos_steps: usize, batch_entries_max: u64) {
    let child = code(CHILD);
    let origins: Vec<DivisionCode> = ORIGINS.iter().map(|o| code(o)).collect();
    let cfg = config(batch_entries_max);
    let mut chaos = Chaos(seed);
    let mut uplink = Uplink::new(cfg);
    let mut appended = [0u64; 3];
    let mut inbox = Inbox::new();
    let mut store = Store::default();
    let mut down: Vec<Vec<EntryKey>> = Vec::new();
    let mut up: Vec<BTreeMap<DivisionCode, u64>> = Vec::new();
    let mut now = 0u64;

    for _ in 0..chaos_steps {
        now += chaos.below(400);
        match chaos.below(9) {
            0 | 1 => {
                let i = chaos.below(3) as usize;
                if appended[i] < counts[i] {
                    appended[i] += 1;
                    uplink.appended(origins[i], appended[i]);
                }
            }
            2 | 3 => {
                if let Some(batch) = uplink.poll(now) {
                    let mut entries: Vec<EntryKey> = batch.entries().collect();
                    // A streamed batch may lose single entries or deliver them out of order, leaving gaps.
                    if chaos.chance(20) {
                        entries.retain(|_| !chaos.chance(30));
                    }
                    if chaos.chance(20) && entries.len() > 1 {
                        let i = chaos.below(entries.len() as u64) as usize;
                        let j = chaos.below(entries.len() as u64) as usize;
                        entries.swap(i, j);
                    }
                    if !chaos.chance(30) {
                        down.push(entries.clone());
                    }
                    if chaos.chance(20) {
                        down.push(entries);
                    }
                }
            }
            4 | 5 if !down.is_empty() => {
                let batch = down.remove(chaos.below(down.len() as u64) as usize);
                let receipt = inbox.receive(child, &batch);
                assert_eq!(receipt.refused, None);
                if chaos.chance(10) {
                    continue; // the parent crashed before its write: nothing persisted, nothing acked
                }
                store.write(&receipt);
                inbox.persisted(&receipt);
                store.check_acks(&receipt.acks);
                if !chaos.chance(30) {
                    up.push(receipt.acks.clone());
                }
                if chaos.chance(20) {
                    up.push(receipt.acks);
                }
            }
            6 if !up.is_empty() => {
                let acks = up.remove(chaos.below(up.len() as u64) as usize);
                if chaos.chance(50) {
                    let acks: Vec<(DivisionCode, u64)> = acks.into_iter().collect();
                    uplink.batch_answered(&acks);
                } else {
                    for (o, s) in acks {
                        uplink.acknowledged(o, s);
                    }
                }
            }
            7 => {
                uplink.connection_lost(now);
                if chaos.chance(50) {
                    down.clear();
                    up.clear();
                }
            }
            8 => {
                if chaos.chance(50) {
                    inbox = Inbox::restore(store.checkpoints.clone());
                } else {
                    let outbox: BTreeMap<DivisionCode, u64> =
                        origins.iter().zip(appended).filter(|(_, n)| *n > 0).map(|(o, n)| (*o, n)).collect();
                    uplink = Uplink::restore(cfg, uplink.acked().clone(), outbox);
                }
            }
            _ => {}
        }
    }

    // The channel heals: everything left is appended, stale messages still arrive first, then a clean loop.
    for (i, origin) in origins.iter().enumerate() {
        appended[i] = counts[i];
        uplink.appended(*origin, counts[i]);
    }
    for batch in down.drain(..) {
        let receipt = inbox.receive(child, &batch);
        store.write(&receipt);
        inbox.persisted(&receipt);
        store.check_acks(&receipt.acks);
    }
    let total: u64 = counts.iter().sum();
    let mut rounds = 0;
    loop {
        now += cfg.ack_timeout_ms.max(cfg.retry_backoff_ms_max);
        let Some(batch) = uplink.poll(now) else { break };
        let entries: Vec<EntryKey> = batch.entries().collect();
        let receipt = inbox.receive(child, &entries);
        store.write(&receipt);
        inbox.persisted(&receipt);
        store.check_acks(&receipt.acks);
        let acks: Vec<(DivisionCode, u64)> = receipt.acks.into_iter().collect();
        uplink.batch_answered(&acks);
        rounds += 1;
        assert!(rounds <= total + 1, "no progress after healing");
    }

    assert_eq!(uplink.backlog_total(), 0);
    for (i, origin) in origins.iter().enumerate() {
        let expected: Vec<u64> = (1..=counts[i]).collect();
        assert_eq!(store.log.get(origin).cloned().unwrap_or_default(), expected, "{origin}");
        assert_eq!(inbox.applied_seq(*origin), counts[i]);
        assert_eq!(uplink.acked_seq(*origin), counts[i]);
    }
}

#[test]
fn simulation_without_chaos_delivers_everything() {
    simulate([5, 0, 7], 1, 0, 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// REP-2: over a lossy, duplicating, reordering channel with restarts on both sides, every entry is applied
    /// exactly once, in order per origin, once the channel heals. REP-1: no ack names a non-durable entry.
    #[test]
    fn replication_delivers_exactly_once_in_order(
        counts in prop::array::uniform3(0u64..25),
        seed in any::<u64>(),
        chaos_steps in 0usize..400,
        batch_entries_max in 1u64..8,
    ) {
        simulate(counts, seed, chaos_steps, batch_entries_max);
    }

    /// AUTH-1: a batch carrying any entry whose origin is outside the sending child's subtree (a sibling, a
    /// sibling's descendant, the parent, another province) is refused whole.
    #[test]
    fn entries_outside_the_child_subtree_are_always_refused(
        own in prop::collection::vec((0usize..3, 1u64..20), 0..10),
        foreign_origin in prop::sample::select(vec!["330200", "330206", "330000", "320100", "330105", "429004"]),
        foreign_seq in 1u64..20,
        at in any::<prop::sample::Index>(),
        applied in 0u64..5,
    ) {
        let child = if foreign_origin == "330105" { code("330106") } else { code(CHILD) };
        let mut batch: Vec<EntryKey> = own
            .iter()
            .map(|(i, seq)| EntryKey { origin: if child == code("330106") { child } else { code(ORIGINS[*i]) }, seq: *seq })
            .collect();
        let foreign = key(foreign_origin, foreign_seq);
        batch.insert(at.index(batch.len() + 1), foreign);
        let mut checkpoints: BTreeMap<DivisionCode, u64> = ORIGINS.iter().map(|o| (code(o), applied)).collect();
        checkpoints.insert(foreign.origin, applied);
        let inbox = Inbox::restore(checkpoints.clone());
        let receipt = inbox.receive(child, &batch);
        prop_assert_eq!(receipt.refused, Some(Refusal::OutsideSubtree { child, origin: foreign.origin, seq: foreign_seq }));
        prop_assert!(receipt.apply.is_empty());
        prop_assert!(receipt.acks.is_empty());
        prop_assert!(receipt.checkpoints.is_empty());
        prop_assert_eq!(inbox.applied(), &checkpoints);
    }
}
