//! What travels between simulated nodes, and the events of the virtual clock.
//!
//! The messages mirror the federation port's RPCs (`Push` / `Pull` of `proto/ecovol/v1/federation.proto`): a
//! request carries an RPC id, and its caller accepts only the reply to the call it is waiting for, as a gRPC
//! client does (a late reply to a call that timed out is discarded).

use std::cmp::Ordering;
use std::rc::Rc;

use ecovol_coordinator::region::DivisionCode;
use ecovol_coordinator::replication::EntryKey;
use ecovol_coordinator::rollup::{Cell, Contribution};

/// What an outbox entry carries upward (the parts of `pb::UpEntry` the protocols look at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The origin's new contributions of the cells the change touched (versioned).
    pub contributions: Vec<(Cell, Contribution)>,
    /// The change of a volunteer's confirmed minutes: additive at every ancestor, so a second application
    /// would count twice (`fedvol_sum` in node/src/federation/apply.rs).
    pub minutes_delta: i64,
    /// An adoption or a task report of a joint work plan.
    pub plan_report: Option<PlanReport>,
}

/// An adoption or task report travelling to the plan's issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlanReport {
    /// The plan.
    pub plan: u32,
    /// Task progress in percent, or `None` for the adoption.
    pub percent: Option<u8>,
}

/// One outbox entry on the wire.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `(origin, seq)`.
    pub key: EntryKey,
    /// What it carries; shared, so the oracle can tell the origin's own entry from a forged one.
    pub payload: Rc<Payload>,
}

/// A message a parent holds for a child (`down/<child>/<seq>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DownMessage {
    /// Position in the child's stream, from 1.
    pub seq: u64,
    /// What it says.
    pub what: Down,
}

/// The downward messages modelled: plans and their closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Down {
    /// A plan to receive (a copy).
    Plan(u32),
    /// The issuer closed the plan.
    Closed(u32),
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The sender is not a configured child (PermissionDenied).
    NotAChild,
    /// The batch holds an entry outside the sender's subtree (PermissionDenied, AUTH-1).
    OutsideSubtree,
    /// The store refused the write (disk full, read-only): Unavailable, nothing changed.
    Unavailable,
}

/// An RPC request or reply.
#[derive(Debug, Clone)]
pub enum Body {
    /// `FederationService.Push`: a batch of outbox entries and the sender's remaining backlog.
    Push { rpc: u64, entries: Vec<Entry>, backlog: u64 },
    /// The parent's answer: acknowledged position per origin, or a refusal.
    PushReply { rpc: u64, result: Result<Vec<(DivisionCode, u64)>, Refusal> },
    /// `FederationService.Pull`: messages after `after`.
    Pull { rpc: u64, after: u64 },
    /// The parent's messages, or a refusal.
    PullReply { rpc: u64, result: Result<Vec<DownMessage>, Refusal> },
    /// The callee is down: the connection was refused (Unavailable).
    Refused { rpc: u64 },
}

impl Body {
    /// The RPC id of a request (`None` for replies).
    pub fn request_rpc(&self) -> Option<u64> {
        match self {
            Body::Push { rpc, .. } | Body::Pull { rpc, .. } => Some(*rpc),
            _ => None,
        }
    }
}

/// A message between two nodes.
#[derive(Debug, Clone)]
pub struct Message {
    /// Sender (node index).
    pub from: usize,
    /// Receiver (node index).
    pub to: usize,
    /// What it says.
    pub body: Body,
}

/// Something that happens at a virtual time.
#[derive(Debug, Clone)]
pub enum Event {
    /// A round of a node's link loop (uplink poll, pull, RPC deadlines). Stale after a crash.
    Tick { node: usize, incarnation: u64 },
    /// A message arrives.
    Deliver(Message),
    /// An office does something.
    Office,
    /// A fault is injected.
    Fault,
    /// A crashed node starts again from its store.
    Restart { node: usize },
    /// A cut link works again.
    Heal { node: usize },
    /// A node's store accepts writes again (space returned).
    StoreRecovers { node: usize },
    /// The fault phase ends: every node restarts, every link heals.
    EndFaults,
}

/// An event in the queue, ordered by time, then by scheduling order (so equal times stay deterministic).
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub at_ms: u64,
    pub order: u64,
    pub event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.order) == (other.at_ms, other.order)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so `BinaryHeap` (a max-heap) pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.order).cmp(&(self.at_ms, self.order))
    }
}
