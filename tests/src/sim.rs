//! A seeded, deterministic simulation of a whole federation driven by the coordinator's pure state machines.
//!
//! One province, three cities and ten counties run the protocols of `ecovol_coordinator` — `Uplink` and `Inbox`
//! (replication), `Rollup` (the CRDT), `PlanMachine`/`CopyMachine` (joint work plans) and `Completeness` —
//! driven the way `node/src/federation/{outbox,link,apply}.rs` and `node/src/plan.rs` drive them, over a
//! simulated network on a virtual clock. Everything random (office work, plan commands, message loss,
//! duplication, delay, partitions, crashes, forged batches) comes from one seeded RNG, so a seed replays the same
//! run, step for step (models: neon `safekeeper/tests/random_test.rs`, TigerBeetle's VOPR).
//!
//! A run has two phases. In the fault phase the network drops, duplicates, delays (and so reorders) messages,
//! links are cut and healed, nodes crash — losing everything but their store, exactly the state the real node
//! keeps in sled ([`node::Disk`]) — and restart, while offices write and plans are issued, adopted and reported
//! on. After every step the safety invariants are checked (REP-1, AUTH-1, no double count, PLAN-1's "never
//! twice"). Then faults stop, every node restarts and every link heals, and the liveness invariants (REP-2,
//! ROL-1, PLAN-1, fresh completeness) must hold within a bounded virtual time.
//!
//! A failure names the seed, the invariant and the last steps ([`Failure`]'s `Display`); `ECOVOL_SIM_SEED=n`
//! replays one seed (tests/tests/simulation.rs).

mod check;
mod network;
mod node;
mod trace;

use std::collections::BinaryHeap;
use std::fmt;

use ecovol_coordinator::plan::CopyState;
use ecovol_coordinator::region::DivisionCode;
use ecovol_coordinator::replication::{InboxFault, UplinkFault};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use check::Oracle;
use network::{Body, Event, Message, Scheduled};
use node::{Effects, SimNode};
use trace::{Trace, TraceWhat};

/// What a run does: its length, its fault rates, and the protocol bugs switched on for mutation tests.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Virtual milliseconds of office work under faults.
    pub fault_phase_ms: u64,
    /// After the faults stop: virtual milliseconds within which every liveness invariant must hold.
    pub liveness_bound_ms: u64,
    /// Mean virtual milliseconds between two office actions anywhere in the federation.
    pub office_interval_ms: u64,
    /// Mean virtual milliseconds between two injected faults (crash, partition, forged batch).
    pub fault_interval_ms: u64,
    /// Chance that the network drops a message (fault phase only).
    pub drop_probability: f64,
    /// Chance that the network delivers a message twice (fault phase only).
    pub duplicate_probability: f64,
    /// Chance that a message is held back 100–1,500 ms, overtaken by later ones (fault phase only).
    pub delay_probability: f64,
    /// A protocol bug switched on in every node's `Inbox` (mutation tests); `None` normally.
    pub inbox_fault: Option<InboxFault>,
    /// A protocol bug switched on in every node's `Uplink` (mutation tests); `None` normally.
    pub uplink_fault: Option<UplinkFault>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            fault_phase_ms: 6_000,
            liveness_bound_ms: 20_000,
            office_interval_ms: 40,
            fault_interval_ms: 400,
            drop_probability: 0.08,
            duplicate_probability: 0.04,
            delay_probability: 0.06,
            inbox_fault: None,
            uplink_fault: None,
        }
    }
}

/// The named limits the simulated nodes run with (small, so batches split and back-offs matter).
pub(crate) mod limits {
    /// `federation.batch_entries_max`.
    pub const BATCH_ENTRIES_MAX: u64 = 6;
    /// `federation.backlog_entries_max`: office writes are refused at this backlog.
    pub const BACKLOG_ENTRIES_MAX: u64 = 150;
    /// `federation.ack_timeout_ms`: the RPC deadline of a push or a pull.
    pub const ACK_TIMEOUT_MS: u64 = 300;
    /// `federation.retry_backoff_ms_min` / `_max`.
    pub const RETRY_BACKOFF_MS_MIN: u64 = 50;
    pub const RETRY_BACKOFF_MS_MAX: u64 = 800;
    /// `federation.poll_interval_ms`: the link loop's round.
    pub const POLL_INTERVAL_MS: u64 = 100;
    /// `federation.stale_after_ms`.
    pub const STALE_AFTER_MS: u64 = 3_000;
    /// Messages a child may fetch in one pull (`apply::PULL_MAX`).
    pub const PULL_MAX: usize = 500;
}

/// The invariants of DESIGN.md the simulation checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// An entry acknowledged by a parent is never lost by the parent, whatever crashes follow.
    Rep1,
    /// Every acknowledged office write reaches every ancestor once connectivity returns.
    Rep2,
    /// At quiescence every node's roll-up of a region equals the region's own local figures.
    Rol1,
    /// Entries only from configured children, and only of their own subtree.
    Auth1,
    /// Plans reach every node of the issuer's subtree exactly once; progress reaches the issuer exactly once.
    Plan1,
    /// No entry's additive effect (a volunteer's minutes) is applied twice.
    NoDoubleCount,
    /// A parent shows every child fresh once links work.
    Completeness,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Invariant::Rep1 => "REP-1",
            Invariant::Rep2 => "REP-2",
            Invariant::Rol1 => "ROL-1",
            Invariant::Auth1 => "AUTH-1",
            Invariant::Plan1 => "PLAN-1",
            Invariant::NoDoubleCount => "no double count",
            Invariant::Completeness => "completeness",
        };
        f.write_str(name)
    }
}

/// A violated invariant: the seed to replay, where it happened, and the last steps before it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The seed of the run.
    pub seed: u64,
    /// Which invariant broke.
    pub invariant: Invariant,
    /// What exactly was seen.
    pub detail: String,
    /// The step at which it was seen.
    pub step: u64,
    /// The virtual time at which it was seen.
    pub at_ms: u64,
    /// The last steps, oldest first.
    pub trace_tail: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation seed {} broke {} at step {} (t = {} ms): {}",
            self.seed, self.invariant, self.step, self.at_ms, self.detail
        )?;
        writeln!(
            f,
            "replay: ECOVOL_SIM_SEED={} cargo nextest run -p ecovol-tests --test simulation replay --no-capture",
            self.seed
        )?;
        writeln!(f, "last {} steps:", self.trace_tail.len())?;
        for line in &self.trace_tail {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// What a run did: counts of work and of injected faults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// Steps (events handled).
    pub steps: u64,
    /// Messages put on the network.
    pub messages: u64,
    /// Messages the network dropped at random.
    pub dropped: u64,
    /// Messages the network delivered twice.
    pub duplicated: u64,
    /// Messages held back 100–1,500 ms (and so reordered).
    pub delayed: u64,
    /// Links cut (a child–parent link, or every link of a city).
    pub partitions: u64,
    /// Messages lost to a cut link.
    pub partition_drops: u64,
    /// Node crashes (volatile state lost).
    pub crashes: u64,
    /// Periods in which a node's store refused writes (disk full, read-only).
    pub store_failures: u64,
    /// Batches forged by a county (entries of another origin, or sent past its parent).
    pub forged_batches: u64,
    /// Forged batches the receiving node refused.
    pub forged_refused: u64,
    /// Push or pull RPCs that timed out.
    pub rpc_timeouts: u64,
    /// Office writes acknowledged.
    pub office_writes: u64,
    /// Office actions refused: node down, or its backlog at `backlog_entries_max`.
    pub office_refused: u64,
    /// Entries applied by parents (each (origin, seq) once per node on its path).
    pub entries_applied: u64,
    /// Plans issued.
    pub plans_issued: u64,
    /// Plan copies received below the issuer.
    pub copies_received: u64,
    /// Adoptions and task reports written.
    pub plan_reports: u64,
    /// Virtual milliseconds from the end of the faults until every liveness invariant held.
    pub converged_after_ms: u64,
    /// At the end: children shown with a non-zero backlog although nothing is pending (a late push's figure).
    pub stale_backlog_figures: u64,
}

impl Stats {
    /// Adds another run's counts (the convergence time keeps the maximum).
    pub fn add(&mut self, other: &Stats) {
        self.steps += other.steps;
        self.messages += other.messages;
        self.dropped += other.dropped;
        self.duplicated += other.duplicated;
        self.delayed += other.delayed;
        self.partitions += other.partitions;
        self.partition_drops += other.partition_drops;
        self.crashes += other.crashes;
        self.store_failures += other.store_failures;
        self.forged_batches += other.forged_batches;
        self.forged_refused += other.forged_refused;
        self.rpc_timeouts += other.rpc_timeouts;
        self.office_writes += other.office_writes;
        self.office_refused += other.office_refused;
        self.entries_applied += other.entries_applied;
        self.plans_issued += other.plans_issued;
        self.copies_received += other.copies_received;
        self.plan_reports += other.plan_reports;
        self.converged_after_ms = self.converged_after_ms.max(other.converged_after_ms);
        self.stale_backlog_figures += other.stale_backlog_figures;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "steps {}, messages {}, dropped {}, duplicated {}, delayed {}, partitions {} ({} messages lost to \
             them), crashes {}, store failures {}, forged batches {} ({} refused), RPC timeouts {}, office writes {} ({} refused), \
             entries applied {}, plans issued {}, copies received {}, plan reports {}, slowest convergence {} ms, \
             stale backlog figures at the end {}",
            self.steps,
            self.messages,
            self.dropped,
            self.duplicated,
            self.delayed,
            self.partitions,
            self.partition_drops,
            self.crashes,
            self.store_failures,
            self.forged_batches,
            self.forged_refused,
            self.rpc_timeouts,
            self.office_writes,
            self.office_refused,
            self.entries_applied,
            self.plans_issued,
            self.copies_received,
            self.plan_reports,
            self.converged_after_ms,
            self.stale_backlog_figures
        )
    }
}

/// A run that kept every invariant.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What it did.
    pub stats: Stats,
    /// A digest of every node's store at the end: equal seeds give equal digests.
    pub digest: u64,
}

/// The federation simulated: codes of the province, its three cities and their ten counties.
pub const TOPOLOGY: [&str; 14] = [
    "330000", "330100", "330200", "330300", "330102", "330105", "330106", "330108", "330203", "330205", "330206",
    "330302", "330303", "330304",
];

/// Runs one seed. `Err` names the first invariant violated.
pub fn run(seed: u64, settings: &Settings) -> Result<Outcome, Box<Failure>> {
    let mut world = World::new(seed, settings.clone());
    match world.run() {
        Ok(()) => Ok(Outcome { stats: world.stats.clone(), digest: world.digest() }),
        Err((invariant, detail)) => Err(Box::new(Failure {
            seed,
            invariant,
            detail,
            step: world.stats.steps,
            at_ms: world.now_ms,
            trace_tail: world.trace.tail(&world.nodes),
        })),
    }
}

/// Virtual time between two full liveness checks once the run looks settled (they are the expensive part).
const LIVENESS_CHECK_EVERY_MS: u64 = 50;

/// A violated invariant and what was seen.
pub(crate) type Violation = (Invariant, String);

/// The whole simulated federation, its network, clock, RNG and the oracle that knows the truth.
pub(crate) struct World {
    settings: Settings,
    rng: SmallRng,
    now_ms: u64,
    phase: Phase,
    queue: BinaryHeap<Scheduled>,
    order: u64,
    next_rpc: u64,
    nodes: Vec<SimNode>,
    /// Per node: true while the link to its parent is cut.
    cut: Vec<bool>,
    oracle: Oracle,
    stats: Stats,
    trace: Trace,
    effects: Effects,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Faults,
    Healing { since_ms: u64 },
}

impl World {
    fn new(seed: u64, settings: Settings) -> World {
        let codes: Vec<DivisionCode> =
            TOPOLOGY.iter().map(|c| DivisionCode::parse(c).expect("the topology's codes are valid")).collect();
        let nodes: Vec<SimNode> = codes
            .iter()
            .enumerate()
            .map(|(index, code)| {
                let parent = code.parent().and_then(|p| codes.iter().position(|c| *c == p));
                let children: Vec<usize> = (0..codes.len()).filter(|i| codes[*i].parent() == Some(*code)).collect();
                SimNode::new(index, *code, parent, children, &settings)
            })
            .collect();
        let oracle = Oracle::new(&nodes);
        let mut world = World {
            rng: SmallRng::seed_from_u64(seed),
            settings,
            now_ms: 0,
            phase: Phase::Faults,
            queue: BinaryHeap::new(),
            order: 0,
            next_rpc: 1,
            cut: vec![false; nodes.len()],
            nodes,
            oracle,
            stats: Stats::default(),
            trace: Trace::default(),
            effects: Effects::default(),
        };
        for index in 0..world.nodes.len() {
            let jitter = world.rng.random_range(0..limits::POLL_INTERVAL_MS);
            world.schedule(jitter, Event::Tick { node: index, incarnation: 0 });
        }
        world.schedule(1, Event::Office);
        world.schedule(world.settings.fault_interval_ms, Event::Fault);
        world.schedule(world.settings.fault_phase_ms, Event::EndFaults);
        world
    }

    fn schedule(&mut self, after_ms: u64, event: Event) {
        self.order += 1;
        self.queue.push(Scheduled { at_ms: self.now_ms + after_ms, order: self.order, event });
    }

    /// Exponentially distributed wait with the given mean, at least 1 ms.
    fn wait(&mut self, mean_ms: u64) -> u64 {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        ((-u.ln()) * mean_ms as f64).max(1.0) as u64
    }

    fn run(&mut self) -> Result<(), Violation> {
        let mut next_liveness_check_ms = 0;
        while let Some(Scheduled { at_ms, event, .. }) = self.queue.pop() {
            self.now_ms = at_ms;
            self.stats.steps += 1;
            if let Phase::Healing { since_ms } = self.phase
                && at_ms > since_ms + self.settings.liveness_bound_ms
            {
                return Err(self
                    .oracle
                    .liveness(&self.nodes, self.now_ms)
                    .err()
                    .unwrap_or((Invariant::Rep2, "the run did not settle within the liveness bound".to_string())));
            }
            let touched = self.step(event)?;
            self.deliver_effects()?;
            if let Some(index) = touched {
                self.oracle.safety(&self.nodes, index)?;
            }
            if let Phase::Healing { since_ms } = self.phase
                && self.now_ms >= next_liveness_check_ms
                && self.converged_candidate()
            {
                next_liveness_check_ms = self.now_ms + LIVENESS_CHECK_EVERY_MS;
                if self.oracle.liveness(&self.nodes, self.now_ms).is_ok() {
                    self.stats.converged_after_ms = self.now_ms - since_ms;
                    self.stats.stale_backlog_figures = self.stale_backlog_figures();
                    return Ok(());
                }
            }
        }
        Err((Invariant::Rep2, "the event queue ran dry before the run settled".into()))
    }

    /// Children that a parent shows with a non-zero backlog although every entry has arrived: the figure of a
    /// late, duplicated push overwrote the last one (`fed/child/<code>` keeps the last report received).
    fn stale_backlog_figures(&self) -> u64 {
        let mems = self.nodes.iter().filter_map(|n| n.mem.as_ref());
        mems.map(|m| m.completeness.status(self.now_ms).iter().filter(|c| c.reported_backlog > 0).count() as u64).sum()
    }

    /// Cheap test before the full liveness check: every node up, every outbox empty, nothing in flight.
    fn converged_candidate(&self) -> bool {
        self.nodes.iter().all(|n| n.is_up() && n.disk.outbox.is_empty() && !n.awaiting_reply())
    }

    /// Handles one event; returns the nodes whose state it changed (checked for safety afterwards).
    fn step(&mut self, event: Event) -> Result<Option<usize>, Violation> {
        match event {
            Event::Tick { node, incarnation } => {
                if !self.nodes[node].is_up() || self.nodes[node].incarnation != incarnation {
                    return Ok(None);
                }
                let (now, next_rpc) = (self.now_ms, &mut self.next_rpc);
                self.nodes[node].tick(now, next_rpc, &mut self.effects, &mut self.stats);
                // A round only sends; the store is unchanged.
                let jitter = self.rng.random_range(0..limits::POLL_INTERVAL_MS / 4);
                self.schedule(
                    limits::POLL_INTERVAL_MS - limits::POLL_INTERVAL_MS / 8 + jitter,
                    Event::Tick { node, incarnation },
                );
                Ok(None)
            }
            Event::Deliver(message) => {
                let (from, to) = (message.from, message.to);
                self.trace.push(self.stats.steps, self.now_ms, TraceWhat::deliver(&message));
                if !self.nodes[to].is_up() {
                    // Connection refused: a request fails fast; a reply to a crashed caller is lost.
                    if let Some(rpc) = message.body.request_rpc() {
                        self.send(to, from, Body::Refused { rpc });
                    }
                    return Ok(None);
                }
                let now = self.now_ms;
                // Only pushes and their acknowledgements change what REP-1 and the double-count check look at.
                let replication = matches!(message.body, Body::Push { .. } | Body::PushReply { .. });
                self.nodes[to].receive(now, message, &mut self.effects, &mut self.stats);
                Ok(replication.then_some(to))
            }
            Event::Office => {
                if self.phase == Phase::Faults {
                    let mean = self.settings.office_interval_ms;
                    let wait = self.wait(mean);
                    self.schedule(wait, Event::Office);
                    self.office_work()?;
                } else {
                    // While healing, offices only take on the plans they received, so plans can travel on.
                    self.schedule(limits::POLL_INTERVAL_MS, Event::Office);
                    self.adopt_received_plans()?;
                }
                Ok(None)
            }
            Event::Fault => {
                if self.phase == Phase::Faults {
                    let mean = self.settings.fault_interval_ms;
                    let wait = self.wait(mean);
                    self.schedule(wait, Event::Fault);
                    return self.inject_fault();
                }
                Ok(None)
            }
            Event::Restart { node } => {
                if self.nodes[node].is_up() {
                    return Ok(None);
                }
                self.trace.push(self.stats.steps, self.now_ms, TraceWhat::Restart { node });
                self.nodes[node].restart(&self.settings);
                let incarnation = self.nodes[node].incarnation;
                self.schedule(1, Event::Tick { node, incarnation });
                Ok(Some(node))
            }
            Event::StoreRecovers { node } => {
                self.nodes[node].store_fails = false;
                self.trace.push(self.stats.steps, self.now_ms, TraceWhat::StoreRecovers { node });
                Ok(None)
            }
            Event::Heal { node } => {
                self.cut[node] = false;
                self.trace.push(self.stats.steps, self.now_ms, TraceWhat::Heal { node });
                Ok(None)
            }
            Event::EndFaults => {
                self.phase = Phase::Healing { since_ms: self.now_ms };
                self.trace.push(self.stats.steps, self.now_ms, TraceWhat::EndFaults);
                self.cut.iter_mut().for_each(|c| *c = false);
                self.nodes.iter_mut().for_each(|n| n.store_fails = false);
                for node in 0..self.nodes.len() {
                    if !self.nodes[node].is_up() {
                        self.schedule(1, Event::Restart { node });
                    }
                }
                Ok(None)
            }
        }
    }

    /// Puts the messages and observations of the last step on the network and before the oracle.
    fn deliver_effects(&mut self) -> Result<(), Violation> {
        let observed = std::mem::take(&mut self.effects.observed);
        for observation in &observed {
            self.oracle.observe(&self.nodes, observation, &mut self.stats)?;
        }
        self.effects.observed = observed;
        self.effects.observed.clear();
        let sends = std::mem::take(&mut self.effects.sends);
        for (from, to, body) in sends {
            self.send(from, to, body);
        }
        Ok(())
    }

    /// The network: a message may be lost to a cut link or at random, delivered twice, or held back.
    fn send(&mut self, from: usize, to: usize, body: Body) {
        self.stats.messages += 1;
        let faulty = self.phase == Phase::Faults;
        if self.cut[self.link_of_lowest(from, to)] {
            self.stats.partition_drops += 1;
            return;
        }
        if faulty && self.rng.random_bool(self.settings.drop_probability) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if faulty && self.rng.random_bool(self.settings.duplicate_probability) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let message = Message { from, to, body };
        for _ in 0..copies {
            let mut delay = self.rng.random_range(1..20);
            if faulty && self.rng.random_bool(self.settings.delay_probability) {
                self.stats.delayed += 1;
                delay += self.rng.random_range(100..1_500);
            }
            self.schedule(delay, Event::Deliver(message.clone()));
        }
    }

    /// The node whose parent link a message between `a` and `b` travels: the one lower in the tree.
    fn link_of_lowest(&self, a: usize, b: usize) -> usize {
        let depth = |i: usize| match self.nodes[i].code.level() {
            ecovol_coordinator::region::DivisionLevel::Province => 0,
            ecovol_coordinator::region::DivisionLevel::City => 1,
            ecovol_coordinator::region::DivisionLevel::County => 2,
        };
        if depth(a) >= depth(b) { a } else { b }
    }

    /// One office action: figures anywhere, plan work at the province and the cities, adoptions and task
    /// reports below. An office whose node is down, or whose backlog is at the cap, is refused.
    fn office_work(&mut self) -> Result<(), Violation> {
        let roll = self.rng.random_range(0..100);
        // Plan work happens where there is a plan to work on: the office that drafted it, or one holding a copy.
        let candidates: Vec<usize> = match roll {
            70..=71 => self.nodes.iter().filter(|n| !n.children.is_empty()).map(|n| n.index).collect(),
            72..=84 => self.nodes.iter().filter(|n| n.has_open_issuer_plan()).map(|n| n.index).collect(),
            85..=92 => self.nodes.iter().filter(|n| n.has_copy_in(CopyState::Received)).map(|n| n.index).collect(),
            93..=99 => self.nodes.iter().filter(|n| n.has_copy_in(CopyState::Adopted)).map(|n| n.index).collect(),
            _ => (0..self.nodes.len()).collect(),
        };
        if candidates.is_empty() {
            return Ok(());
        }
        let node = candidates[self.rng.random_range(0..candidates.len())];
        let writes_entry = !matches!(roll, 70..=84);
        let full = writes_entry && self.nodes[node].backlog_full();
        if !self.nodes[node].is_up() || self.nodes[node].store_fails || full {
            self.stats.office_refused += 1;
            return Ok(());
        }
        let now = self.now_ms;
        let action = match roll {
            0..=69 => self.nodes[node].record_figures(&mut self.rng, &mut self.effects),
            70..=71 => self.nodes[node].draft_plan(&mut self.oracle, &mut self.rng),
            72..=84 => self.nodes[node].plan_command(&mut self.rng, &mut self.effects),
            85..=92 => self.nodes[node].adopt_a_plan(&mut self.rng, &mut self.effects),
            _ => self.nodes[node].report_on_a_plan(&mut self.rng, &mut self.effects),
        };
        if let Some(what) = action {
            self.stats.office_writes += 1;
            self.trace.push(self.stats.steps, now, TraceWhat::Office { node, what });
        }
        self.deliver_effects()?;
        self.oracle.safety(&self.nodes, node)
    }

    fn adopt_received_plans(&mut self) -> Result<(), Violation> {
        for node in 0..self.nodes.len() {
            if self.nodes[node].is_up() && self.nodes[node].adopt_every_received_plan(&mut self.effects) {
                self.trace.push(self.stats.steps, self.now_ms, TraceWhat::Office { node, what: "adopt" });
            }
        }
        self.deliver_effects()
    }

    fn inject_fault(&mut self) -> Result<Option<usize>, Violation> {
        let roll = self.rng.random_range(0..100);
        match roll {
            0..=9 => {
                // Disk full or read-only: the store refuses writes for a while, the node keeps running.
                let node = self.rng.random_range(0..self.nodes.len());
                if self.nodes[node].store_fails {
                    return Ok(None);
                }
                self.stats.store_failures += 1;
                self.nodes[node].store_fails = true;
                self.trace.push(self.stats.steps, self.now_ms, TraceWhat::StoreFails { node });
                let length = self.rng.random_range(100..2_000);
                self.schedule(length, Event::StoreRecovers { node });
                Ok(None)
            }
            10..=39 => {
                let node = self.rng.random_range(0..self.nodes.len());
                if !self.nodes[node].is_up() {
                    return Ok(None);
                }
                self.stats.crashes += 1;
                self.trace.push(self.stats.steps, self.now_ms, TraceWhat::Crash { node });
                self.nodes[node].crash();
                let down = self.rng.random_range(50..2_500);
                self.schedule(down, Event::Restart { node });
                Ok(Some(node))
            }
            40..=71 => {
                self.stats.partitions += 1;
                let node = self.rng.random_range(1..self.nodes.len());
                let mut cut = vec![node];
                if self.nodes[node].parent == Some(0) && self.rng.random_bool(0.3) {
                    // A whole city cut off from above and below; it keeps working on its own.
                    cut.extend(self.nodes[node].children.iter().copied());
                }
                let length = self.rng.random_range(200..4_000);
                for node in cut {
                    self.cut[node] = true;
                    self.trace.push(self.stats.steps, self.now_ms, TraceWhat::Cut { node });
                    self.schedule(length, Event::Heal { node });
                }
                Ok(None)
            }
            _ => {
                self.forge_batch();
                Ok(None)
            }
        }
    }

    /// A compromised county sends its parent entries of an origin outside its subtree, or pushes to a node
    /// that is not its parent (claiming a higher level). Both must be refused (AUTH-1).
    fn forge_batch(&mut self) {
        let counties: Vec<usize> = (0..self.nodes.len()).filter(|i| self.nodes[*i].children.is_empty()).collect();
        let liar = counties[self.rng.random_range(0..counties.len())];
        let parent = self.nodes[liar].parent.unwrap_or(0);
        let (to, origin) = if self.rng.random_bool(0.25) {
            // Past its parent, straight to the province, with its own entries.
            (0, liar)
        } else {
            let others: Vec<usize> = (0..self.nodes.len())
                .filter(|i| *i != liar && !self.nodes[liar].code.contains(self.nodes[*i].code))
                .collect();
            (parent, others[self.rng.random_range(0..others.len())])
        };
        self.stats.forged_batches += 1;
        let rpc = self.next_rpc;
        self.next_rpc += 1;
        let origin_code = self.nodes[origin].code;
        let seq = self.nodes[to].disk.applied.get(&origin_code).copied().unwrap_or(0) + 1;
        self.oracle.forged(rpc);
        self.trace.push(self.stats.steps, self.now_ms, TraceWhat::Forge { from: liar, to, origin });
        let body = Body::Push { rpc, entries: vec![check::forged_entry(origin_code, seq)], backlog: 0 };
        self.send(liar, to, body);
    }

    fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.stats.hash(&mut hasher);
        for node in &self.nodes {
            node.disk.digest(&mut hasher);
        }
        self.now_ms.hash(&mut hasher);
        hasher.finish()
    }
}

/// How many seeds the normal test run executes, or `ECOVOL_SIM_SEEDS`.
pub fn seed_count(default: u64) -> u64 {
    std::env::var("ECOVOL_SIM_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The one seed to replay, from `ECOVOL_SIM_SEED`.
pub fn replay_seed() -> Option<u64> {
    std::env::var("ECOVOL_SIM_SEED").ok().and_then(|v| v.parse().ok())
}

/// Runs `seeds` and adds up their stats; the first failure ends the run.
pub fn run_seeds(seeds: impl Iterator<Item = u64>, settings: &Settings) -> Result<Stats, Box<Failure>> {
    let mut total = Stats::default();
    for seed in seeds {
        total.add(&run(seed, settings)?.stats);
    }
    Ok(total)
}
