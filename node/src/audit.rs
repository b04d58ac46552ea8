//! The audit trail: one entry for every call that changes data (or tries to), written in the same atomic batch as
//! the change. Append-only: no API edits or deletes an entry; only the retention sweep removes entries older than
//! the configured retention (at least 180 days, MLPS level 3), and that sweep audits itself.
//!
//! Keys: `audit/e/<seq>` the entry; `audit/t/<unix ms>/<seq>` and `audit/a/<account>/<seq>` indexes.

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Department};
use crate::commit::Txn;
use crate::error::DomainError;
use crate::page::{Page, PageRequest};
use crate::store::{self, Store};

/// How an audited call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Denied,
    Invalid,
    NotFound,
    Conflict,
    Failed,
}

impl Outcome {
    fn of(error: Option<&DomainError>) -> Self {
        match error {
            None => Outcome::Ok,
            Some(DomainError::PermissionDenied(_) | DomainError::Unauthenticated(_)) => Outcome::Denied,
            Some(DomainError::Invalid(_)) => Outcome::Invalid,
            Some(DomainError::NotFound { .. }) => Outcome::NotFound,
            Some(DomainError::AlreadyExists { .. } | DomainError::FailedPrecondition(_)) => Outcome::Conflict,
            Some(DomainError::Unavailable(_) | DomainError::Internal(_)) => Outcome::Failed,
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub sequence: u64,
    pub time: DateTime<Utc>,
    pub account_id: String,
    pub account_name: String,
    pub department: Department,
    pub operation: String,
    pub target: String,
    pub outcome: Outcome,
    pub detail: String,
    pub request_id: String,
}

/// What the audit entry of a write will say about who did what.
#[derive(Debug, Clone)]
pub struct AuditContext {
    pub caller: Caller,
    /// `Service/Method`, e.g. `VolunteerService/RegisterVolunteer`.
    pub operation: &'static str,
    /// What is acted on, as far as the request names it; a use-case may refine it (`Txn::target`).
    pub target: String,
}

impl AuditContext {
    pub fn new(caller: &Caller, operation: &'static str, target: impl Into<String>) -> Self {
        Self { caller: caller.clone(), operation, target: target.into() }
    }
}

fn entry_key(sequence: u64) -> String {
    format!("audit/e/{sequence:020}")
}

fn time_key(time: DateTime<Utc>, sequence: u64) -> String {
    format!("audit/t/{:016}/{sequence:020}", time.timestamp_millis().max(0))
}

fn account_key(account_id: &str, sequence: u64) -> String {
    format!("audit/a/{account_id}/{sequence:020}")
}

/// Appends the audit entry of the job running in `txn`; `error` is how it failed, if it did.
pub fn append(txn: &mut Txn<'_>, context: &AuditContext, error: Option<&DomainError>) -> Result<(), DomainError> {
    let sequence = txn.next_seq("audit")?;
    let detail = match error {
        Some(error) => error.to_string(),
        None => txn.detail.clone(),
    };
    let entry = AuditEntry {
        sequence,
        time: txn.now(),
        account_id: context.caller.account_id.clone(),
        account_name: context.caller.name.clone(),
        department: context.caller.department,
        operation: context.operation.to_string(),
        target: txn.target.clone(),
        outcome: Outcome::of(error),
        detail,
        request_id: context.caller.request_id.clone(),
    };
    txn.put(time_key(entry.time, sequence), sequence.to_string());
    txn.put(account_key(&entry.account_id, sequence), sequence.to_string());
    txn.put_json(entry_key(sequence), &entry);
    Ok(())
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub account_id: Option<String>,
}

/// Lists entries in sequence order (which is time order: the committer's clock never goes back).
pub fn list(store: &dyn Store, query: &AuditQuery, page: &PageRequest) -> Result<Page<AuditEntry>, DomainError> {
    let (prefix, start_key) = match &query.account_id {
        Some(account) => (format!("audit/a/{account}/"), None),
        None => {
            let start = query.start.map(|time| format!("audit/t/{:016}/", time.timestamp_millis().max(0)));
            ("audit/t/".to_string(), start)
        }
    };
    let mut entries = Vec::new();
    let mut last_key: Option<Vec<u8>> = None;
    let mut more = false;
    let mut failure: Option<DomainError> = None;
    // Start either after the page token, or just before the first key of the time range.
    let resume = page.after.clone().or_else(|| {
        start_key.map(|key| {
            let mut before = key.into_bytes();
            before.pop(); // "…/<ms>" sorts before "…/<ms>/<seq>"
            before
        })
    });
    store.scan(prefix.as_bytes(), resume.as_deref(), &mut |key, value| {
        let result = (|| -> Result<Option<AuditEntry>, DomainError> {
            let sequence: u64 =
                std::str::from_utf8(value).ok().and_then(|text| text.parse().ok()).ok_or_else(|| {
                    DomainError::Internal(format!("corrupt audit index {}", String::from_utf8_lossy(key)))
                })?;
            let entry: AuditEntry = store::get_json(store, entry_key(sequence).as_bytes())?
                .ok_or_else(|| DomainError::Internal(format!("audit entry {sequence} missing")))?;
            Ok(Some(entry))
        })();
        match result {
            Ok(Some(entry)) => {
                if query.end.is_some_and(|end| entry.time >= end) {
                    return ControlFlow::Break(());
                }
                if query.start.is_some_and(|start| entry.time < start) {
                    return ControlFlow::Continue(());
                }
                if entries.len() == page.size {
                    more = true;
                    return ControlFlow::Break(());
                }
                entries.push(entry);
                last_key = Some(key.to_vec());
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(Page::new(entries, if more { last_key } else { None }))
}

/// True if any entry is older than `cutoff` (so a retention sweep has work to do).
pub fn has_entries_before(store: &dyn Store, cutoff: DateTime<Utc>) -> Result<bool, DomainError> {
    let end = format!("audit/t/{:016}/", cutoff.timestamp_millis().max(0));
    let mut found = false;
    store.scan(b"audit/t/", None, &mut |key, _| {
        found = key < end.as_bytes();
        ControlFlow::Break(())
    })?;
    Ok(found)
}

/// Removes entries older than `cutoff`, at most `limit` of them; returns how many were removed.
/// Used only by the retention sweep, which runs as the system caller and is itself audited.
pub fn prune_before(txn: &mut Txn<'_>, cutoff: DateTime<Utc>, limit: usize) -> Result<usize, DomainError> {
    let end = format!("audit/t/{:016}/", cutoff.timestamp_millis().max(0));
    let mut doomed: Vec<(Vec<u8>, u64)> = Vec::new();
    txn.store().scan(b"audit/t/", None, &mut |key, value| {
        if key >= end.as_bytes() || doomed.len() >= limit {
            return ControlFlow::Break(());
        }
        if let Some(sequence) = std::str::from_utf8(value).ok().and_then(|text| text.parse::<u64>().ok()) {
            doomed.push((key.to_vec(), sequence));
        }
        ControlFlow::Continue(())
    })?;
    for (time_index, sequence) in &doomed {
        if let Some(entry) = txn.get_json::<AuditEntry>(&entry_key(*sequence))? {
            txn.delete(account_key(&entry.account_id, *sequence));
        }
        txn.delete(entry_key(*sequence));
        txn.delete(time_index.clone());
    }
    Ok(doomed.len())
}
