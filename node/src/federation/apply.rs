//! The parent side: a child's batch applied exactly once (REP-1, REP-2, AUTH-1), and the messages this node
//! holds for its children.
//!
//! A batch goes through `ecovol_coordinator::replication::Inbox::receive`, which refuses it whole if an entry
//! lies outside the child's subtree (AUTH-1) and otherwise picks, per origin, the entries that continue the
//! applied position without a gap. Those are applied in one write together with the new positions, made durable,
//! and only then acknowledged: a resent entry finds its position passed and has no second effect.
//!
//! Applying an entry:
//! - merges its contributions into the roll-up (`roll/<origin>/…`, the higher version wins — ROL-1);
//! - keeps the minimised volunteer and their confirmed minutes per origin (`fedvol_sum/<key>`), which is all a
//!   parent ever knows of a volunteer (PRIV-1) and what mutual recognition of hours needs;
//! - forwards the entry unchanged (same origin and seq) up this node's own outbox when it has a parent;
//! - on the top node, sends a star notice down to every home county of a volunteer whose federation-wide minutes
//!   or star changed, certifying on the way the stars of this node's level.
//!
//! Keys: `fed/origin/<code>` (applied position, newest entry), `fed/child/<code>` (last contact, backlog),
//! `fedvol_sum/<key>` (homes and minutes), `fednote/<key>/<home>` (last notice sent), `fedcert/<key>/<star>`
//! (certifications made here), `down/<child>/<seq:020>` (messages waiting for a child, protobuf `DownMessage`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use ecovol_coordinator::region::DivisionCode;
use ecovol_coordinator::replication::{EntryKey, Inbox};
use ecovol_coordinator::rollup::{Cell, Contribution};
use ecovol_proto::v1 as pb;
use prost::Message as _;
use serde::{Deserialize, Serialize};

use super::outbox::{self, contribution_key};
use super::{ChildRecord, OriginRecord, child_key, origin_key};
use crate::app::App;
use crate::commit::Txn;
use crate::error::{DomainError, Violations};
use crate::stars::{self, CertifyingLevel, StarRule};
use crate::store::{self, Store};
use crate::wire;

/// Messages a child may fetch in one pull.
pub const PULL_MAX: u32 = 500;

/// An entry that passed the checks of the wire.
#[derive(Debug, Clone)]
struct CheckedEntry {
    key: EntryKey,
    entry: pb::UpEntry,
    contributions: Vec<(Cell, Contribution)>,
    committed_at: Option<DateTime<Utc>>,
}

fn check(entries: Vec<pb::UpEntry>) -> Result<Vec<CheckedEntry>, DomainError> {
    let mut violations = Violations::new();
    let mut checked = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let origin = match DivisionCode::parse(&entry.origin) {
            Ok(origin) => origin,
            Err(error) => {
                violations.add(format!("entries[{index}].origin"), error.to_string());
                continue;
            }
        };
        if entry.seq == 0 {
            violations.add(format!("entries[{index}].seq"), "must be at least 1");
        }
        if pb::ChangeKind::try_from(entry.kind).is_err() {
            violations.add(format!("entries[{index}].kind"), format!("{} is not a known change", entry.kind));
        }
        if let Some(volunteer) = &entry.volunteer
            && (volunteer.key.len() != 32 || !volunteer.key.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            violations.add(format!("entries[{index}].volunteer.key"), "must be 32 hex characters");
        }
        let mut contributions = Vec::with_capacity(entry.contributions.len());
        for (c, contribution) in entry.contributions.iter().enumerate() {
            match outbox::from_wire(contribution) {
                Ok(pair) => contributions.push(pair),
                Err(error) => violations.add(format!("entries[{index}].contributions[{c}]"), error),
            }
        }
        let committed_at = entry.committed_at.as_ref().and_then(wire::from_timestamp);
        checked.push(CheckedEntry { key: EntryKey { origin, seq: entry.seq }, entry, contributions, committed_at });
    }
    violations.into_result()?;
    Ok(checked)
}

/// A volunteer as a parent knows them: where they are registered, and their confirmed minutes per origin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolunteerSum {
    /// Home nodes (registering origins) → active there.
    pub homes: BTreeMap<String, bool>,
    /// Confirmed minutes per origin.
    pub minutes: BTreeMap<String, i64>,
    pub birth_year: u32,
    pub gender: i32,
}

impl VolunteerSum {
    pub fn total_minutes(&self) -> u64 {
        self.minutes.values().sum::<i64>().max(0) as u64
    }
}

pub fn volunteer_sum_key(volunteer_key: &str) -> String {
    format!("fedvol_sum/{volunteer_key}")
}

/// Applies a batch pushed by `child` and answers the acknowledgements.
pub async fn push(app: &App, child: DivisionCode, request: pb::PushRequest) -> Result<pb::PushResponse, DomainError> {
    let federation = &app.federation;
    if !federation.accepts_child(child) {
        tracing::warn!(%child, "refused a batch from a node that is not a child of this node (AUTH-1)");
        return Err(DomainError::denied(format!(
            "node {child} is not a child of {} (GB/T 2260 or federation.children)",
            federation.code
        )));
    }
    let entries = check(request.entries)?;
    let keys: Vec<EntryKey> = entries.iter().map(|e| e.key).collect();
    // One batch of this child at a time; other children's batches go on and share this one's flush.
    let turn = federation.child_turn(child);
    let _turn = turn.lock().await;
    let (starts, receipt) = {
        let inbox = federation.inbox.lock().await;
        let starts = epoch_starts(&inbox, child, &keys);
        let receipt = if starts.is_empty() {
            inbox.receive(child, &keys)
        } else {
            // An origin's new epoch continues from the position just before its first entry.
            let mut positions = inbox.applied().clone();
            positions.extend(starts.iter().map(|(origin, base)| (*origin, *base)));
            Inbox::restore(positions).receive(child, &keys)
        };
        (starts, receipt)
    };
    if let Some(refusal) = &receipt.refused {
        tracing::warn!(%child, %refusal, "refused a batch (AUTH-1)");
        return Err(DomainError::denied(refusal.to_string()));
    }
    let wanted: BTreeSet<EntryKey> = receipt.apply.iter().copied().collect();
    let mut seen = BTreeSet::new();
    let to_apply: Vec<CheckedEntry> =
        entries.into_iter().filter(|e| wanted.contains(&e.key) && seen.insert(e.key)).collect();
    let backlog = request.backlog;
    let applied = to_apply.len() as u64;
    let router = Router::of(app);
    let now = Utc::now();
    let resets = starts.clone();
    let backlog = app
        .committer
        .write_unaudited(move |txn| {
            let mut touched = BTreeSet::new();
            for (origin, base) in &resets {
                touched.extend(reset_origin(txn, *origin, *base)?);
            }
            for entry in &to_apply {
                if let Some(key) = apply_entry(txn, entry)? {
                    touched.insert(key);
                }
            }
            let key = child_key(child);
            let mut record: ChildRecord = txn.get_json(&key)?.unwrap_or_default();
            record.last_contact = Some(now);
            // A batch with nothing new is a late resend: the backlog it reports is older than the one recorded
            // by the batch that applied its entries, so it may only lower the figure.
            record.backlog = if applied == 0 { backlog.min(record.backlog) } else { backlog };
            record.entries_applied += applied;
            let backlog = record.backlog;
            txn.put_json(key, &record);
            if router.top {
                for volunteer_key in touched {
                    issue_notices(txn, &router, &volunteer_key)?;
                }
            }
            Ok(backlog)
        })
        .await?;
    federation.inbox.lock().await.persisted(&receipt);
    for (origin, base) in &starts {
        tracing::info!(%child, %origin, epoch = outbox::epoch_of(base + 1), "an origin started a new epoch: what \
            this node held of it is replaced by its announcement");
        if app.committer.outbox().linked() {
            app.committer.outbox().withdraw(*origin, *base);
        }
    }
    let now_ms = super::Federation::now_ms();
    if let Ok(mut children) = federation.children.lock() {
        children.reported_backlog(child, backlog, now_ms);
        for (origin, seq) in &receipt.acks {
            children.acked(child, *origin, *seq);
        }
    }
    if applied > 0 {
        tracing::debug!(%child, applied, "applied entries from a child");
    }
    Ok(pb::PushResponse {
        acks: receipt.acks.iter().map(|(origin, seq)| pb::Ack { origin: origin.to_string(), seq: *seq }).collect(),
    })
}

/// Origins of a batch from `child` that start an epoch above the one this node holds for them, with the position
/// just before the (highest) epoch's first entry.
fn epoch_starts(inbox: &Inbox, child: DivisionCode, keys: &[EntryKey]) -> BTreeMap<DivisionCode, u64> {
    let mut starts = BTreeMap::new();
    for key in keys {
        if child.contains(key.origin)
            && outbox::starts_epoch(key.seq)
            && outbox::epoch_of(key.seq) > outbox::epoch_of(inbox.applied_seq(key.origin))
        {
            let base = starts.entry(key.origin).or_insert(0);
            *base = (*base).max(key.seq - 1);
        }
    }
    starts
}

/// The marker of an origin this node asked to start a new epoch (`fed/resync/<code>`): kept until the epoch's
/// first entry arrives, and answered to the child towards it on every `CheckPositions`.
pub fn resync_key(origin: DivisionCode) -> String {
    format!("fed/resync/{origin}")
}

/// Forgets everything this node held of `origin` before its new epoch (whose first entry follows `base`): its
/// figures, its part of every volunteer's homes and minutes, its applied position, a resync marker, and, on a
/// node with a parent, its entries still waiting in the outbox (the announcement supersedes them). Returns the
/// volunteer keys whose homes or minutes changed.
fn reset_origin(txn: &mut Txn<'_>, origin: DivisionCode, base: u64) -> Result<BTreeSet<String>, DomainError> {
    let mut stale = Vec::new();
    txn.store().scan(format!("roll/{origin}/").as_bytes(), None, &mut |key, _| {
        stale.push(key.to_vec());
        std::ops::ControlFlow::Continue(())
    })?;
    if txn.outbox().linked() {
        let prefix = outbox::entry_prefix(origin);
        let end = outbox::entry_key(origin, base);
        txn.store().scan(prefix.as_bytes(), None, &mut |key, _| {
            if key > end.as_bytes() {
                return std::ops::ControlFlow::Break(());
            }
            stale.push(key.to_vec());
            std::ops::ControlFlow::Continue(())
        })?;
    }
    for key in stale {
        txn.delete(key);
    }
    let code = origin.to_string();
    let mut holders = Vec::new();
    store::scan_json_keyed::<VolunteerSum>(txn.store(), "fedvol_sum/", |key, sum| {
        if sum.homes.contains_key(&code) || sum.minutes.contains_key(&code) {
            holders.push(key.to_string());
        }
    })?;
    let mut touched = BTreeSet::new();
    for volunteer_key in holders {
        let key = volunteer_sum_key(&volunteer_key);
        let Some(mut sum) = txn.get_json::<VolunteerSum>(&key)? else { continue };
        sum.homes.remove(&code);
        sum.minutes.remove(&code);
        txn.put_json(key, &sum);
        touched.insert(volunteer_key);
    }
    txn.put_json(origin_key(origin), &OriginRecord { applied_seq: base, newest_entry: None });
    txn.delete(resync_key(origin));
    Ok(touched)
}

/// A child's acknowledged positions checked against what this node holds: origins of the child's subtree whose
/// acknowledged entries this node lost (restored from a backup), and those a marker names, must start a new
/// epoch. A newly found loss is marked (`fed/resync/…`) and logged once.
pub async fn check_positions(
    app: &App,
    child: DivisionCode,
    request: pb::CheckPositionsRequest,
) -> Result<pb::CheckPositionsResponse, DomainError> {
    let federation = &app.federation;
    if !federation.accepts_child(child) {
        tracing::warn!(%child, "refused a position check from a node that is not a child of this node (AUTH-1)");
        return Err(DomainError::denied(format!("node {child} is not a child of {}", federation.code)));
    }
    let mut lost = BTreeMap::new();
    {
        let inbox = federation.inbox.lock().await;
        for ack in &request.acknowledged {
            let origin = DivisionCode::parse(&ack.origin)
                .map_err(|error| DomainError::invalid("acknowledged.origin", error.to_string()))?;
            if child.contains(origin) && ack.seq > inbox.applied_seq(origin) {
                lost.insert(origin, (ack.seq, inbox.applied_seq(origin)));
            }
        }
    }
    let mut resync = BTreeSet::new();
    store::scan_json_keyed::<u64>(&*app.store, "fed/resync/", |key, _| {
        if let Ok(origin) = DivisionCode::parse(key)
            && child.contains(origin)
        {
            resync.insert(origin);
        }
    })?;
    let new: Vec<(DivisionCode, (u64, u64))> =
        lost.into_iter().filter(|(origin, _)| !resync.contains(origin)).collect();
    if !new.is_empty() {
        for (origin, (acknowledged, held)) in &new {
            tracing::warn!(
                %child,
                %origin,
                acknowledged,
                held,
                "this node lost entries it had acknowledged (restored from a backup?): the origin is asked to \
                 start a new epoch and announce its whole state"
            );
        }
        let marked: Vec<DivisionCode> = new.iter().map(|(origin, _)| *origin).collect();
        app.committer
            .write_unaudited(move |txn| {
                let since = txn.now().timestamp_millis().max(0) as u64;
                for origin in marked {
                    txn.put_json(resync_key(origin), &since);
                }
                Ok(())
            })
            .await?;
        resync.extend(new.iter().map(|(origin, _)| *origin));
    }
    if let Ok(mut children) = federation.children.lock() {
        children.contact(child, super::Federation::now_ms());
    }
    Ok(pb::CheckPositionsResponse { resync: resync.iter().map(ToString::to_string).collect() })
}

/// Applies one entry; returns the volunteer key whose minutes or homes changed.
fn apply_entry(txn: &mut Txn<'_>, checked: &CheckedEntry) -> Result<Option<String>, DomainError> {
    let origin = checked.key.origin;
    for (cell, contribution) in &checked.contributions {
        let key = contribution_key(origin, *cell);
        let existing: Option<Contribution> = txn.get_json(&key)?;
        if existing.is_none_or(|existing| existing.version < contribution.version) {
            txn.put_json(key, contribution);
        }
    }
    let mut touched = None;
    if let Some(volunteer) = &checked.entry.volunteer {
        let key = volunteer_sum_key(&volunteer.key);
        let mut sum: VolunteerSum = txn.get_json(&key)?.unwrap_or_default();
        let before = sum.clone();
        let kind = pb::ChangeKind::try_from(checked.entry.kind).unwrap_or_default();
        match kind {
            pb::ChangeKind::VolunteerRegistered
            | pb::ChangeKind::VolunteerUpdated
            | pb::ChangeKind::VolunteerDeactivated => {
                sum.homes.insert(origin.to_string(), volunteer.active);
                sum.birth_year = volunteer.birth_year;
                sum.gender = volunteer.gender;
            }
            _ => {}
        }
        if checked.entry.minutes_delta != 0 {
            *sum.minutes.entry(origin.to_string()).or_default() += checked.entry.minutes_delta;
        }
        if sum != before {
            txn.put_json(key, &sum);
            touched = Some(volunteer.key.clone());
        }
    }
    crate::plan::apply_report(txn, origin, &checked.entry)?;
    crate::campaign::apply_report(txn, &checked.entry)?;
    let key = origin_key(origin);
    let mut record: OriginRecord = txn.get_json(&key)?.unwrap_or_default();
    record.applied_seq = record.applied_seq.max(checked.key.seq);
    if checked.committed_at > record.newest_entry {
        record.newest_entry = checked.committed_at;
    }
    txn.put_json(key, &record);
    if txn.outbox().linked() {
        outbox::append(txn, origin, checked.key.seq, checked.entry.encode_to_vec());
    }
    Ok(touched)
}

// ----- downward: star notices -----

/// What a job needs to route and certify (copied out of the app, since jobs run on the committer thread).
#[derive(Debug, Clone)]
pub struct Router {
    pub code: DivisionCode,
    pub level: CertifyingLevel,
    pub top: bool,
    /// The parent's code (none on the top node).
    pub parent: Option<DivisionCode>,
    listed_children: Vec<DivisionCode>,
}

impl Router {
    pub fn of(app: &App) -> Router {
        Router {
            code: app.federation.code,
            level: CertifyingLevel::from(app.config.node.level),
            top: app.federation.parent.is_none(),
            parent: app.federation.parent.as_ref().map(|parent| parent.code),
            listed_children: app.federation.listed_children.clone(),
        }
    }

    /// A node of `level` without a parent or listed children (tests).
    #[cfg(test)]
    pub fn standalone(code: DivisionCode, level: CertifyingLevel) -> Router {
        Router { code, level, top: true, parent: None, listed_children: Vec::new() }
    }

    /// The child through which messages for `target` travel.
    pub fn route(&self, target: DivisionCode) -> Option<DivisionCode> {
        if let Some(listed) = self.listed_children.iter().find(|child| child.contains(target)) {
            return Some(*listed);
        }
        self.code.child_towards(target).filter(|child| *child != self.code)
    }
}

fn level_of_code(code: DivisionCode) -> CertifyingLevel {
    CertifyingLevel::from(super::level_of(code))
}

/// On the top node: sends a notice to each home county of the volunteer whose (elsewhere minutes, star) changed.
fn issue_notices(txn: &mut Txn<'_>, router: &Router, volunteer_key: &str) -> Result<(), DomainError> {
    let Some(sum) = txn.get_json::<VolunteerSum>(&volunteer_sum_key(volunteer_key))? else {
        return Ok(());
    };
    let rule = txn.get_json::<StarRule>(stars::RULE_KEY)?.unwrap_or_else(StarRule::built_in);
    let total = sum.total_minutes();
    let star = rule.star_for(total);
    for home in sum.homes.keys() {
        let Ok(home_code) = DivisionCode::parse(home) else { continue };
        let here = sum.minutes.get(home).copied().unwrap_or(0).max(0) as u64;
        let elsewhere = total.saturating_sub(here);
        let last_key = format!("fednote/{volunteer_key}/{home}");
        let last: Option<(u64, u32)> = txn.get_json(&last_key)?;
        if last == Some((elsewhere, star)) || (last.is_none() && elsewhere == 0 && star == 0) {
            continue;
        }
        txn.put_json(last_key, &(elsewhere, star));
        let notice = pb::StarNotice {
            volunteer_key: volunteer_key.to_string(),
            total_minutes: total,
            elsewhere_minutes: elsewhere,
            star,
            certifications: Vec::new(),
        };
        pass_down(txn, router, &rule, home_code, notice)?;
    }
    Ok(())
}

/// Certifies what this node certifies for the notice's star and queues the notice for the child towards `target`.
pub fn pass_down(
    txn: &mut Txn<'_>,
    router: &Router,
    rule: &StarRule,
    target: DivisionCode,
    mut notice: pb::StarNotice,
) -> Result<(), DomainError> {
    let Some(child) = router.route(target) else {
        return Ok(());
    };
    let next_level = level_of_code(child);
    for star in 1..=notice.star {
        let certifying = rule.certifying_level(star);
        // County-level stars are certified by the home county itself; a higher level's star by the node of that
        // level on the path, or, when the path has none (a province-administered county), by the nearest above.
        let here = certifying != CertifyingLevel::County
            && (certifying == router.level || (certifying < router.level && next_level < certifying));
        if !here {
            continue;
        }
        let key = format!("fedcert/{}/{star:02}", notice.volunteer_key);
        let certification: stars::Certification = match txn.get_json(&key)? {
            Some(existing) => existing,
            None => {
                let made = stars::Certification {
                    star,
                    certified_by: router.code.to_string(),
                    level: router.level,
                    certified_at: txn.now(),
                };
                txn.put_json(key, &made);
                made
            }
        };
        notice.certifications.push(pb::StarCertification::from(&certification));
    }
    let seq = txn.next_seq(&format!("down/{child}"))?;
    let message = pb::DownMessage { seq, target: target.to_string(), star: Some(notice), ..Default::default() };
    txn.put(down_key(child, seq), message.encode_to_vec());
    Ok(())
}

pub fn down_key(child: DivisionCode, seq: u64) -> String {
    format!("down/{child}/{seq:020}")
}

/// The messages waiting for `child` after `after_seq`; forgets those up to `after_seq` (the child has them).
pub async fn pull(app: &App, child: DivisionCode, request: pb::PullRequest) -> Result<pb::PullResponse, DomainError> {
    if !app.federation.accepts_child(child) {
        return Err(DomainError::denied(format!("node {child} is not a child of {}", app.federation.code)));
    }
    let prefix = format!("down/{child}/");
    let after = request.after_seq;
    if crate::plan::has_deliveries(&*app.store, child)? || crate::campaign::has_deliveries(&*app.store, child)? {
        app.committer
            .write_unaudited(move |txn| {
                let mut messages = crate::plan::deliveries(txn, child)?;
                messages.extend(crate::campaign::deliveries(txn, child)?);
                for message in messages {
                    let seq = txn.next_seq(&format!("down/{child}"))?;
                    txn.put(down_key(child, seq), pb::DownMessage { seq, ..message }.encode_to_vec());
                }
                Ok(())
            })
            .await?;
    }
    let mut forgettable = Vec::new();
    app.store.scan(prefix.as_bytes(), None, &mut |key, _| {
        let seq = std::str::from_utf8(&key[prefix.len()..]).ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        if seq <= after {
            forgettable.push(key.to_vec());
            std::ops::ControlFlow::Continue(())
        } else {
            std::ops::ControlFlow::Break(())
        }
    })?;
    if !forgettable.is_empty() {
        app.committer
            .write_unaudited(move |txn| {
                for key in forgettable {
                    txn.delete(key);
                }
                Ok(())
            })
            .await?;
    }
    let max = if request.max == 0 { PULL_MAX } else { request.max.min(PULL_MAX) } as usize;
    let mut messages = Vec::new();
    let mut failure = None;
    app.store.scan(prefix.as_bytes(), Some(down_key(child, after).as_bytes()), &mut |key, value| {
        match pb::DownMessage::decode(value) {
            Ok(message) => messages.push(message),
            Err(error) => failure = Some(format!("{}: {error}", String::from_utf8_lossy(key))),
        }
        if messages.len() >= max || failure.is_some() {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })?;
    if let Some(failure) = failure {
        return Err(DomainError::Internal(format!("a stored message is corrupt: {failure}")));
    }
    let now_ms = super::Federation::now_ms();
    if let Ok(mut children) = app.federation.children.lock() {
        children.contact(child, now_ms);
    }
    // The messages are answered even when the contact cannot be written (a full disk refuses writes).
    if let Err(error) = remember_contact(app, child, now_ms).await {
        tracing::debug!(%child, %error, "cannot persist a pulling child's contact");
    }
    Ok(pb::PullResponse { messages })
}

/// Persists a pulling child's contact (`fed/child/<code>`) when the stored one is older than a tenth of
/// `stale_after_ms` (between 1 s and 1 min): an idle child only pulls, and a restarted parent would otherwise
/// show it stale (or never heard from) although it asked a moment ago. Not on every pull: one write per child
/// per interval.
async fn remember_contact(app: &App, child: DivisionCode, now_ms: u64) -> Result<(), DomainError> {
    let stale_after_ms = app.config.federation.as_ref().map(|f| f.stale_after_ms).unwrap_or(u64::MAX);
    let every_ms = (stale_after_ms / 10).clamp(1_000, 60_000);
    let key = child_key(child);
    let stored: Option<ChildRecord> = store::get_json(&*app.store, key.as_bytes())?;
    let stored_ms = stored.and_then(|record| record.last_contact).map(|at| at.timestamp_millis().max(0) as u64);
    if stored_ms.is_some_and(|stored_ms| now_ms.saturating_sub(stored_ms) < every_ms) {
        return Ok(());
    }
    let now = super::Federation::time_of(now_ms);
    app.committer
        .write_unaudited(move |txn| {
            let mut record: ChildRecord = txn.get_json(&key)?.unwrap_or_default();
            if record.last_contact.is_none_or(|contact| contact < now) {
                record.last_contact = Some(now);
                txn.put_json(key, &record);
            }
            Ok(())
        })
        .await
}

/// The confirmed minutes of a volunteer in this node's territory: its own (if registered here) plus every
/// descendant's.
pub fn territory_minutes(store: &dyn Store, volunteer_key: &str) -> Result<u64, DomainError> {
    let below = store::get_json::<VolunteerSum>(store, volunteer_sum_key(volunteer_key).as_bytes())?
        .map(|sum| sum.total_minutes())
        .unwrap_or(0);
    let own = match store.get(outbox::fedvol_key(volunteer_key).as_bytes())? {
        Some(number) => crate::hours::confirmed_total(store, &String::from_utf8_lossy(&number))?.confirmed_minutes,
        None => 0,
    };
    Ok(below + own)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> DivisionCode {
        DivisionCode::parse(text).unwrap()
    }

    #[test]
    fn notices_route_through_the_gb_t_2260_tree_and_listed_children() {
        let province = Router {
            code: code("320000"),
            level: CertifyingLevel::Province,
            top: true,
            parent: None,
            listed_children: vec![],
        };
        assert_eq!(province.route(code("320102")), Some(code("320100")));
        assert_eq!(province.route(code("320100")), Some(code("320100")));
        assert_eq!(province.route(code("330102")), None, "outside the territory");
        assert_eq!(province.route(code("320000")), None, "not below itself");
        let listed = Router { listed_children: vec![code("320102")], ..province.clone() };
        assert_eq!(listed.route(code("320102")), Some(code("320102")));
    }

    #[test]
    fn checks_refuse_malformed_entries_with_every_field_named() {
        let entries = vec![
            pb::UpEntry { origin: "3201".into(), seq: 1, ..Default::default() },
            pb::UpEntry {
                origin: "320102".into(),
                seq: 0,
                kind: 99,
                volunteer: Some(pb::MinimisedVolunteer { key: "not hex".into(), ..Default::default() }),
                contributions: vec![pb::CellContribution { month: 202613, ..Default::default() }],
                ..Default::default()
            },
        ];
        let Err(DomainError::Invalid(violations)) = check(entries) else { panic!("expected field violations") };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "entries[0].origin",
                "entries[1].seq",
                "entries[1].kind",
                "entries[1].volunteer.key",
                "entries[1].contributions[0]"
            ]
        );
    }
}
