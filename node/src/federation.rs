//! The federation: how this node works with its parent and children (DESIGN.md "Data flow", docs/FEDERATION.md).
//!
//! - [`outbox`]: use-cases record what matters above this node in the same write as the change;
//! - [`apply`]: the parent side — a child's batch applied exactly once, forwarded up, acknowledged; messages held
//!   for children (star certifications on their way down);
//! - [`link`]: the child side — the uplink drains the outbox to the parent, the downlink pulls messages;
//! - [`region`]: statistics of any region of the territory from the roll-up, with freshness per child;
//! - [`certs`]: node certificates carrying a division code and level.
//!
//! The protocol decisions themselves (which entries to send, which to apply, when a child is stale) are made by
//! the pure state machines of `ecovol_coordinator`; this module drives them over sled and gRPC.

pub mod apply;
pub mod backfill;
pub mod certs;
pub mod link;
pub mod outbox;
pub mod region;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use ecovol_coordinator::completeness::Completeness;
use ecovol_coordinator::region::{DivisionCode, DivisionLevel};
use ecovol_coordinator::replication::Inbox;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::DomainError;
use crate::store::{self, Store};

/// What the node knows of its parent.
#[derive(Debug, Clone)]
pub struct ParentLink {
    /// `https://host:port` of the parent's federation port.
    pub address: String,
    pub code: DivisionCode,
}

/// The uplink's latest news, for `GetFederationStatus`.
#[derive(Debug, Clone, Default)]
pub struct UplinkNews {
    pub last_ack: Option<DateTime<Utc>>,
    pub last_error: String,
}

/// A child as persisted (`fed/child/<code>`), so freshness survives a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildRecord {
    pub last_contact: Option<DateTime<Utc>>,
    pub backlog: u64,
    pub entries_applied: u64,
}

/// An origin as persisted (`fed/origin/<code>`): the applied position and the newest entry's commit time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginRecord {
    pub applied_seq: u64,
    pub newest_entry: Option<DateTime<Utc>>,
}

pub fn child_key(child: DivisionCode) -> String {
    format!("fed/child/{child}")
}

pub fn origin_key(origin: DivisionCode) -> String {
    format!("fed/origin/{origin}")
}

/// The federation state of a running node.
pub struct Federation {
    pub code: DivisionCode,
    pub parent: Option<ParentLink>,
    /// Codes accepted as children besides the GB/T 2260 rule.
    pub listed_children: Vec<DivisionCode>,
    /// Parent side: applied positions per origin. Held only to decide what a batch applies and to record it
    /// once durable: children's subtrees are disjoint, so batches of different children are written together
    /// (one flush for many), while each child's batches apply one at a time ([`Federation::child_turn`]).
    pub inbox: tokio::sync::Mutex<Inbox>,
    /// Parent side: one lock per child, held across that child's batch (decision, write, flush, record).
    turns: Mutex<BTreeMap<DivisionCode, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// Parent side: freshness of each child.
    pub children: Mutex<Completeness>,
    pub uplink: Mutex<UplinkNews>,
}

impl Federation {
    /// Restores the federation state of a node from its store.
    pub fn open(config: &Config, store: &dyn Store) -> Result<Federation, DomainError> {
        let code = config.division_code();
        let section = config.federation.as_ref();
        let parent = section.and_then(|f| {
            f.parent_code(code).map(|parent_code| ParentLink { address: f.parent.clone(), code: parent_code })
        });
        let listed_children = section.map(|f| f.listed_children()).unwrap_or_default();
        let stale_after_ms = section.map(|f| f.stale_after_ms).unwrap_or(u64::MAX);
        let mut applied = BTreeMap::new();
        store::scan_json_keyed::<OriginRecord>(store, "fed/origin/", |key, record| {
            if let Ok(origin) = DivisionCode::parse(key) {
                applied.insert(origin, record.applied_seq);
            }
        })?;
        let mut children = Completeness::new(stale_after_ms, listed_children.iter().copied());
        store::scan_json_keyed::<ChildRecord>(store, "fed/child/", |key, record| {
            if let (Ok(child), Some(contact)) = (DivisionCode::parse(key), record.last_contact) {
                let contact_ms = contact.timestamp_millis().max(0) as u64;
                children.contact(child, contact_ms);
                children.reported_backlog(child, record.backlog, contact_ms);
            }
        })?;
        Ok(Federation {
            code,
            parent,
            listed_children,
            inbox: tokio::sync::Mutex::new(Inbox::restore(applied)),
            turns: Mutex::new(BTreeMap::new()),
            children: Mutex::new(children),
            uplink: Mutex::new(UplinkNews::default()),
        })
    }

    /// The lock `child`'s batches take in turn (see `inbox`).
    pub fn child_turn(&self, child: DivisionCode) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        match self.turns.lock() {
            Ok(mut turns) => turns.entry(child).or_default().clone(),
            Err(poisoned) => poisoned.into_inner().entry(child).or_default().clone(),
        }
    }

    /// Every child's freshness now.
    pub fn children_status(&self) -> Vec<ecovol_coordinator::completeness::ChildStatus> {
        self.children.lock().map(|children| children.status(Federation::now_ms())).unwrap_or_default()
    }

    /// The coordinator's clock: unix milliseconds.
    pub fn now_ms() -> u64 {
        Utc::now().timestamp_millis().max(0) as u64
    }

    /// The wall-clock time of a coordinator instant.
    pub fn time_of(ms: u64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(ms as i64).unwrap_or_default()
    }

    /// AUTH-1: true if `child` may link to this node: listed in `federation.children`, or directly below this
    /// node by GB/T 2260 (province-administered units `xx90yy` directly below their province).
    pub fn accepts_child(&self, child: DivisionCode) -> bool {
        self.listed_children.contains(&child) || (child != self.code && child.parent() == Some(self.code))
    }
}

/// The level of a code, in the config's terms.
pub fn level_of(code: DivisionCode) -> crate::config::Level {
    match code.level() {
        DivisionLevel::Province => crate::config::Level::Province,
        DivisionLevel::City => crate::config::Level::City,
        DivisionLevel::County => crate::config::Level::County,
    }
}

/// Reads the federation-wide volunteer key file (64 hex characters, as `ecovol certs federation-key` writes).
pub fn load_volunteer_key(path: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let bytes = hex::decode(text.trim()).map_err(|_| format!("{}: not hex", path.display()))?;
    if bytes.len() < 32 {
        return Err(format!("{}: must hold at least 32 bytes (64 hex characters)", path.display()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod consistency_tests;
