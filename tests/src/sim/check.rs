//! The oracle: what really happened (every office write, every acknowledgement, every plan), kept apart from the
//! nodes, and the invariants checked against it — safety after every step, liveness once the faults stop.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use ecovol_coordinator::region::DivisionCode;
use ecovol_coordinator::replication::EntryKey;
use ecovol_coordinator::rollup::{Cell, Contribution, Figures};

use super::network::{Entry, Payload};
use super::node::{Machine, Observation, SimNode};
use super::{Invariant, Stats, Violation};

/// What is known about a plan.
#[derive(Debug, Clone, Copy)]
struct PlanTruth {
    issuer: usize,
    issued: bool,
    closed: bool,
}

/// The truth of a run.
#[derive(Debug)]
pub struct Oracle {
    codes: Vec<DivisionCode>,
    parents: Vec<Option<usize>>,
    index_of: BTreeMap<DivisionCode, usize>,
    /// Per origin: every entry it wrote, in seq order (seq = index + 1).
    log: Vec<Vec<Rc<Payload>>>,
    /// Per origin: `prefix_minutes[k]` = minutes of its first `k` entries.
    prefix_minutes: Vec<Vec<i64>>,
    /// Per (origin, cell): the origin's own figures, from the office writes alone.
    figures: BTreeMap<(usize, Cell), Figures>,
    cells: BTreeSet<Cell>,
    /// Per node: the highest seq it acknowledged, per origin.
    acked_by: Vec<BTreeMap<DivisionCode, u64>>,
    plans: BTreeMap<u32, PlanTruth>,
    /// Times a plan was queued for a child.
    enqueued: BTreeMap<(u32, usize), u32>,
    /// Copies saved per (plan, node).
    copies: BTreeMap<(u32, usize), u32>,
    /// Every adoption and task report written: (plan, origin, seq).
    reports_made: Vec<(u32, usize, u64)>,
    /// Times each report was applied at the plan's issuer.
    reports_at_issuer: BTreeMap<(u32, usize, u64), u32>,
    /// RPC ids of forged batches.
    forged: BTreeSet<u64>,
}

/// An entry no origin wrote: huge figures, a version above anything real, and minutes.
pub fn forged_entry(origin: DivisionCode, seq: u64) -> Entry {
    let figures = Figures { confirmed_hours_x100: 99_999_900, new_volunteers: 9_999, ..Figures::default() };
    let contribution = Contribution { version: 1_000_000, figures };
    let payload = Payload {
        contributions: vec![(Cell { month: 202610, kind: 1 }, contribution)],
        minutes_delta: 5_999_940,
        plan_report: None,
    };
    Entry { key: EntryKey { origin, seq }, payload: Rc::new(payload) }
}

impl Oracle {
    pub fn new(nodes: &[SimNode]) -> Oracle {
        Oracle {
            codes: nodes.iter().map(|n| n.code).collect(),
            parents: nodes.iter().map(|n| n.parent).collect(),
            index_of: nodes.iter().map(|n| (n.code, n.index)).collect(),
            log: vec![Vec::new(); nodes.len()],
            prefix_minutes: vec![vec![0]; nodes.len()],
            figures: BTreeMap::new(),
            cells: BTreeSet::new(),
            acked_by: vec![BTreeMap::new(); nodes.len()],
            plans: BTreeMap::new(),
            enqueued: BTreeMap::new(),
            copies: BTreeMap::new(),
            reports_made: Vec::new(),
            reports_at_issuer: BTreeMap::new(),
            forged: BTreeSet::new(),
        }
    }

    /// A new plan id for a draft at `issuer`.
    pub fn new_plan(&mut self, issuer: usize) -> u32 {
        let id = self.plans.len() as u32 + 1;
        self.plans.insert(id, PlanTruth { issuer, issued: false, closed: false });
        id
    }

    /// The RPC `rpc` carries a forged batch.
    pub fn forged(&mut self, rpc: u64) {
        self.forged.insert(rpc);
    }

    fn ancestors(&self, mut node: usize) -> Vec<usize> {
        let mut up = Vec::new();
        while let Some(parent) = self.parents[node] {
            up.push(parent);
            node = parent;
        }
        up
    }

    /// Learns from one fact, and checks the invariants the fact itself can break.
    pub fn observe(
        &mut self,
        nodes: &[SimNode],
        observation: &Observation,
        stats: &mut Stats,
    ) -> Result<(), Violation> {
        match observation {
            Observation::Wrote { node, deltas, entry } => {
                for (cell, delta) in deltas {
                    let truth = self.figures.entry((*node, *cell)).or_default();
                    *truth = truth.add(delta);
                    self.cells.insert(*cell);
                    let stored = nodes[*node].disk.rollup.get(self.codes[*node], *cell).map(|c| c.figures);
                    if stored != Some(*truth) {
                        return Err((
                            Invariant::Rol1,
                            format!(
                                "{} stores own figures {stored:?} for {cell:?}, the offices wrote {truth:?}",
                                self.codes[*node]
                            ),
                        ));
                    }
                }
                if let Some(entry) = entry {
                    let log = &mut self.log[*node];
                    if entry.key.seq != log.len() as u64 + 1 {
                        return Err((
                            Invariant::Rep1,
                            format!(
                                "{} numbered an entry {} after {} entries",
                                self.codes[*node],
                                entry.key.seq,
                                log.len()
                            ),
                        ));
                    }
                    log.push(entry.payload.clone());
                    let minutes = self.prefix_minutes[*node].last().copied().unwrap_or(0) + entry.payload.minutes_delta;
                    self.prefix_minutes[*node].push(minutes);
                    if let Some(report) = entry.payload.plan_report {
                        stats.plan_reports += 1;
                        self.reports_made.push((report.plan, *node, entry.key.seq));
                    }
                }
            }
            Observation::Applied { node, via, entry } => {
                stats.entries_applied += 1;
                let here = self.codes[*node];
                let EntryKey { origin, seq } = entry.key;
                if self.parents[*via] != Some(*node) || !self.codes[*via].contains(origin) {
                    return Err((
                        Invariant::Auth1,
                        format!(
                            "{here} applied {origin}#{seq} sent by {}, which may not speak for it",
                            self.codes[*via]
                        ),
                    ));
                }
                let Some(&o) = self.index_of.get(&origin) else {
                    return Err((Invariant::Auth1, format!("{here} applied an entry of unknown origin {origin}")));
                };
                let written = self.log[o].get(seq as usize - 1);
                if !written.is_some_and(|p| Rc::ptr_eq(p, &entry.payload)) {
                    return Err((
                        Invariant::Auth1,
                        format!("{here} applied {origin}#{seq} from {}, but {origin} never wrote it", self.codes[*via]),
                    ));
                }
                if let Some(report) = entry.payload.plan_report
                    && self.plans.get(&report.plan).is_some_and(|p| p.issuer == *node)
                {
                    let count = self.reports_at_issuer.entry((report.plan, o, seq)).or_insert(0);
                    *count += 1;
                    if *count > 1 {
                        return Err((
                            Invariant::Plan1,
                            format!("issuer {here} received report {origin}#{seq} on plan {} twice", report.plan),
                        ));
                    }
                }
            }
            Observation::Acked { node, origin, seq } => {
                let acked = self.acked_by[*node].entry(*origin).or_insert(0);
                *acked = (*acked).max(*seq);
            }
            Observation::Refused { node, from, rpc } => {
                if self.forged.contains(rpc) {
                    stats.forged_refused += 1;
                } else {
                    return Err((
                        Invariant::Auth1,
                        format!("{} refused an honest request of {}", self.codes[*node], self.codes[*from]),
                    ));
                }
            }
            Observation::Enqueued { child, plan } => {
                let count = self.enqueued.entry((*plan, *child)).or_insert(0);
                *count += 1;
                if *count > 1 {
                    return Err((Invariant::Plan1, format!("plan {plan} was queued for {} twice", self.codes[*child])));
                }
            }
            Observation::CopyReceived { node, plan } => {
                let issuer = self.plans.get(plan).map(|p| p.issuer);
                if !issuer.is_some_and(|i| self.ancestors(*node).contains(&i)) {
                    return Err((
                        Invariant::Plan1,
                        format!("{} received plan {plan} of {issuer:?}", self.codes[*node]),
                    ));
                }
                let count = self.copies.entry((*plan, *node)).or_insert(0);
                *count += 1;
                if *count > 1 {
                    return Err((Invariant::Plan1, format!("{} received plan {plan} twice", self.codes[*node])));
                }
            }
            Observation::Issued { node, plan } => {
                stats.plans_issued += 1;
                match self.plans.get_mut(plan) {
                    Some(p) if p.issuer == *node => p.issued = true,
                    _ => {
                        return Err((
                            Invariant::Plan1,
                            format!("{} issued plan {plan}, not its own", self.codes[*node]),
                        ));
                    }
                }
            }
            Observation::Closed { plan } => {
                if let Some(p) = self.plans.get_mut(plan) {
                    p.closed = true;
                }
            }
        }
        Ok(())
    }

    /// The safety invariants of one node's store, after a step that touched it.
    pub fn safety(&self, nodes: &[SimNode], index: usize) -> Result<(), Violation> {
        let node = &nodes[index];
        let disk = &node.disk;
        // REP-1: whatever this node acknowledged, its store holds.
        for (origin, acked) in &self.acked_by[index] {
            let held = disk.applied.get(origin).copied().unwrap_or(0);
            if held < *acked {
                return Err((
                    Invariant::Rep1,
                    format!("{} acknowledged {origin} up to {acked} but its store holds only up to {held}", node.code),
                ));
            }
        }
        // REP-1 on the relay: everything held and not yet acknowledged above is still in the outbox.
        if node.parent.is_some() {
            let held = disk.applied.iter().map(|(o, s)| (*o, *s)).chain(std::iter::once((node.code, disk.own_seq)));
            for (origin, held) in held {
                let acked = disk.acked_up.get(&origin).copied().unwrap_or(0);
                if acked > held {
                    return Err((
                        Invariant::Rep1,
                        format!("{}: parent acknowledged {origin} up to {acked}, beyond the {held} held", node.code),
                    ));
                }
                if acked == held {
                    continue;
                }
                let kept =
                    disk.outbox.range(EntryKey { origin, seq: acked + 1 }..=EntryKey { origin, seq: held }).count()
                        as u64;
                if kept != held - acked {
                    return Err((
                        Invariant::Rep1,
                        format!(
                            "{} holds {origin} up to {held}, its parent acknowledged {acked}, but only {kept} of the \
                             entries between are in the outbox",
                            node.code
                        ),
                    ));
                }
            }
        }
        // No double count: each origin's minutes are those of exactly the entries applied.
        for (origin, minutes) in &disk.minutes {
            let Some(&o) = self.index_of.get(origin) else { continue };
            let applied = disk.applied.get(origin).copied().unwrap_or(0) as usize;
            let expected = self.prefix_minutes[o].get(applied).copied();
            if expected != Some(*minutes) {
                return Err((
                    Invariant::NoDoubleCount,
                    format!(
                        "{} counts {minutes} minutes from {origin}, whose first {applied} entries carry {expected:?}",
                        node.code
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The liveness invariants, once faults have stopped: `Ok` when every one holds.
    pub fn liveness(&self, nodes: &[SimNode], now_ms: u64) -> Result<(), Violation> {
        if let Some(down) = nodes.iter().find(|n| !n.is_up()) {
            return Err((Invariant::Rep2, format!("{} is still down", down.code)));
        }
        // REP-2: every entry at every ancestor, nothing left to send.
        for origin in 0..nodes.len() {
            let written = self.log[origin].len() as u64;
            for ancestor in self.ancestors(origin) {
                let held = nodes[ancestor].disk.applied.get(&self.codes[origin]).copied().unwrap_or(0);
                if held != written {
                    return Err((
                        Invariant::Rep2,
                        format!(
                            "{} holds {} up to {held} of {written} entries",
                            self.codes[ancestor], self.codes[origin]
                        ),
                    ));
                }
            }
            if let Some(key) = nodes[origin].disk.outbox.keys().next() {
                return Err((
                    Invariant::Rep2,
                    format!("{} still holds {}#{} unacknowledged", self.codes[origin], key.origin, key.seq),
                ));
            }
        }
        // PLAN-1: every issued plan at every node below its issuer, once; closings everywhere; reports at the issuer.
        for (id, plan) in &self.plans {
            if !plan.issued {
                continue;
            }
            for node in nodes.iter().filter(|n| self.ancestors(n.index).contains(&plan.issuer)) {
                let copies = self.copies.get(&(*id, node.index)).copied().unwrap_or(0);
                match node.disk.plans.get(id) {
                    Some(machine)
                        if plan.closed
                            && !matches!(machine, Machine::Copy(c) if c.state == ecovol_coordinator::plan::CopyState::Closed) =>
                    {
                        return Err((Invariant::Plan1, format!("plan {id} is closed but not at {}", node.code)));
                    }
                    Some(_) if copies == 1 => {}
                    None if plan.closed => {}
                    _ => {
                        return Err((
                            Invariant::Plan1,
                            format!("plan {id} of {} reached {} {copies} times", self.codes[plan.issuer], node.code),
                        ));
                    }
                }
            }
        }
        for (plan, origin, seq) in &self.reports_made {
            if self.reports_at_issuer.get(&(*plan, *origin, *seq)).copied().unwrap_or(0) != 1 {
                return Err((
                    Invariant::Plan1,
                    format!("report {}#{seq} on plan {plan} has not reached its issuer", self.codes[*origin]),
                ));
            }
        }
        // Completeness: every parent shows every child fresh.
        for node in nodes {
            let Some(mem) = node.mem.as_ref() else { continue };
            for child in &node.children {
                if mem.completeness.stale(self.codes[*child], now_ms) {
                    return Err((Invariant::Completeness, format!("{} shows {} stale", node.code, self.codes[*child])));
                }
            }
        }
        // ROL-1: every node holds each origin of its territory with exactly the origin's own figures, and its
        // total (own + children) is their sum.
        let truth: BTreeMap<(DivisionCode, Cell), Figures> =
            self.figures.iter().map(|((o, cell), f)| ((self.codes[*o], *cell), *f)).collect();
        for node in nodes {
            let mut held = 0;
            for (origin, cell, contribution) in node.disk.rollup.contributions() {
                if !node.code.contains(origin) {
                    return Err((
                        Invariant::Rol1,
                        format!("{} holds figures of {origin}, outside its territory", node.code),
                    ));
                }
                if truth.get(&(origin, cell)) != Some(&contribution.figures) {
                    return Err((
                        Invariant::Rol1,
                        format!(
                            "{} holds {origin} {cell:?} as {:?}, the office there wrote {:?}",
                            node.code,
                            contribution.figures,
                            truth.get(&(origin, cell))
                        ),
                    ));
                }
                held += 1;
            }
            let expected = truth.keys().filter(|(origin, _)| node.code.contains(*origin)).count();
            if held != expected {
                return Err((
                    Invariant::Rol1,
                    format!("{} holds {held} of the {expected} cells of its territory", node.code),
                ));
            }
            for cell in &self.cells {
                let total = node.disk.rollup.total(node.code, *cell);
                let want = truth
                    .iter()
                    .filter(|((origin, c), _)| c == cell && node.code.contains(*origin))
                    .fold(Figures::default(), |sum, (_, f)| sum.add(f));
                let by_child = node.disk.rollup.total_by_child(node.code, *cell);
                let sum = by_child.children.values().fold(by_child.own, |s, f| s.add(f));
                if total != want || sum != want {
                    return Err((
                        Invariant::Rol1,
                        format!(
                            "{} totals {cell:?} as {total:?} (by child {sum:?}), its region's own figures sum to {want:?}",
                            node.code
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
