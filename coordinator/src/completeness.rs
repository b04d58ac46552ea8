//! Completeness and freshness of the children's data: last contact, acknowledged positions, the backlog each
//! child reports, and a `stale` flag after a configured silence, so a `stats` answer says "as of" per child and
//! shows a silent child as stale rather than silently missing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::region::DivisionCode;

/// What is known about one child.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ChildRecord {
    last_contact_ms: Option<u64>,
    acked: BTreeMap<DivisionCode, u64>,
    reported_backlog: u64,
    warned_stale: bool,
}

/// A snapshot of one child for a `stats` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildStatus {
    /// The child's division code.
    pub child: DivisionCode,
    /// "As of": the last contact with the child, unix milliseconds; `None` if never heard from.
    pub last_contact_ms: Option<u64>,
    /// The positions acknowledged to the child, per origin of its subtree.
    pub acked: BTreeMap<DivisionCode, u64>,
    /// The backlog (unacknowledged entries) the child last reported.
    pub reported_backlog: u64,
    /// True when silent for `stale_after_ms` or more, or never heard from.
    pub stale: bool,
}

/// Per-child completeness tracking on a parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completeness {
    stale_after_ms: u64,
    children: BTreeMap<DivisionCode, ChildRecord>,
}

impl Completeness {
    /// Tracks `children` (the configured ones, so a child never heard from shows as stale), declaring a child
    /// stale after `stale_after_ms` of silence.
    pub fn new(stale_after_ms: u64, children: impl IntoIterator<Item = DivisionCode>) -> Completeness {
        Completeness { stale_after_ms, children: children.into_iter().map(|c| (c, ChildRecord::default())).collect() }
    }

    /// Any message from `child` at `now_ms` (a batch, a heartbeat). Contact times never move backwards.
    pub fn contact(&mut self, child: DivisionCode, now_ms: u64) {
        let record = self.children.entry(child).or_default();
        record.last_contact_ms = Some(record.last_contact_ms.map_or(now_ms, |t| t.max(now_ms)));
        record.warned_stale = false;
    }

    /// `child` reported its backlog at `now_ms` (counts as contact).
    pub fn reported_backlog(&mut self, child: DivisionCode, backlog: u64, now_ms: u64) {
        self.contact(child, now_ms);
        if let Some(record) = self.children.get_mut(&child) {
            record.reported_backlog = backlog;
        }
    }

    /// The parent acknowledged `origin` up to `seq` to `child`; positions never move backwards.
    pub fn acked(&mut self, child: DivisionCode, origin: DivisionCode, seq: u64) {
        let position = self.children.entry(child).or_default().acked.entry(origin).or_insert(0);
        *position = (*position).max(seq);
    }

    /// True if `child` has been silent for `stale_after_ms` or more at `now_ms`, or was never heard from.
    pub fn stale(&self, child: DivisionCode, now_ms: u64) -> bool {
        self.children.get(&child).is_none_or(|r| self.record_stale(r, now_ms))
    }

    fn record_stale(&self, record: &ChildRecord, now_ms: u64) -> bool {
        record.last_contact_ms.is_none_or(|t| now_ms.saturating_sub(t) >= self.stale_after_ms)
    }

    /// Children that have turned stale since the last call (each reported once per silence), for the warning
    /// log and metric.
    pub fn newly_stale(&mut self, now_ms: u64) -> Vec<DivisionCode> {
        let stale_after_ms = self.stale_after_ms;
        let mut out = Vec::new();
        for (child, record) in &mut self.children {
            let stale = record.last_contact_ms.is_none_or(|t| now_ms.saturating_sub(t) >= stale_after_ms);
            if stale && !record.warned_stale {
                record.warned_stale = true;
                out.push(*child);
            }
        }
        out
    }

    /// A snapshot of every tracked child at `now_ms`, ordered by code.
    pub fn status(&self, now_ms: u64) -> Vec<ChildStatus> {
        self.children
            .iter()
            .map(|(child, r)| ChildStatus {
                child: *child,
                last_contact_ms: r.last_contact_ms,
                acked: r.acked.clone(),
                reported_backlog: r.reported_backlog,
                stale: self.record_stale(r, now_ms),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::code;

    /// Feeds `contacts` (child, time) and compares `stale` of `child` at each (time, expected).
    fn check(contacts: &[(&str, u64)], child: &str, expected: &[(u64, bool)]) {
        let mut completeness = Completeness::new(1_000, [code("330100"), code("330200")]);
        for (c, t) in contacts {
            completeness.contact(code(c), *t);
        }
        for (now, stale) in expected {
            assert_eq!(completeness.stale(code(child), *now), *stale, "{child} at {now} after {contacts:?}");
        }
    }

    #[test]
    fn stale_after_silence() {
        // (contacts, child, [(now, stale)])
        type Case<'a> = (&'a [(&'a str, u64)], &'a str, &'a [(u64, bool)]);
        let cases: &[Case] = &[
            (&[], "330100", &[(0, true), (5_000, true)]),
            (&[("330100", 100)], "330100", &[(100, false), (1_099, false), (1_100, true)]),
            (&[("330100", 100), ("330100", 900)], "330100", &[(1_100, false), (1_900, true)]),
            (&[("330100", 900), ("330100", 100)], "330100", &[(1_100, false)]),
            (&[("330100", 100)], "330200", &[(100, true)]),
            (&[], "330300", &[(0, true)]),
        ];
        for (contacts, child, expected) in cases {
            check(contacts, child, expected);
        }
    }

    #[test]
    fn status_snapshot_and_stale_warning_once() {
        let mut completeness = Completeness::new(1_000, [code("330100"), code("330200")]);
        completeness.reported_backlog(code("330100"), 42, 500);
        completeness.acked(code("330100"), code("330106"), 7);
        completeness.acked(code("330100"), code("330106"), 3);
        let status = completeness.status(1_000);
        assert_eq!(
            status,
            [
                ChildStatus {
                    child: code("330100"),
                    last_contact_ms: Some(500),
                    acked: [(code("330106"), 7)].into_iter().collect(),
                    reported_backlog: 42,
                    stale: false,
                },
                ChildStatus {
                    child: code("330200"),
                    last_contact_ms: None,
                    acked: BTreeMap::new(),
                    reported_backlog: 0,
                    stale: true,
                },
            ]
        );
        assert_eq!(completeness.newly_stale(1_000), [code("330200")]);
        assert_eq!(completeness.newly_stale(1_499), []);
        assert_eq!(completeness.newly_stale(1_500), [code("330100")]);
        assert_eq!(completeness.newly_stale(9_000), []);
        completeness.contact(code("330100"), 9_000);
        assert_eq!(completeness.newly_stale(10_000), [code("330100")], "warned again after a new silence");
    }
}
