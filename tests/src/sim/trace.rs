//! The last steps of a run, kept cheaply (small records, formatted only when a run fails).

use std::collections::VecDeque;

use super::network::{Body, Message};
use super::node::SimNode;

/// Steps kept.
const KEPT: usize = 40;

/// What a step did, in a few words.
#[derive(Debug, Clone, Copy)]
pub enum TraceWhat {
    Deliver { from: usize, to: usize, what: &'static str, rpc: u64, items: usize },
    Office { node: usize, what: &'static str },
    Crash { node: usize },
    Restart { node: usize },
    Cut { node: usize },
    Heal { node: usize },
    StoreFails { node: usize },
    StoreRecovers { node: usize },
    Forge { from: usize, to: usize, origin: usize },
    EndFaults,
}

impl TraceWhat {
    pub fn deliver(message: &Message) -> TraceWhat {
        let (what, rpc, items) = match &message.body {
            Body::Push { rpc, entries, .. } => ("push", *rpc, entries.len()),
            Body::PushReply { rpc, result: Ok(acks) } => ("push ack", *rpc, acks.len()),
            Body::PushReply { rpc, result: Err(_) } => ("push refused", *rpc, 0),
            Body::Pull { rpc, after } => ("pull", *rpc, *after as usize),
            Body::PullReply { rpc, result: Ok(messages) } => ("pull reply", *rpc, messages.len()),
            Body::PullReply { rpc, result: Err(_) } => ("pull refused", *rpc, 0),
            Body::Refused { rpc } => ("connection refused", *rpc, 0),
        };
        TraceWhat::Deliver { from: message.from, to: message.to, what, rpc, items }
    }
}

/// A ring of the last steps.
#[derive(Debug, Default)]
pub struct Trace {
    steps: VecDeque<(u64, u64, TraceWhat)>,
}

impl Trace {
    pub fn push(&mut self, step: u64, at_ms: u64, what: TraceWhat) {
        if self.steps.len() == KEPT {
            self.steps.pop_front();
        }
        self.steps.push_back((step, at_ms, what));
    }

    /// The kept steps as text, oldest first, nodes named by their codes.
    pub fn tail(&self, nodes: &[SimNode]) -> Vec<String> {
        let code = |i: usize| nodes[i].code.to_string();
        self.steps
            .iter()
            .map(|(step, at_ms, what)| {
                let text = match *what {
                    TraceWhat::Deliver { from, to, what, rpc, items } => {
                        format!("{} → {}: {what} (rpc {rpc}, {items})", code(from), code(to))
                    }
                    TraceWhat::Office { node, what } => format!("{}: office: {what}", code(node)),
                    TraceWhat::Crash { node } => format!("{}: CRASH", code(node)),
                    TraceWhat::Restart { node } => format!("{}: restart from the store", code(node)),
                    TraceWhat::Cut { node } => format!("{}: link to the parent cut", code(node)),
                    TraceWhat::Heal { node } => format!("{}: link to the parent healed", code(node)),
                    TraceWhat::StoreFails { node } => format!("{}: STORE REFUSES WRITES", code(node)),
                    TraceWhat::StoreRecovers { node } => format!("{}: store accepts writes again", code(node)),
                    TraceWhat::Forge { from, to, origin } => {
                        format!("{} → {}: FORGED push of {}'s entries", code(from), code(to), code(origin))
                    }
                    TraceWhat::EndFaults => "faults stop, every link heals, every node restarts".to_string(),
                };
                format!("#{step} t={at_ms}ms {text}")
            })
            .collect()
    }
}
