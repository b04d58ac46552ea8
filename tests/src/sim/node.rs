//! One simulated node: its store ([`Disk`], what survives a crash) and its memory ([`Mem`], lost in a crash),
//! driven like the real node drives the coordinator.
//!
//! What is durable follows the real node's sled keys, written in one atomic, flushed batch per step (as the
//! committer does before anything is acknowledged):
//! - `roll/<origin>/<cell>` → [`Disk::rollup`] (own and every descendant's contributions);
//! - `out/<origin>/<seq>` → [`Disk::outbox`], `fed/acked/<origin>` → [`Disk::acked_up`], the own sequence →
//!   [`Disk::own_seq`];
//! - `fed/origin/<code>` (applied position) → [`Disk::applied`], `fedvol_sum` minutes → [`Disk::minutes`],
//!   `fed/child/<code>` → [`Disk::children`];
//! - `plan_m/<id>`, `plan_dlv`, `plan_cls`, `plan_adopt` / `plan_task`, `down/<child>/<seq>`,
//!   `fed/down_applied` → the plan fields.
//!
//! The volatile part is what the real node keeps in memory and rebuilds on start (`link::restore`,
//! `Federation::open`): the `Uplink` (in-flight batch, back-off), the `Inbox`, `Completeness`, and the RPCs it
//! waits for.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use ecovol_coordinator::completeness::Completeness;
use ecovol_coordinator::plan::{CopyCommand, CopyMachine, CopyState, PlanCommand, PlanMachine, PlanState};
use ecovol_coordinator::region::DivisionCode;
use ecovol_coordinator::replication::{EntryKey, Inbox, Uplink, UplinkConfig};
use ecovol_coordinator::rollup::{Cell, Contribution, Figures, Rollup};
use rand::Rng;
use rand::rngs::SmallRng;

use super::check::Oracle;
use super::network::{Body, Down, DownMessage, Entry, Message, Payload, PlanReport, Refusal};
use super::{Settings, Stats, TOPOLOGY, limits};

/// Departments that countersign plans (`Department` ids of the node).
const DEPARTMENTS: [&str; 4] = ["ecology_bureau", "civilization_office", "education", "youth_league"];

/// What a step did besides changing node state: messages to send and facts for the oracle.
#[derive(Debug, Default)]
pub struct Effects {
    /// `(from, to, body)`.
    pub sends: Vec<(usize, usize, Body)>,
    /// What happened, for the invariants.
    pub observed: Vec<Observation>,
}

/// A fact the oracle checks against the truth.
#[derive(Debug, Clone)]
pub enum Observation {
    /// An office write was acknowledged: the figures changed, and the entry (when the node has a parent).
    Wrote { node: usize, deltas: Vec<(Cell, Figures)>, entry: Option<Entry> },
    /// `node` applied `entry`, received from child `via`.
    Applied { node: usize, via: usize, entry: Entry },
    /// `node` acknowledged `origin` up to `seq`.
    Acked { node: usize, origin: DivisionCode, seq: u64 },
    /// `node` refused request `rpc` from `from`.
    Refused { node: usize, from: usize, rpc: u64 },
    /// `parent` queued plan `plan` for `child`.
    Enqueued { child: usize, plan: u32 },
    /// `node` saved a copy of `plan`.
    CopyReceived { node: usize, plan: u32 },
    /// `node` issued `plan`.
    Issued { node: usize, plan: u32 },
    /// `node` closed `plan`.
    Closed { plan: u32 },
}

/// Where a plan stands on a node (`plan::Machine` of the node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Machine {
    Issuer(PlanMachine),
    Copy(CopyMachine),
}

impl Machine {
    /// The node passes the plan down (issued or adopted here, or closed after that) — `Machine::passes_down`.
    fn passes_down(&self) -> bool {
        match self {
            Machine::Issuer(m) => matches!(m.state, PlanState::Issued | PlanState::Closed),
            Machine::Copy(c) => matches!(c.state, CopyState::Adopted | CopyState::Closed),
        }
    }

    fn closed(&self) -> bool {
        match self {
            Machine::Issuer(m) => m.state == PlanState::Closed,
            Machine::Copy(c) => c.state == CopyState::Closed,
        }
    }
}

/// `fed/child/<code>`: what a parent stores about a child.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ChildRecord {
    pub last_contact_ms: Option<u64>,
    pub backlog: u64,
    pub entries_applied: u64,
}

/// The store of a node: everything here survives a crash.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    pub own_seq: u64,
    pub outbox: BTreeMap<EntryKey, Rc<Payload>>,
    pub acked_up: BTreeMap<DivisionCode, u64>,
    pub applied: BTreeMap<DivisionCode, u64>,
    pub rollup: Rollup,
    pub minutes: BTreeMap<DivisionCode, i64>,
    pub children: BTreeMap<DivisionCode, ChildRecord>,
    pub plans: BTreeMap<u32, Machine>,
    pub delivered: BTreeSet<(u32, usize)>,
    pub closing_delivered: BTreeSet<(u32, usize)>,
    pub reports: BTreeMap<(u32, DivisionCode), Option<u8>>,
    pub down: BTreeMap<usize, BTreeMap<u64, DownMessage>>,
    pub down_seq: BTreeMap<usize, u64>,
    pub down_applied: u64,
}

impl Disk {
    /// Feeds the durable state into a digest (equal runs, equal digests).
    pub fn digest(&self, hasher: &mut impl Hasher) {
        self.own_seq.hash(hasher);
        self.outbox.keys().for_each(|k| k.hash(hasher));
        self.acked_up.hash(hasher);
        self.applied.hash(hasher);
        format!("{:?}", self.rollup).hash(hasher);
        self.minutes.hash(hasher);
        self.children.hash(hasher);
        format!("{:?}", self.plans).hash(hasher);
        self.delivered.hash(hasher);
        self.reports.hash(hasher);
        self.down_applied.hash(hasher);
    }
}

/// An RPC the node waits for.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    rpc: u64,
    deadline_ms: u64,
}

/// What a node keeps in memory only; gone in a crash, rebuilt from [`Disk`] on restart.
#[derive(Debug)]
pub struct Mem {
    uplink: Uplink,
    pub inbox: Inbox,
    pub completeness: Completeness,
    push: Option<Waiting>,
    pull: Option<Waiting>,
    next_pull_ms: u64,
    pull_backoff_ms: u64,
}

/// One node of the simulated federation.
#[derive(Debug)]
pub struct SimNode {
    pub index: usize,
    pub code: DivisionCode,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    pub disk: Disk,
    pub mem: Option<Mem>,
    /// Grows at every crash, so the link loop of an earlier life stops ticking.
    pub incarnation: u64,
    /// The store refuses every write (disk full, read-only); reads still work. A property of the machine, so
    /// it outlives a crash.
    pub store_fails: bool,
    codes: Vec<DivisionCode>,
}

impl SimNode {
    pub fn new(
        index: usize,
        code: DivisionCode,
        parent: Option<usize>,
        children: Vec<usize>,
        settings: &Settings,
    ) -> SimNode {
        let codes = TOPOLOGY.iter().filter_map(|c| DivisionCode::parse(c).ok()).collect();
        let mut node = SimNode {
            index,
            code,
            parent,
            children,
            disk: Disk::default(),
            mem: None,
            incarnation: 0,
            store_fails: false,
            codes,
        };
        node.restart(settings);
        node
    }

    pub fn is_up(&self) -> bool {
        self.mem.is_some()
    }

    /// True while a push or a pull waits for its reply.
    pub fn awaiting_reply(&self) -> bool {
        self.mem.as_ref().is_some_and(|m| m.push.is_some() || m.pull.is_some())
    }

    /// kill -9: memory is gone, the store stays.
    pub fn crash(&mut self) {
        self.mem = None;
        self.incarnation += 1;
    }

    /// Starts from the store, as `link::restore` and `Federation::open` do.
    pub fn restart(&mut self, settings: &Settings) {
        let mut appended: BTreeMap<DivisionCode, u64> = BTreeMap::new();
        for key in self.disk.outbox.keys() {
            appended.insert(key.origin, key.seq);
        }
        let config = UplinkConfig {
            batch_entries_max: limits::BATCH_ENTRIES_MAX,
            backlog_entries_max: limits::BACKLOG_ENTRIES_MAX,
            ack_timeout_ms: limits::ACK_TIMEOUT_MS,
            retry_backoff_ms_min: limits::RETRY_BACKOFF_MS_MIN,
            retry_backoff_ms_max: limits::RETRY_BACKOFF_MS_MAX,
        };
        let mut uplink = Uplink::restore(config, self.disk.acked_up.clone(), appended);
        uplink.set_fault(settings.uplink_fault);
        let mut inbox = Inbox::restore(self.disk.applied.clone());
        inbox.set_fault(settings.inbox_fault);
        let child_codes: Vec<DivisionCode> = self.children.iter().map(|c| self.codes[*c]).collect();
        let mut completeness = Completeness::new(limits::STALE_AFTER_MS, child_codes);
        for (child, record) in &self.disk.children {
            if let Some(contact) = record.last_contact_ms {
                completeness.contact(*child, contact);
                completeness.reported_backlog(*child, record.backlog, contact);
            }
        }
        self.mem = Some(Mem {
            uplink,
            inbox,
            completeness,
            push: None,
            pull: None,
            next_pull_ms: 0,
            pull_backoff_ms: limits::RETRY_BACKOFF_MS_MIN,
        });
    }

    /// One round of the link loop (`link::uplink` and `link::downlink`): RPC deadlines, the next batch, a pull.
    pub fn tick(&mut self, now: u64, next_rpc: &mut u64, fx: &mut Effects, stats: &mut Stats) {
        let Some(parent) = self.parent else { return };
        let Some(mem) = self.mem.as_mut() else { return };
        if let Some(push) = mem.push
            && now >= push.deadline_ms
        {
            stats.rpc_timeouts += 1;
            mem.push = None;
            mem.uplink.connection_lost(now);
        }
        if let Some(pull) = mem.pull
            && now >= pull.deadline_ms
        {
            stats.rpc_timeouts += 1;
            mem.pull = None;
            pull_failed(mem, now);
        }
        if mem.push.is_none()
            && let Some(batch) = mem.uplink.poll(now)
        {
            let entries: Vec<Entry> = batch
                .entries()
                .filter_map(|key| self.disk.outbox.get(&key).map(|payload| Entry { key, payload: payload.clone() }))
                .collect();
            let backlog = mem.uplink.backlog_total().saturating_sub(batch.len());
            let rpc = take(next_rpc);
            mem.push = Some(Waiting { rpc, deadline_ms: now + limits::ACK_TIMEOUT_MS });
            fx.sends.push((self.index, parent, Body::Push { rpc, entries, backlog }));
        }
        if mem.pull.is_none() && now >= mem.next_pull_ms {
            let rpc = take(next_rpc);
            mem.pull = Some(Waiting { rpc, deadline_ms: now + limits::ACK_TIMEOUT_MS });
            fx.sends.push((self.index, parent, Body::Pull { rpc, after: self.disk.down_applied }));
        }
    }

    /// Handles a message (the node is up).
    pub fn receive(&mut self, now: u64, message: Message, fx: &mut Effects, stats: &mut Stats) {
        let from = message.from;
        match message.body {
            Body::Push { rpc, entries, backlog } => self.push(now, from, rpc, entries, backlog, fx),
            Body::Pull { rpc, after } => self.pull(now, from, rpc, after, fx),
            Body::PushReply { rpc, result } => {
                let Some(mem) = self.mem.as_mut() else { return };
                if mem.push.map(|w| w.rpc) != Some(rpc) {
                    return;
                }
                mem.push = None;
                match result {
                    // `persist_acks` failed: "the batch will be resent".
                    Ok(_) if self.store_fails => mem.uplink.connection_lost(now),
                    Ok(acks) => {
                        // `persist_acks`: the positions and the trimming of the outbox in one write, then the
                        // uplink learns of them.
                        for (origin, seq) in &acks {
                            let from = mem.uplink.acked_seq(*origin);
                            if *seq <= from {
                                continue;
                            }
                            self.disk.acked_up.insert(*origin, *seq);
                            for trimmed in from + 1..=*seq {
                                self.disk.outbox.remove(&EntryKey { origin: *origin, seq: trimmed });
                            }
                        }
                        mem.uplink.batch_answered(&acks);
                    }
                    Err(_) => mem.uplink.connection_lost(now),
                }
            }
            Body::PullReply { rpc, result } => {
                let Some(mem) = self.mem.as_mut() else { return };
                if mem.pull.map(|w| w.rpc) != Some(rpc) {
                    return;
                }
                mem.pull = None;
                match result {
                    // "cannot apply the parent's messages; retrying" after a poll interval.
                    Ok(messages) if self.store_fails && !messages.is_empty() => {
                        mem.next_pull_ms = now + limits::POLL_INTERVAL_MS;
                    }
                    Ok(messages) => {
                        mem.pull_backoff_ms = limits::RETRY_BACKOFF_MS_MIN;
                        mem.next_pull_ms = if messages.is_empty() { now + limits::POLL_INTERVAL_MS } else { now };
                        self.apply_messages(&messages, fx, stats);
                    }
                    Err(_) => pull_failed(mem, now),
                }
            }
            Body::Refused { rpc } => {
                let Some(mem) = self.mem.as_mut() else { return };
                if mem.push.map(|w| w.rpc) == Some(rpc) {
                    mem.push = None;
                    mem.uplink.connection_lost(now);
                }
                if mem.pull.map(|w| w.rpc) == Some(rpc) {
                    mem.pull = None;
                    pull_failed(mem, now);
                }
            }
        }
    }

    /// `apply::push`: AUTH-1 checks, the inbox's receipt applied in one write, then acknowledged.
    fn push(&mut self, now: u64, child: usize, rpc: u64, entries: Vec<Entry>, backlog: u64, fx: &mut Effects) {
        let Some(mem) = self.mem.as_mut() else { return };
        if !self.children.contains(&child) {
            fx.observed.push(Observation::Refused { node: self.index, from: child, rpc });
            fx.sends.push((self.index, child, Body::PushReply { rpc, result: Err(Refusal::NotAChild) }));
            return;
        }
        let child_code = self.codes[child];
        let keys: Vec<EntryKey> = entries.iter().map(|e| e.key).collect();
        let receipt = mem.inbox.receive(child_code, &keys);
        if receipt.refused.is_some() {
            fx.observed.push(Observation::Refused { node: self.index, from: child, rpc });
            fx.sends.push((self.index, child, Body::PushReply { rpc, result: Err(Refusal::OutsideSubtree) }));
            return;
        }
        if self.store_fails {
            // The write fails: nothing is persisted, the inbox is not told, nothing is acknowledged.
            fx.sends.push((self.index, child, Body::PushReply { rpc, result: Err(Refusal::Unavailable) }));
            return;
        }
        let wanted: BTreeSet<EntryKey> = receipt.apply.iter().copied().collect();
        let mut seen = BTreeSet::new();
        let mut applied = 0;
        for entry in entries.iter().filter(|e| wanted.contains(&e.key)) {
            if !seen.insert(entry.key) {
                continue;
            }
            applied += 1;
            let disk = &mut self.disk;
            let origin = entry.key.origin;
            for (cell, contribution) in &entry.payload.contributions {
                disk.rollup.merge(origin, *cell, *contribution);
            }
            *disk.minutes.entry(origin).or_insert(0) += entry.payload.minutes_delta;
            if let Some(report) = entry.payload.plan_report {
                disk.reports.insert((report.plan, origin), report.percent);
            }
            let position = disk.applied.entry(origin).or_insert(0);
            *position = (*position).max(entry.key.seq);
            if self.parent.is_some() {
                disk.outbox.insert(entry.key, entry.payload.clone());
            }
            fx.observed.push(Observation::Applied { node: self.index, via: child, entry: entry.clone() });
        }
        let record = self.disk.children.entry(child_code).or_default();
        record.last_contact_ms = Some(now);
        record.backlog = backlog;
        record.entries_applied += applied;
        // The write is durable: the inbox may move, the relayed entries may be sent on, the acks may go out.
        mem.inbox.persisted(&receipt);
        if self.parent.is_some() {
            for key in &receipt.apply {
                mem.uplink.appended(key.origin, key.seq);
            }
        }
        mem.completeness.reported_backlog(child_code, backlog, now);
        for (origin, seq) in &receipt.acks {
            mem.completeness.acked(child_code, *origin, *seq);
            fx.observed.push(Observation::Acked { node: self.index, origin: *origin, seq: *seq });
        }
        let acks: Vec<(DivisionCode, u64)> = receipt.acks.iter().map(|(o, s)| (*o, *s)).collect();
        fx.sends.push((self.index, child, Body::PushReply { rpc, result: Ok(acks) }));
    }

    /// `apply::pull` with `plan::deliveries`: queue what the child has not received, forget what it has, answer.
    fn pull(&mut self, now: u64, child: usize, rpc: u64, after: u64, fx: &mut Effects) {
        let Some(mem) = self.mem.as_mut() else { return };
        if !self.children.contains(&child) {
            fx.observed.push(Observation::Refused { node: self.index, from: child, rpc });
            fx.sends.push((self.index, child, Body::PullReply { rpc, result: Err(Refusal::NotAChild) }));
            return;
        }
        let disk = &mut self.disk;
        let mut queued = Vec::new();
        for (id, machine) in &disk.plans {
            if !machine.passes_down() {
                continue;
            }
            let closed = machine.closed();
            if !disk.delivered.contains(&(*id, child)) {
                if !closed {
                    queued.push(Down::Plan(*id));
                }
            } else if closed && !disk.closing_delivered.contains(&(*id, child)) {
                queued.push(Down::Closed(*id));
            }
        }
        let forgettable = disk.down.get(&child).is_some_and(|s| s.keys().next().is_some_and(|seq| *seq <= after));
        if self.store_fails && (!queued.is_empty() || forgettable) {
            fx.sends.push((self.index, child, Body::PullReply { rpc, result: Err(Refusal::Unavailable) }));
            return;
        }
        for what in &queued {
            match *what {
                Down::Plan(id) => {
                    disk.delivered.insert((id, child));
                    fx.observed.push(Observation::Enqueued { child, plan: id });
                }
                Down::Closed(id) => {
                    disk.closing_delivered.insert((id, child));
                }
            }
        }
        let stream = disk.down.entry(child).or_default();
        for what in queued {
            let seq = disk.down_seq.entry(child).or_insert(0);
            *seq += 1;
            stream.insert(*seq, DownMessage { seq: *seq, what });
        }
        let kept = stream.split_off(&(after + 1));
        *stream = kept;
        let messages: Vec<DownMessage> = stream.values().take(limits::PULL_MAX).copied().collect();
        mem.completeness.contact(self.codes[child], now);
        fx.sends.push((self.index, child, Body::PullReply { rpc, result: Ok(messages) }));
    }

    /// `link::apply_messages` with `plan::receive`: each message once, a plan held already is not received again.
    fn apply_messages(&mut self, messages: &[DownMessage], fx: &mut Effects, stats: &mut Stats) {
        let mut position = self.disk.down_applied;
        for message in messages {
            if message.seq <= position {
                continue;
            }
            position = message.seq;
            match message.what {
                Down::Plan(id) => {
                    if let std::collections::btree_map::Entry::Vacant(slot) = self.disk.plans.entry(id) {
                        slot.insert(Machine::Copy(CopyMachine::default()));
                        stats.copies_received += 1;
                        fx.observed.push(Observation::CopyReceived { node: self.index, plan: id });
                    }
                }
                Down::Closed(id) => {
                    if let Some(Machine::Copy(copy)) = self.disk.plans.get_mut(&id)
                        && copy.state != CopyState::Closed
                    {
                        let _ = copy.apply(CopyCommand::Close);
                    }
                }
            }
        }
        self.disk.down_applied = position;
    }

    /// True when `outbox::check_room` refuses new changes: the backlog is at `backlog_entries_max`.
    pub fn backlog_full(&self) -> bool {
        self.parent.is_some() && self.mem.as_ref().is_some_and(|m| m.uplink.alarm())
    }

    /// `outbox::record`: the own contributions of the touched cells and (with a parent) an outbox entry, in the
    /// same write as the change.
    fn record(
        &mut self,
        deltas: Vec<(Cell, Figures)>,
        minutes_delta: i64,
        plan_report: Option<PlanReport>,
        fx: &mut Effects,
    ) {
        let mut contributions = Vec::with_capacity(deltas.len());
        for (cell, delta) in &deltas {
            let mut contribution: Contribution = self.disk.rollup.get(self.code, *cell).copied().unwrap_or_default();
            contribution.version += 1;
            contribution.figures = contribution.figures.add(delta);
            self.disk.rollup.merge(self.code, *cell, contribution);
            contributions.push((*cell, contribution));
        }
        let mut entry = None;
        if self.parent.is_some() {
            self.disk.own_seq += 1;
            let key = EntryKey { origin: self.code, seq: self.disk.own_seq };
            let payload = Rc::new(Payload { contributions, minutes_delta, plan_report });
            self.disk.outbox.insert(key, payload.clone());
            if let Some(mem) = self.mem.as_mut() {
                mem.uplink.appended(key.origin, key.seq);
            }
            entry = Some(Entry { key, payload });
        }
        fx.observed.push(Observation::Wrote { node: self.index, deltas, entry });
    }

    /// An office records figures: a registration, service hours, a correction, or a project with a training.
    pub fn record_figures(&mut self, rng: &mut SmallRng, fx: &mut Effects) -> Option<&'static str> {
        let month = 202609 + rng.random_range(0..3);
        let kind = rng.random_range(1..=5);
        let (what, deltas, minutes) = match rng.random_range(0..10) {
            0..=2 => {
                let registered = Figures { new_volunteers: 1, ..Figures::default() };
                ("register volunteer", vec![(Cell { month, kind: 0 }, registered)], 0)
            }
            3..=6 => {
                let minutes: i64 = rng.random_range(30..=480);
                let hours = Figures {
                    active_volunteers: i64::from(rng.random_bool(0.3)),
                    confirmed_hours_x100: minutes * 100 / 60,
                    ..Figures::default()
                };
                let mut deltas = vec![(Cell { month, kind }, hours)];
                if rng.random_bool(0.2) {
                    deltas.push((Cell { month, kind: 0 }, Figures { new_volunteers: 1, ..Figures::default() }));
                }
                ("record hours", deltas, minutes)
            }
            7 => {
                let correction = Figures { confirmed_hours_x100: -50, ..Figures::default() };
                ("correct hours", vec![(Cell { month, kind }, correction)], -30)
            }
            _ => {
                let project = Figures {
                    projects_published: 1,
                    trainings: 1,
                    trainees: rng.random_range(5..40),
                    rating_sum: rng.random_range(1..=5),
                    rating_count: 1,
                    ..Figures::default()
                };
                ("publish project", vec![(Cell { month, kind }, project)], 0)
            }
        };
        self.record(deltas, minutes, None, fx);
        Some(what)
    }

    /// A lead department drafts a plan (province and cities).
    pub fn draft_plan(&mut self, oracle: &mut Oracle, rng: &mut SmallRng) -> Option<&'static str> {
        if self.children.is_empty() {
            return None;
        }
        let participants: Vec<String> =
            DEPARTMENTS.iter().filter(|_| rng.random_bool(0.6)).map(|d| d.to_string()).collect();
        let id = oracle.new_plan(self.index);
        self.disk.plans.insert(id, Machine::Issuer(PlanMachine::new(participants)));
        Some("draft plan")
    }

    /// A department moves one of this node's plans on: submit, sign, return, issue or close. The machine
    /// refuses what does not fit, and a refusal changes nothing.
    pub fn plan_command(&mut self, rng: &mut SmallRng, fx: &mut Effects) -> Option<&'static str> {
        let open: Vec<u32> = self
            .disk
            .plans
            .iter()
            .filter(|(_, m)| matches!(m, Machine::Issuer(p) if p.state != PlanState::Closed))
            .map(|(id, _)| *id)
            .collect();
        if open.is_empty() {
            return None;
        }
        let id = open[rng.random_range(0..open.len())];
        let Some(Machine::Issuer(plan)) = self.disk.plans.get_mut(&id) else { return None };
        let department = DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())].to_string();
        let (name, command) = match plan.state {
            PlanState::Draft if rng.random_bool(0.2) => ("edit plan", PlanCommand::Edit),
            PlanState::Draft => ("submit plan", PlanCommand::Submit),
            PlanState::Countersigning => {
                let to_sign = plan.to_sign();
                match rng.random_range(0..20) {
                    0 => {
                        let comment = if rng.random_bool(0.5) { "补充培训目标" } else { " " }.to_string();
                        ("return plan", PlanCommand::Return { department, comment })
                    }
                    1 | 2 => ("issue plan", PlanCommand::Issue),
                    3 | 4 => ("sign plan", PlanCommand::Sign { department }),
                    _ => match to_sign.first() {
                        // Usually a department that has yet to sign; once all have, the plan is issued.
                        Some(department) => ("sign plan", PlanCommand::Sign { department: department.clone() }),
                        None => ("issue plan", PlanCommand::Issue),
                    },
                }
            }
            PlanState::Issued if rng.random_bool(0.15) => ("close plan", PlanCommand::Close),
            PlanState::Issued | PlanState::Closed => return None,
        };
        plan.apply(&command).ok()?;
        match command {
            PlanCommand::Issue => fx.observed.push(Observation::Issued { node: self.index, plan: id }),
            PlanCommand::Close => fx.observed.push(Observation::Closed { plan: id }),
            _ => {}
        }
        Some(name)
    }

    /// Adopts one received copy (`plan::adopt`): the copy passes down from now on, the adoption travels up.
    pub fn adopt_a_plan(&mut self, rng: &mut SmallRng, fx: &mut Effects) -> Option<&'static str> {
        let received = self.copies_in(CopyState::Received);
        if received.is_empty() {
            return None;
        }
        let id = received[rng.random_range(0..received.len())];
        self.adopt(id, fx).then_some("adopt plan")
    }

    /// Reports progress on a task of an adopted copy (`plan::report_task`): the report travels up.
    pub fn report_on_a_plan(&mut self, rng: &mut SmallRng, fx: &mut Effects) -> Option<&'static str> {
        let adopted = self.copies_in(CopyState::Adopted);
        if adopted.is_empty() {
            return None;
        }
        let id = adopted[rng.random_range(0..adopted.len())];
        let Some(Machine::Copy(copy)) = self.disk.plans.get_mut(&id) else { return None };
        copy.apply(CopyCommand::ReportProgress).ok()?;
        let percent = Some(rng.random_range(0..=100));
        self.record(Vec::new(), 0, Some(PlanReport { plan: id, percent }), fx);
        Some("report task")
    }

    /// While healing: the office takes on every plan it has received. True if it adopted any.
    pub fn adopt_every_received_plan(&mut self, fx: &mut Effects) -> bool {
        let mut any = false;
        for id in self.copies_in(CopyState::Received) {
            any |= self.adopt(id, fx);
        }
        any
    }

    /// True if this node drafted a plan that is not closed yet.
    pub fn has_open_issuer_plan(&self) -> bool {
        self.disk.plans.values().any(|m| matches!(m, Machine::Issuer(p) if p.state != PlanState::Closed))
    }

    /// True if this node holds a copy in `state`.
    pub fn has_copy_in(&self, state: CopyState) -> bool {
        self.disk.plans.values().any(|m| matches!(m, Machine::Copy(c) if c.state == state))
    }

    fn copies_in(&self, state: CopyState) -> Vec<u32> {
        self.disk
            .plans
            .iter()
            .filter(|(_, m)| matches!(m, Machine::Copy(c) if c.state == state))
            .map(|(id, _)| *id)
            .collect()
    }

    fn adopt(&mut self, id: u32, fx: &mut Effects) -> bool {
        let Some(Machine::Copy(copy)) = self.disk.plans.get_mut(&id) else { return false };
        if copy.apply(CopyCommand::Adopt).is_err() {
            return false;
        }
        self.disk.reports.insert((id, self.code), None);
        self.record(Vec::new(), 0, Some(PlanReport { plan: id, percent: None }), fx);
        true
    }
}

fn take(next_rpc: &mut u64) -> u64 {
    let rpc = *next_rpc;
    *next_rpc += 1;
    rpc
}

/// The downlink's back-off after a failed pull: doubles up to `retry_backoff_ms_max`.
fn pull_failed(mem: &mut Mem, now: u64) {
    mem.next_pull_ms = now + mem.pull_backoff_ms;
    mem.pull_backoff_ms = (mem.pull_backoff_ms * 2).min(limits::RETRY_BACKOFF_MS_MAX);
}
