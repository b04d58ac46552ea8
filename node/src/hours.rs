//! Service hours: the record of the time a volunteer actually served on a project, its certification, corrections
//! and withdrawal, and the volunteer's confirmed total.
//!
//! Rules (DOMAIN.md, Regulations on Volunteer Service 2017, MCA Order 67 2020):
//! - hours are the time actually served, **excluding travel**; the rounding rule is regional, so configuration
//!   (`[hours] rounding_minutes`, nearest multiple, halves up); stored exactly as whole minutes and hundredths of
//!   an hour, never floating point;
//! - whoever organises an activity records it and certifies it: the manager of the project's organising team, or
//!   staff; walk-ins (no accepted sign-up) only by staff, and marked;
//! - records are true, accurate, complete and timely: no time in the future, none outside the project's window
//!   (give or take `window_tolerance_minutes`), no overlap between two records of one volunteer, at most
//!   `day_hours_max` hours in one China calendar day (an interval crossing midnight counts into both days);
//! - a volunteer may report an error; the organisation verifies and amends it: every version is kept with who,
//!   when and why, never overwritten silently.
//!
//! States: `recorded` → `confirmed` (only confirmed hours count) → `revoked` (final). An amendment is a new
//! version that keeps the state: a confirmed record amended by the team or staff stays confirmed, because the
//! amender has the same authority as the confirmer and certifies the new times by amending (the amender becomes
//! `confirmed_by`). A recorded record stays recorded. Every change (recording, confirmation, correction request,
//! rejection, amendment, revocation) is a version.
//!
//! Keys:
//! - `svc/<record_id>` the record; `svc_v/<record_id>/<version:010>` every version from the second on, and the
//!   first once there is a second (until then the record is its own first version: `save`);
//! - `svc_proj/<project_id>/<record_id>` and `svc_vol/<volunteer>/<start_ms:016>/<record_id>` indexes (revoked
//!   records stay in them; the overlap and day checks skip them); the volunteer index's value is
//!   `{end_ms, revoked}` (`SpanEntry`), rewritten with every version, so the time rules read the index alone
//!   (an empty value, as earlier builds wrote it, sends them to the record itself);
//! - `idem/svc/<idempotency_key>` → `{record_id, project_id, volunteer_number, start_time, end_time}` of the first
//!   request with that key;
//! - `svc_total/<volunteer>` → `{confirmed_minutes, confirmed_hours_x100}`, the sum over the volunteer's confirmed
//!   records, changed in the same write as every confirmation, amendment and revocation.
//!
//! Projects and sign-ups are read through private views of their stored JSON (`proj/<id>`,
//! `signup/<project>/<volunteer>`), so this module depends on their key contract only.
//!
//! Every record entering or leaving the confirmed state (confirmation, revocation, and an amendment's old and new
//! versions) moves the federation's figures of its start month and kind in the same write as the total
//! (`adjust_total`), with the change of the volunteer's confirmed minutes.

pub mod arithmetic;
mod command;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use ecovol_proto::v1 as pb;
use serde::{Deserialize, Serialize};

pub use self::command::{
    AmendServiceRecord, ListServiceRecords, RecordService, RecordServiceBulk, RecordTarget, RejectCorrection,
    RequestCorrection, RevokeServiceRecord, ServiceRow, TEXT_CHARS_MAX,
};
use crate::auth::{Caller, Role};
use crate::commit::Txn;
use crate::config::HoursSection;
use crate::error::{DomainError, Violations};
use crate::federation::outbox::{self, Change};
use crate::page::{Page, PageRequest};
use crate::project::ActivityKind;
use crate::registry::volunteer;
use crate::store::{self, Store};
use crate::wire;

/// How the interval was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingMethod {
    /// Check-in and check-out times taken on site.
    CheckInOut,
    /// A start–end interval reported after the activity.
    Interval,
}

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Recorded, not yet certified: the hours do not count.
    Recorded,
    /// Certified by the organising team or staff: the hours count.
    Confirmed,
    /// Withdrawn (final): the hours do not count.
    Revoked,
}

/// What made a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordAction {
    Recorded,
    Confirmed,
    CorrectionRequested,
    CorrectionRejected,
    Amended,
    Revoked,
}

/// A volunteer's report of an error in a record, pending until the team amends or rejects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub reason: String,
    pub proposed_start_time: Option<DateTime<Utc>>,
    pub proposed_end_time: Option<DateTime<Utc>>,
    pub proposed_content: Option<String>,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

/// A service record as stored under `svc/<record_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub record_id: String,
    pub project_id: String,
    pub volunteer_number: String,
    /// The project's organising team when the record was made: its manager certifies, amends and revokes it.
    pub organising_team_id: String,
    /// The project's activity kind (the guidance's five kinds), for statistics by kind.
    pub activity_kind: String,
    pub method: RecordingMethod,
    /// The service interval, travel excluded (MCA Order 67).
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// Credited minutes: the interval rounded by the rule in force when the times were set.
    pub minutes_served: u32,
    /// Credited hours in hundredths (fixed point), from `minutes_served`.
    pub hours_x100: u32,
    pub content: String,
    /// Recorded by staff without an accepted sign-up.
    pub walk_in: bool,
    pub state: RecordState,
    /// The volunteer's pending correction request, if any (the `correction_requested` flag with its reason).
    #[serde(default)]
    pub correction_requested: Option<Correction>,
    pub version: u32,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
    #[serde(default)]
    pub confirmed_by: Option<String>,
    #[serde(default)]
    pub confirmed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoke_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub idempotency_key: String,
}

/// One version of a record, as stored under `svc_v/<record_id>/<version:010>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecordVersion {
    pub version: u32,
    pub action: RecordAction,
    pub state: RecordState,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub minutes_served: u32,
    pub hours_x100: u32,
    pub content: String,
    pub correction_requested: bool,
    /// The account that made this version, when, and why.
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
    pub reason: String,
}

/// A volunteer's confirmed hours, as stored under `svc_total/<volunteer>`: the sum over their confirmed records.
/// Star ratings read `confirmed_minutes` (exact); `confirmed_hours_x100` is the sum of the records' own
/// hundredths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmedTotal {
    pub confirmed_minutes: u64,
    pub confirmed_hours_x100: u64,
}

/// What an idempotency key stands for, under `idem/svc/<key>`: the first record and the request that made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdempotencyEntry {
    record_id: String,
    project_id: String,
    volunteer_number: String,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
}

/// The fields of a project this module reads from `proj/<project_id>` (the projects module's key contract).
/// Unknown fields are ignored, so the projects module may add fields freely.
#[derive(Debug, Clone, Deserialize)]
struct ProjectView {
    project_id: String,
    organising_team_id: String,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    /// "draft", "published", "closed" or "cancelled".
    status: String,
    activity_kind: String,
}

/// The field of a sign-up this module reads from `signup/<project_id>/<volunteer_number>`.
#[derive(Debug, Clone, Deserialize)]
struct SignUpView {
    status: String,
}

/// The key of a record.
pub fn record_key(record_id: &str) -> String {
    format!("svc/{record_id}")
}

fn version_key(record_id: &str, version: u32) -> String {
    format!("svc_v/{record_id}/{version:010}")
}

fn project_index_key(project_id: &str, record_id: &str) -> String {
    format!("svc_proj/{project_id}/{record_id}")
}

fn volunteer_index_prefix(volunteer_number: &str) -> String {
    format!("svc_vol/{volunteer_number}/")
}

fn millis_key(time: DateTime<Utc>) -> String {
    format!("{:016}", time.timestamp_millis().max(0))
}

fn volunteer_index_key(volunteer_number: &str, start_time: DateTime<Utc>, record_id: &str) -> String {
    format!("{}{}/{record_id}", volunteer_index_prefix(volunteer_number), millis_key(start_time))
}

fn idempotency_key(key: &str) -> String {
    format!("idem/svc/{key}")
}

/// The key of a volunteer's confirmed total.
pub fn total_key(volunteer_number: &str) -> String {
    format!("svc_total/{volunteer_number}")
}

fn project_key(project_id: &str) -> String {
    format!("proj/{project_id}")
}

fn signup_key(project_id: &str, volunteer_number: &str) -> String {
    format!("signup/{project_id}/{volunteer_number}")
}

/// The record id at the end of an index key (after the last '/').
fn record_id_of(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(key);
    text.rsplit('/').next().unwrap_or_default().to_string()
}

/// A volunteer's confirmed hours: the sum over their confirmed records (zero if they have none).
pub fn confirmed_total(store: &dyn Store, volunteer_number: &str) -> Result<ConfirmedTotal, DomainError> {
    Ok(store::get_json(store, total_key(volunteer_number).as_bytes())?.unwrap_or_default())
}

// ----- the record's time rules -----

/// One broken rule of one row, with the class of refusal it is on its own.
#[derive(Debug, Clone)]
enum Problem {
    /// The row's own values are wrong (times in the future, outside the window, rounding to nothing).
    Invalid { field: &'static str, description: String },
    /// Something the row names does not exist.
    NotFound { field: &'static str, kind: &'static str, id: String },
    /// The caller may not record this row.
    Denied { field: &'static str, message: String },
    /// The row conflicts with the state of the store (not accepted, overlap, day limit).
    Conflict { field: &'static str, message: String },
}

impl Problem {
    fn field(&self) -> &'static str {
        match self {
            Problem::Invalid { field, .. }
            | Problem::NotFound { field, .. }
            | Problem::Denied { field, .. }
            | Problem::Conflict { field, .. } => field,
        }
    }

    fn description(&self) -> String {
        match self {
            Problem::Invalid { description, .. } => description.clone(),
            Problem::NotFound { kind, id, .. } => format!("names {kind} {id}, which is not on this node"),
            Problem::Denied { message, .. } | Problem::Conflict { message, .. } => message.clone(),
        }
    }
}

/// The refusal of a single row: all invalid values together (InvalidArgument), else the first of not found,
/// denied, conflict.
fn single_refusal(problems: Vec<Problem>) -> DomainError {
    let mut violations = Violations::new();
    for problem in problems.iter().filter(|problem| matches!(problem, Problem::Invalid { .. })) {
        violations.add(problem.field(), problem.description());
    }
    if !violations.is_empty() {
        return violations.into_result().err().unwrap_or_else(|| DomainError::Internal("no violation".into()));
    }
    let rank = |problem: &Problem| match problem {
        Problem::NotFound { .. } => 0,
        Problem::Denied { .. } => 1,
        _ => 2,
    };
    match problems.into_iter().min_by_key(rank) {
        Some(Problem::NotFound { kind, id, .. }) => DomainError::not_found(kind, id),
        Some(Problem::Denied { message, .. }) => DomainError::denied(message),
        Some(Problem::Conflict { message, .. }) => DomainError::FailedPrecondition(message),
        Some(Problem::Invalid { field, description }) => DomainError::invalid(field, description),
        None => DomainError::Internal("a refusal without a reason".into()),
    }
}

/// An interval already accepted in this write but not yet in the store (earlier rows of a roster).
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Its place among the roster's accepted rows.
    position: usize,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
}

/// The intervals accepted so far in this write, by volunteer: a row is checked against the earlier rows of its own
/// volunteer only, so a roster of n rows costs n look-ups rather than n² comparisons.
#[derive(Debug, Default)]
struct PendingRows {
    by_volunteer: HashMap<String, Vec<Pending>>,
    count: usize,
}

impl PendingRows {
    fn of(&self, volunteer_number: &str) -> &[Pending] {
        self.by_volunteer.get(volunteer_number).map_or(&[], Vec::as_slice)
    }

    fn push(&mut self, volunteer_number: &str, start_time: DateTime<Utc>, end_time: DateTime<Utc>) {
        let pending = Pending { position: self.count, start_time, end_time };
        self.count += 1;
        self.by_volunteer.entry(volunteer_number.to_string()).or_default().push(pending);
    }
}

/// The fields of a stored record the time rules read: decoding only these skips the rest of the record.
#[derive(Debug, Deserialize)]
struct Span {
    record_id: String,
    state: RecordState,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
}

/// The value of a volunteer index entry: what the time rules need besides the start in the key.
#[derive(Debug, Serialize, Deserialize)]
struct SpanEntry {
    end_ms: i64,
    revoked: bool,
}

/// The start (milliseconds, from the key) of a volunteer index entry.
fn start_of(key: &[u8]) -> Option<DateTime<Utc>> {
    let text = std::str::from_utf8(key).ok()?;
    let mut parts = text.rsplit('/');
    parts.next()?;
    DateTime::from_timestamp_millis(parts.next()?.parse().ok()?)
}

/// The span of the record a volunteer index entry names, from the entry itself when it carries one (`SpanEntry`),
/// else from the record (entries written by older releases).
fn span_of(txn: &Txn<'_>, key: &[u8], value: &[u8], record_id: String) -> Result<Option<Span>, DomainError> {
    if !value.is_empty()
        && let Ok(entry) = serde_json::from_slice::<SpanEntry>(value)
        && let (Some(start_time), Some(end_time)) = (start_of(key), DateTime::from_timestamp_millis(entry.end_ms))
    {
        // The time rules ask only whether a record is revoked: any other state reads as Recorded here.
        let state = if entry.revoked { RecordState::Revoked } else { RecordState::Recorded };
        return Ok(Some(Span { record_id, state, start_time, end_time }));
    }
    Ok(txn.get_json::<Span>(&record_key(&record_id))?)
}

/// The volunteer's non-revoked records that start before `before` and end after `until`, latest first, skipping
/// `exclude` (the record being amended). Non-revoked records of one volunteer never overlap, so sorted by start
/// they are sorted by end too: the walk stops at the first one ending at or before `until`.
fn spans_back(
    txn: &Txn<'_>,
    volunteer_number: &str,
    before: DateTime<Utc>,
    until: DateTime<Utc>,
    exclude: Option<&str>,
) -> Result<Vec<Span>, DomainError> {
    let prefix = volunteer_index_prefix(volunteer_number);
    let start_before = format!("{prefix}{}", millis_key(before));
    let mut spans = Vec::new();
    let mut failure = None;
    txn.scan_rev(prefix.as_bytes(), Some(start_before.as_bytes()), &mut |key, value| {
        let record_id = record_id_of(key);
        if Some(record_id.as_str()) == exclude {
            return ControlFlow::Continue(());
        }
        match span_of(txn, key, value, record_id) {
            Ok(Some(span)) if span.state == RecordState::Revoked => ControlFlow::Continue(()),
            Ok(Some(span)) if span.end_time <= until => ControlFlow::Break(()),
            Ok(Some(span)) => {
                spans.push(span);
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        }
    })?;
    match failure {
        Some(error) => Err(error),
        None => Ok(spans),
    }
}

/// The first non-revoked record (in `spans`, see `spans_back`) or pending row of the volunteer that overlaps
/// `[start, end)`.
fn find_overlap(
    spans: &[Span],
    volunteer_number: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    pending: &PendingRows,
) -> Option<String> {
    if let Some(row) = pending.of(volunteer_number).iter().find(|row| row.start_time < end && start < row.end_time) {
        return Some(format!("row {} of this roster", row.position));
    }
    // Sorted by start and by end alike: only the latest record starting before `end` can reach past `start`.
    spans
        .iter()
        .find(|span| span.start_time < end)
        .filter(|span| span.end_time > start)
        .map(|span| format!("record {}", span.record_id))
}

/// Seconds the volunteer already served in `[from, to)` over their non-revoked records (in `spans`, which reach
/// back to `from` at least) and pending rows.
fn served_seconds_in(
    spans: &[Span],
    volunteer_number: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    pending: &PendingRows,
) -> i64 {
    let pending: i64 = pending
        .of(volunteer_number)
        .iter()
        .map(|row| arithmetic::overlap_seconds(row.start_time, row.end_time, from, to))
        .sum();
    let stored: i64 =
        spans.iter().map(|span| arithmetic::overlap_seconds(span.start_time, span.end_time, from, to)).sum();
    pending + stored
}

/// Checks an interval against the time rules: not in the future, within the project's window give or take the
/// tolerance, credited minutes above zero, no overlap with the volunteer's other records, at most
/// `day_hours_max` hours in any China calendar day.
#[allow(clippy::too_many_arguments)]
fn check_interval(
    txn: &Txn<'_>,
    rules: &HoursSection,
    project: &ProjectView,
    volunteer_number: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    exclude: Option<&str>,
    pending: &PendingRows,
    problems: &mut Vec<Problem>,
) -> Result<(), DomainError> {
    let now = txn.now();
    if start > now {
        problems.push(Problem::Invalid { field: "start_time", description: "must not be in the future".into() });
    }
    if end > now {
        problems.push(Problem::Invalid { field: "end_time", description: "must not be in the future".into() });
    }
    let tolerance = chrono::Duration::minutes(i64::from(rules.window_tolerance_minutes));
    if start < project.start_at - tolerance {
        problems.push(Problem::Invalid {
            field: "start_time",
            description: format!(
                "is before project {} starts ({}) by more than the {} minutes tolerated",
                project.project_id,
                project.start_at.to_rfc3339(),
                rules.window_tolerance_minutes
            ),
        });
    }
    if end > project.end_at + tolerance {
        problems.push(Problem::Invalid {
            field: "end_time",
            description: format!(
                "is after project {} ends ({}) by more than the {} minutes tolerated",
                project.project_id,
                project.end_at.to_rfc3339(),
                rules.window_tolerance_minutes
            ),
        });
    }
    if arithmetic::credited_minutes((end - start).num_seconds(), rules.rounding_minutes) == 0 {
        problems.push(Problem::Invalid {
            field: "end_time",
            description: format!(
                "the interval is shorter than half the rounding unit ({} minutes) and credits no time",
                rules.rounding_minutes
            ),
        });
    }
    // One walk over the volunteer's records serves the overlap check and every day the interval touches.
    let days: Vec<_> = arithmetic::split_by_china_day(start, end)
        .into_iter()
        .map(|(day, seconds)| (day, seconds, arithmetic::china_day_bounds(day)))
        .collect();
    let before = days.iter().map(|(_, _, (_, to))| *to).fold(end, Ord::max);
    let until = days.iter().map(|(_, _, (from, _))| *from).fold(start, Ord::min);
    let spans = spans_back(txn, volunteer_number, before, until, exclude)?;
    if let Some(other) = find_overlap(&spans, volunteer_number, start, end, pending) {
        problems.push(Problem::Conflict {
            field: "start_time",
            message: format!("the interval overlaps {other} of volunteer {volunteer_number}"),
        });
    }
    let day_seconds_max = i64::from(rules.day_hours_max) * 3600;
    for (day, seconds, (from, to)) in days {
        let served = served_seconds_in(&spans, volunteer_number, from, to, pending);
        if served + seconds > day_seconds_max {
            problems.push(Problem::Conflict {
                field: "end_time",
                message: format!(
                    "volunteer {volunteer_number} would serve {} minutes on {day} (China time), more than the {} \
                     hours a day allows",
                    (served + seconds) / 60,
                    rules.day_hours_max
                ),
            });
        }
    }
    Ok(())
}

// ----- loading and saving -----

fn load_project(txn: &Txn<'_>, project_id: &str) -> Result<ProjectView, DomainError> {
    txn.get_json(&project_key(project_id))?.ok_or_else(|| DomainError::not_found("project", project_id))
}

/// Loads a record inside a write.
pub fn load(txn: &Txn<'_>, record_id: &str) -> Result<ServiceRecord, DomainError> {
    txn.get_json(&record_key(record_id))?.ok_or_else(|| DomainError::not_found("service record", record_id))
}

/// True if the caller certifies records of `team_id`: staff, or that team's manager (MCA Order 67: whoever
/// organises an activity records and certifies it).
fn certifies(caller: &Caller, team_id: &str) -> bool {
    caller.has(Role::Staff) || caller.manages_team(team_id)
}

fn check_certifies(caller: &Caller, team_id: &str, action: &str) -> Result<(), DomainError> {
    if certifies(caller, team_id) {
        return Ok(());
    }
    Err(DomainError::denied(format!(
        "{action} needs the role staff, or to be the manager of the organising team {team_id}"
    )))
}

/// Why a record was created: the reason its first version gives.
fn recorded_reason(walk_in: bool) -> &'static str {
    if walk_in { "recorded as a walk-in (no accepted sign-up)" } else { "recorded" }
}

/// The version entry of `record` as it is now.
fn version_of(
    record: &ServiceRecord,
    action: RecordAction,
    changed_by: &str,
    changed_at: DateTime<Utc>,
    reason: &str,
) -> ServiceRecordVersion {
    ServiceRecordVersion {
        version: record.version,
        action,
        state: record.state,
        start_time: record.start_time,
        end_time: record.end_time,
        minutes_served: record.minutes_served,
        hours_x100: record.hours_x100,
        content: record.content.clone(),
        correction_requested: record.correction_requested.is_some(),
        changed_by: changed_by.to_string(),
        changed_at,
        reason: reason.to_string(),
    }
}

/// The first version of a record still at version 1: the record itself, as recorded.
fn first_version(record: &ServiceRecord) -> ServiceRecordVersion {
    let reason = recorded_reason(record.walk_in);
    version_of(record, RecordAction::Recorded, &record.recorded_by, record.recorded_at, reason)
}

/// Stores `record` (a new one, or its next version) with its version entry and volunteer index entry.
///
/// A new record's first version is the record itself: its `svc_v/…/1` entry is written only when the record first
/// changes, from the record as stored then (in the same atomic write as the second version), so recording writes
/// one JSON document per record, not two. `get` shows a record still at version 1 as its one version.
fn save(
    txn: &mut Txn<'_>,
    record: &ServiceRecord,
    action: RecordAction,
    changed_by: &str,
    reason: &str,
) -> Result<(), DomainError> {
    if record.version == 1 {
        txn.put_json(record_key(&record.record_id), record);
        put_span(txn, record);
        return Ok(());
    }
    if record.version == 2 && txn.get(version_key(&record.record_id, 1).as_bytes())?.is_none() {
        let first = load(txn, &record.record_id)?;
        txn.put_json(version_key(&record.record_id, 1), &first_version(&first));
    }
    let version = version_of(record, action, changed_by, txn.now(), reason);
    txn.put_json(version_key(&record.record_id, record.version), &version);
    txn.put_json(record_key(&record.record_id), record);
    put_span(txn, record);
    Ok(())
}

/// The record's volunteer index entry, with its end and revocation (`SpanEntry`).
fn put_span(txn: &mut Txn<'_>, record: &ServiceRecord) {
    let span = SpanEntry { end_ms: record.end_time.timestamp_millis(), revoked: record.state == RecordState::Revoked };
    txn.put_json(volunteer_index_key(&record.volunteer_number, record.start_time, &record.record_id), &span);
}

/// The activity kind a record carries (the project's, in its stored form).
fn record_kind(record: &ServiceRecord) -> Result<ActivityKind, DomainError> {
    serde_json::from_value(serde_json::Value::String(record.activity_kind.clone())).map_err(|_| {
        DomainError::Internal(format!(
            "record {} has the unknown activity kind {:?}",
            record.record_id, record.activity_kind
        ))
    })
}

/// Moves a record's hours into (`add`) or out of the volunteer's confirmed total, exactly, and into or out of the
/// federation's figures of `change` (hours and active volunteers in the cell of the record's start month and kind,
/// stats' definition), with the change of the volunteer's confirmed minutes.
fn adjust_total(txn: &mut Txn<'_>, record: &ServiceRecord, add: bool, change: &mut Change) -> Result<(), DomainError> {
    let key = total_key(&record.volunteer_number);
    let mut total: ConfirmedTotal = txn.get_json(&key)?.unwrap_or_default();
    let minutes = u64::from(record.minutes_served);
    let hundredths = u64::from(record.hours_x100);
    let changed = if add {
        total.confirmed_minutes.checked_add(minutes).zip(total.confirmed_hours_x100.checked_add(hundredths))
    } else {
        total.confirmed_minutes.checked_sub(minutes).zip(total.confirmed_hours_x100.checked_sub(hundredths))
    };
    let (confirmed_minutes, confirmed_hours_x100) = changed.ok_or_else(|| {
        DomainError::Internal(format!("{key} would leave its range: the total is out of step with the records"))
    })?;
    total = ConfirmedTotal { confirmed_minutes, confirmed_hours_x100 };
    txn.put_json(key, &total);
    let sign = if add { 1 } else { -1 };
    outbox::service_deltas(
        txn,
        &mut change.deltas,
        &record.volunteer_number,
        record_kind(record)?,
        record.start_time,
        hundredths,
        sign,
    )?;
    change.minutes_delta += sign * minutes as i64;
    // Star rating: the star follows the confirmed total in the same write (DOMAIN.md "Star rating").
    crate::stars::on_total_changed(txn, &record.volunteer_number, total.confirmed_minutes)?;
    Ok(())
}

/// A change of confirmed hours of one record, to be filled by `adjust_total`.
fn hours_change(kind: pb::ChangeKind, record: &ServiceRecord) -> Change {
    Change::new(kind, record.record_id.clone())
}

/// Records a change of confirmed hours for the federation, with the volunteer minimised; nothing when neither the
/// figures nor the volunteer's minutes moved (an amendment of the content only).
fn record_hours_change(txn: &mut Txn<'_>, volunteer_number: &str, mut change: Change) -> Result<(), DomainError> {
    if change.deltas.is_empty() && change.minutes_delta == 0 {
        return Ok(());
    }
    change.volunteer = Some(outbox::minimised(txn, volunteer_number)?);
    outbox::record(txn, change)
}

/// Prefixes a row's field with its place in a roster (`rows[3].end_time`).
fn row_field(row: Option<usize>, field: &str) -> String {
    match row {
        Some(index) => format!("rows[{index}].{field}"),
        None => field.to_string(),
    }
}

// ----- use-cases -----

/// A recorded row: the record and whether it was there already (an idempotent retry).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub record: ServiceRecord,
    pub replayed: bool,
}

/// Checks that the caller may record for `project` and that the project takes records.
fn open_project(txn: &Txn<'_>, caller: &Caller, project_id: &str) -> Result<ProjectView, DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager], "recording service hours")?;
    let project = load_project(txn, project_id)?;
    check_certifies(caller, &project.organising_team_id, "recording service hours")?;
    match project.status.as_str() {
        "published" | "closed" => Ok(project),
        "draft" | "cancelled" => Err(DomainError::FailedPrecondition(format!(
            "project {project_id} is {}: hours are recorded on published or closed projects only",
            project.status
        ))),
        other => Err(DomainError::FailedPrecondition(format!(
            "project {project_id} has the unknown status {other:?}: hours are recorded on published or closed \
             projects only"
        ))),
    }
}

/// What to do with one row: return the first record of its key, or make a new one.
enum RowPlan {
    Replay(Box<ServiceRecord>),
    New { walk_in: bool },
}

/// Evaluates one row; `problems` collects what it breaks.
#[allow(clippy::too_many_arguments)]
fn plan_row(
    txn: &Txn<'_>,
    rules: &HoursSection,
    caller: &Caller,
    project: &ProjectView,
    row: &ServiceRow,
    keys_in_batch: &HashSet<&str>,
    pending: &PendingRows,
    problems: &mut Vec<Problem>,
) -> Result<Option<RowPlan>, DomainError> {
    if keys_in_batch.contains(row.idempotency_key.as_str()) {
        problems.push(Problem::Invalid {
            field: "idempotency_key",
            description: "is used by an earlier row of this roster: one key per row".into(),
        });
        return Ok(None);
    }
    // A retry returns the first record before any rule is checked again (it would overlap itself).
    if let Some(entry) = txn.get_json::<IdempotencyEntry>(&idempotency_key(&row.idempotency_key))? {
        let same = entry.project_id == project.project_id
            && entry.volunteer_number == row.volunteer_number
            && entry.start_time == row.start_time
            && entry.end_time == row.end_time;
        if !same {
            problems.push(Problem::Invalid {
                field: "idempotency_key",
                description: format!(
                    "was used for record {} with another project, volunteer or times: use a new key",
                    entry.record_id
                ),
            });
            return Ok(None);
        }
        return Ok(Some(RowPlan::Replay(Box::new(load(txn, &entry.record_id)?))));
    }
    if txn.get(volunteer::record_key(&row.volunteer_number).as_bytes())?.is_none() {
        problems.push(Problem::NotFound {
            field: "volunteer_number",
            kind: "volunteer",
            id: row.volunteer_number.clone(),
        });
        return Ok(None);
    }
    let accepted = txn
        .get_json::<SignUpView>(&signup_key(&project.project_id, &row.volunteer_number))?
        .is_some_and(|signup| signup.status == "accepted");
    let walk_in = !accepted;
    if walk_in {
        if !row.walk_in {
            problems.push(Problem::Conflict {
                field: "volunteer_number",
                message: format!(
                    "volunteer {} has no accepted sign-up on project {}: staff may record a walk-in",
                    row.volunteer_number, project.project_id
                ),
            });
        } else if !caller.has(Role::Staff) {
            problems.push(Problem::Denied {
                field: "walk_in",
                message: format!(
                    "volunteer {} has no accepted sign-up on project {}: only staff record walk-ins",
                    row.volunteer_number, project.project_id
                ),
            });
        }
    }
    check_interval(txn, rules, project, &row.volunteer_number, row.start_time, row.end_time, None, pending, problems)?;
    Ok(Some(RowPlan::New { walk_in }))
}

/// Writes a new record for a row that passed every rule.
fn create_record(
    txn: &mut Txn<'_>,
    node_code: &str,
    rules: &HoursSection,
    caller: &Caller,
    project: &ProjectView,
    row: ServiceRow,
    walk_in: bool,
) -> Result<ServiceRecord, DomainError> {
    let sequence = txn.next_seq("service_record")?;
    let record_id = format!("{node_code}-H{sequence:08}");
    let now = txn.now();
    let minutes_served =
        arithmetic::credited_minutes((row.end_time - row.start_time).num_seconds(), rules.rounding_minutes);
    let record = ServiceRecord {
        record_id: record_id.clone(),
        project_id: project.project_id.clone(),
        volunteer_number: row.volunteer_number,
        organising_team_id: project.organising_team_id.clone(),
        activity_kind: project.activity_kind.clone(),
        method: row.method,
        start_time: row.start_time,
        end_time: row.end_time,
        minutes_served,
        hours_x100: arithmetic::hours_x100(minutes_served),
        content: row.content,
        walk_in,
        state: RecordState::Recorded,
        correction_requested: None,
        version: 1,
        recorded_by: caller.account_id.clone(),
        recorded_at: now,
        confirmed_by: None,
        confirmed_at: None,
        revoke_reason: None,
        updated_at: now,
        idempotency_key: row.idempotency_key,
    };
    txn.put_json(
        idempotency_key(&record.idempotency_key),
        &IdempotencyEntry {
            record_id: record_id.clone(),
            project_id: record.project_id.clone(),
            volunteer_number: record.volunteer_number.clone(),
            start_time: record.start_time,
            end_time: record.end_time,
        },
    );
    txn.put(project_index_key(&record.project_id, &record_id), Vec::new());
    save(txn, &record, RecordAction::Recorded, &caller.account_id, recorded_reason(walk_in))?;
    Ok(record)
}

/// Records one volunteer's service on a project. The manager of the project's organising team, or staff.
pub fn record(
    txn: &mut Txn<'_>,
    node_code: &str,
    rules: &HoursSection,
    caller: &Caller,
    command: RecordService,
) -> Result<Recorded, DomainError> {
    txn.target = command.project_id.clone();
    let project = open_project(txn, caller, &command.project_id)?;
    let mut problems = Vec::new();
    let plan =
        plan_row(txn, rules, caller, &project, &command.row, &HashSet::new(), &PendingRows::default(), &mut problems)?;
    match plan {
        Some(RowPlan::Replay(record)) => {
            txn.target = record.record_id.clone();
            txn.detail = format!("idempotent retry of key {}", command.row.idempotency_key);
            Ok(Recorded { record: *record, replayed: true })
        }
        Some(RowPlan::New { walk_in }) if problems.is_empty() => {
            let record = create_record(txn, node_code, rules, caller, &project, command.row, walk_in)?;
            txn.target = record.record_id.clone();
            txn.detail = format!("volunteer {} on project {}", record.volunteer_number, record.project_id);
            Ok(Recorded { record, replayed: false })
        }
        _ => Err(single_refusal(problems)),
    }
}

/// Records a roster for one project: every row or none. Any broken rule of any row refuses the whole roster
/// with InvalidArgument listing every violation as `rows[i].<field>`.
pub fn record_bulk(
    txn: &mut Txn<'_>,
    node_code: &str,
    rules: &HoursSection,
    caller: &Caller,
    command: RecordServiceBulk,
) -> Result<Vec<Recorded>, DomainError> {
    txn.target = command.project_id.clone();
    if command.rows.len() > rules.bulk_rows_max as usize {
        return Err(DomainError::invalid(
            "rows",
            format!("must be at most {} rows (hours.bulk_rows_max), got {}", rules.bulk_rows_max, command.rows.len()),
        ));
    }
    let project = open_project(txn, caller, &command.project_id)?;
    let mut violations = Violations::new();
    let mut plans = Vec::with_capacity(command.rows.len());
    let mut pending = PendingRows::default();
    let mut keys: HashSet<&str> = HashSet::with_capacity(command.rows.len());
    for (index, row) in command.rows.iter().enumerate() {
        let mut problems = Vec::new();
        let plan = plan_row(txn, rules, caller, &project, row, &keys, &pending, &mut problems)?;
        keys.insert(&row.idempotency_key);
        for problem in &problems {
            violations.add(row_field(Some(index), problem.field()), problem.description());
        }
        if let Some(RowPlan::New { .. }) = &plan
            && problems.is_empty()
        {
            pending.push(&row.volunteer_number, row.start_time, row.end_time);
        }
        plans.push(plan);
    }
    violations.into_result()?;
    let mut recorded = Vec::with_capacity(plans.len());
    for (row, plan) in command.rows.into_iter().zip(plans) {
        match plan {
            Some(RowPlan::Replay(record)) => recorded.push(Recorded { record: *record, replayed: true }),
            Some(RowPlan::New { walk_in }) => {
                let record = create_record(txn, node_code, rules, caller, &project, row, walk_in)?;
                recorded.push(Recorded { record, replayed: false });
            }
            None => return Err(DomainError::Internal("a refused row passed the roster check".into())),
        }
    }
    txn.detail = format!("{} rows ({} new)", recorded.len(), recorded.iter().filter(|row| !row.replayed).count());
    Ok(recorded)
}

/// Certifies a record: only confirmed hours count. The organising team's manager, or staff. Confirming a
/// confirmed record changes nothing and returns it (a retry is harmless).
pub fn confirm(txn: &mut Txn<'_>, caller: &Caller, record_id: &str) -> Result<ServiceRecord, DomainError> {
    txn.target = record_id.to_string();
    let mut record = load(txn, record_id)?;
    check_certifies(caller, &record.organising_team_id, "confirming service hours")?;
    match record.state {
        RecordState::Confirmed => return Ok(record),
        RecordState::Revoked => {
            return Err(DomainError::FailedPrecondition(format!("record {record_id} is revoked")));
        }
        RecordState::Recorded => {}
    }
    if record.correction_requested.is_some() {
        return Err(DomainError::FailedPrecondition(format!(
            "record {record_id} has a pending correction request: amend the record or reject the request first"
        )));
    }
    let now = txn.now();
    record.state = RecordState::Confirmed;
    record.confirmed_by = Some(caller.account_id.clone());
    record.confirmed_at = Some(now);
    record.version += 1;
    record.updated_at = now;
    let mut change = hours_change(pb::ChangeKind::HoursConfirmed, &record);
    adjust_total(txn, &record, true, &mut change)?;
    record_hours_change(txn, &record.volunteer_number, change)?;
    save(txn, &record, RecordAction::Confirmed, &caller.account_id, "confirmed")?;
    Ok(record)
}

/// The volunteer reports an error in their own record (MCA Order 67). Their own account only.
pub fn request_correction(
    txn: &mut Txn<'_>,
    caller: &Caller,
    command: RequestCorrection,
) -> Result<ServiceRecord, DomainError> {
    txn.target = command.record_id.clone();
    let mut record = load(txn, &command.record_id)?;
    if !caller.is_volunteer(&record.volunteer_number) {
        return Err(DomainError::denied(format!(
            "a correction of record {} is requested by volunteer {} through their own account",
            record.record_id, record.volunteer_number
        )));
    }
    if record.state == RecordState::Revoked {
        return Err(DomainError::FailedPrecondition(format!("record {} is revoked", record.record_id)));
    }
    if record.correction_requested.is_some() {
        return Err(DomainError::FailedPrecondition(format!(
            "record {} already has a pending correction request",
            record.record_id
        )));
    }
    let now = txn.now();
    record.correction_requested = Some(Correction {
        reason: command.reason.clone(),
        proposed_start_time: command.proposed_times.map(|(start, _)| start),
        proposed_end_time: command.proposed_times.map(|(_, end)| end),
        proposed_content: command.proposed_content,
        requested_by: caller.account_id.clone(),
        requested_at: now,
    });
    record.version += 1;
    record.updated_at = now;
    txn.detail = command.reason.clone();
    save(txn, &record, RecordAction::CorrectionRequested, &caller.account_id, &command.reason)?;
    Ok(record)
}

/// The team verified a correction request and found the record right. The organising team's manager, or staff.
pub fn reject_correction(
    txn: &mut Txn<'_>,
    caller: &Caller,
    command: RejectCorrection,
) -> Result<ServiceRecord, DomainError> {
    txn.target = command.record_id.clone();
    let mut record = load(txn, &command.record_id)?;
    check_certifies(caller, &record.organising_team_id, "answering a correction request")?;
    if record.correction_requested.is_none() {
        return Err(DomainError::FailedPrecondition(format!(
            "record {} has no pending correction request",
            record.record_id
        )));
    }
    record.correction_requested = None;
    record.version += 1;
    record.updated_at = txn.now();
    txn.detail = command.reason.clone();
    save(txn, &record, RecordAction::CorrectionRejected, &caller.account_id, &command.reason)?;
    Ok(record)
}

/// Amends a record's times or content as a new version; clears a pending correction request. The organising
/// team's manager, or staff. New times are checked against every time rule (the record itself aside) and
/// re-rounded by the rule in force; a confirmed record stays confirmed, certified by the amender, and the
/// volunteer's total moves by the difference.
pub fn amend(
    txn: &mut Txn<'_>,
    rules: &HoursSection,
    caller: &Caller,
    command: AmendServiceRecord,
) -> Result<ServiceRecord, DomainError> {
    txn.target = command.record_id.clone();
    let old = load(txn, &command.record_id)?;
    check_certifies(caller, &old.organising_team_id, "amending service hours")?;
    if let Some(expected) = command.expected_version
        && expected != old.version
    {
        return Err(DomainError::FailedPrecondition(format!(
            "record {} is at version {}, not {expected}: reload it and amend again",
            old.record_id, old.version
        )));
    }
    if old.state == RecordState::Revoked {
        return Err(DomainError::FailedPrecondition(format!("record {} is revoked", old.record_id)));
    }
    let mut new = old.clone();
    if let Some((start, end)) = command.times
        && (start, end) != (old.start_time, old.end_time)
    {
        let project = load_project(txn, &old.project_id)?;
        let mut problems = Vec::new();
        check_interval(
            txn,
            rules,
            &project,
            &old.volunteer_number,
            start,
            end,
            Some(&old.record_id),
            &PendingRows::default(),
            &mut problems,
        )?;
        if !problems.is_empty() {
            return Err(single_refusal(problems));
        }
        new.start_time = start;
        new.end_time = end;
        new.minutes_served = arithmetic::credited_minutes((end - start).num_seconds(), rules.rounding_minutes);
        new.hours_x100 = arithmetic::hours_x100(new.minutes_served);
        // The new entry is written with the new version (`save`).
        txn.delete(volunteer_index_key(&old.volunteer_number, old.start_time, &old.record_id));
    }
    if let Some(content) = command.content {
        new.content = content;
    }
    let now = txn.now();
    new.correction_requested = None;
    new.version += 1;
    new.updated_at = now;
    if old.state == RecordState::Confirmed {
        // The amender has the confirmer's authority and certifies the new version.
        new.confirmed_by = Some(caller.account_id.clone());
        new.confirmed_at = Some(now);
        let mut change = hours_change(pb::ChangeKind::HoursAmended, &new);
        adjust_total(txn, &old, false, &mut change)?;
        adjust_total(txn, &new, true, &mut change)?;
        record_hours_change(txn, &new.volunteer_number, change)?;
    }
    txn.detail = command.reason.clone();
    save(txn, &new, RecordAction::Amended, &caller.account_id, &command.reason)?;
    Ok(new)
}

/// Revokes a record (final): its hours leave the volunteer's total if they were confirmed. The organising
/// team's manager, or staff.
pub fn revoke(txn: &mut Txn<'_>, caller: &Caller, command: RevokeServiceRecord) -> Result<ServiceRecord, DomainError> {
    txn.target = command.record_id.clone();
    let mut record = load(txn, &command.record_id)?;
    check_certifies(caller, &record.organising_team_id, "revoking service hours")?;
    match record.state {
        RecordState::Revoked => {
            return Err(DomainError::FailedPrecondition(format!("record {} is already revoked", record.record_id)));
        }
        RecordState::Confirmed => {
            let mut change = hours_change(pb::ChangeKind::HoursRevoked, &record);
            adjust_total(txn, &record, false, &mut change)?;
            record_hours_change(txn, &record.volunteer_number, change)?;
        }
        RecordState::Recorded => {}
    }
    record.state = RecordState::Revoked;
    record.revoke_reason = Some(command.reason.clone());
    record.correction_requested = None;
    record.version += 1;
    record.updated_at = txn.now();
    txn.detail = command.reason.clone();
    save(txn, &record, RecordAction::Revoked, &caller.account_id, &command.reason)?;
    Ok(record)
}

/// Who may read a record: staff, the manager of its organising team, the volunteer themself.
fn check_can_read(caller: &Caller, record: &ServiceRecord) -> Result<(), DomainError> {
    if certifies(caller, &record.organising_team_id) || caller.is_volunteer(&record.volunteer_number) {
        return Ok(());
    }
    Err(DomainError::denied(format!(
        "record {} is visible to staff, the manager of team {} and volunteer {}",
        record.record_id, record.organising_team_id, record.volunteer_number
    )))
}

/// One record with every version, oldest first.
pub fn get(
    store: &dyn Store,
    caller: &Caller,
    record_id: &str,
) -> Result<(ServiceRecord, Vec<ServiceRecordVersion>), DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager, Role::Volunteer], "reading service hours")?;
    let record: ServiceRecord = store::get_json(store, record_key(record_id).as_bytes())?
        .ok_or_else(|| DomainError::not_found("service record", record_id))?;
    check_can_read(caller, &record)?;
    let mut versions = Vec::new();
    let mut failure = None;
    store.scan(format!("svc_v/{record_id}/").as_bytes(), None, &mut |key, value| match store::decode::<
        ServiceRecordVersion,
    >(key, value)
    {
        Ok(version) => {
            versions.push(version);
            ControlFlow::Continue(())
        }
        Err(error) => {
            failure = Some(error);
            ControlFlow::Break(())
        }
    })?;
    if let Some(error) = failure {
        return Err(error.into());
    }
    // A record that never changed is its own first version (see `save`).
    if versions.is_empty() {
        versions.push(first_version(&record));
    }
    Ok((record, versions))
}

/// Records of a project or of a volunteer, optionally in one state. Staff see all; a team manager the records
/// of their team's projects; a volunteer their own records only.
pub fn list(
    store: &dyn Store,
    caller: &Caller,
    query: &ListServiceRecords,
    page: &PageRequest,
) -> Result<Page<ServiceRecord>, DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager, Role::Volunteer], "listing service hours")?;
    if !caller.has(Role::Staff) && !caller.has(Role::TeamManager) {
        let own = query.volunteer_number.as_deref().is_some_and(|number| caller.is_volunteer(number));
        if !own {
            return Err(DomainError::denied("a volunteer lists their own service records only: give their number"));
        }
    }
    let prefix = match (&query.project_id, &query.volunteer_number) {
        (Some(project_id), _) => format!("svc_proj/{project_id}/"),
        (None, Some(volunteer_number)) => volunteer_index_prefix(volunteer_number),
        (None, None) => return Err(DomainError::invalid("project_id", "give project_id, volunteer_number or both")),
    };
    crate::page::collect(store, &prefix, page, |key, _| {
        let Some(record) = store::get_json::<ServiceRecord>(store, record_key(&record_id_of(key)).as_bytes())? else {
            return Ok(None);
        };
        let matches = query.volunteer_number.as_ref().is_none_or(|number| *number == record.volunteer_number)
            && query.state.is_none_or(|state| state == record.state)
            && check_can_read(caller, &record).is_ok();
        Ok(matches.then_some(record))
    })
}

// ----- wire conversions -----

impl From<RecordingMethod> for pb::RecordingMethod {
    fn from(method: RecordingMethod) -> Self {
        match method {
            RecordingMethod::CheckInOut => pb::RecordingMethod::CheckInOut,
            RecordingMethod::Interval => pb::RecordingMethod::Interval,
        }
    }
}

impl From<RecordState> for pb::ServiceRecordState {
    fn from(state: RecordState) -> Self {
        match state {
            RecordState::Recorded => pb::ServiceRecordState::Recorded,
            RecordState::Confirmed => pb::ServiceRecordState::Confirmed,
            RecordState::Revoked => pb::ServiceRecordState::Revoked,
        }
    }
}

impl From<RecordAction> for pb::ServiceRecordAction {
    fn from(action: RecordAction) -> Self {
        match action {
            RecordAction::Recorded => pb::ServiceRecordAction::Recorded,
            RecordAction::Confirmed => pb::ServiceRecordAction::Confirmed,
            RecordAction::CorrectionRequested => pb::ServiceRecordAction::CorrectionRequested,
            RecordAction::CorrectionRejected => pb::ServiceRecordAction::CorrectionRejected,
            RecordAction::Amended => pb::ServiceRecordAction::Amended,
            RecordAction::Revoked => pb::ServiceRecordAction::Revoked,
        }
    }
}

impl From<&Correction> for pb::CorrectionRequest {
    fn from(correction: &Correction) -> Self {
        pb::CorrectionRequest {
            reason: correction.reason.clone(),
            proposed_start_time: wire::optional_timestamp(correction.proposed_start_time),
            proposed_end_time: wire::optional_timestamp(correction.proposed_end_time),
            proposed_content: correction.proposed_content.clone().unwrap_or_default(),
            requested_by: correction.requested_by.clone(),
            requested_at: Some(wire::timestamp(correction.requested_at)),
        }
    }
}

impl From<&ServiceRecord> for pb::ServiceRecord {
    fn from(record: &ServiceRecord) -> Self {
        pb::ServiceRecord {
            record_id: record.record_id.clone(),
            project_id: record.project_id.clone(),
            volunteer_number: record.volunteer_number.clone(),
            organising_team_id: record.organising_team_id.clone(),
            activity_kind: record.activity_kind.clone(),
            method: pb::RecordingMethod::from(record.method) as i32,
            start_time: Some(wire::timestamp(record.start_time)),
            end_time: Some(wire::timestamp(record.end_time)),
            minutes_served: record.minutes_served,
            hours_x100: record.hours_x100,
            content: record.content.clone(),
            walk_in: record.walk_in,
            state: pb::ServiceRecordState::from(record.state) as i32,
            correction_requested: record.correction_requested.is_some(),
            correction: record.correction_requested.as_ref().map(pb::CorrectionRequest::from),
            version: record.version,
            recorded_by: record.recorded_by.clone(),
            recorded_at: Some(wire::timestamp(record.recorded_at)),
            confirmed_by: record.confirmed_by.clone().unwrap_or_default(),
            confirmed_at: wire::optional_timestamp(record.confirmed_at),
            revoke_reason: record.revoke_reason.clone().unwrap_or_default(),
            updated_at: Some(wire::timestamp(record.updated_at)),
        }
    }
}

impl From<&ServiceRecordVersion> for pb::ServiceRecordVersion {
    fn from(version: &ServiceRecordVersion) -> Self {
        pb::ServiceRecordVersion {
            version: version.version,
            action: pb::ServiceRecordAction::from(version.action) as i32,
            state: pb::ServiceRecordState::from(version.state) as i32,
            start_time: Some(wire::timestamp(version.start_time)),
            end_time: Some(wire::timestamp(version.end_time)),
            minutes_served: version.minutes_served,
            hours_x100: version.hours_x100,
            content: version.content.clone(),
            correction_requested: version.correction_requested,
            changed_by: version.changed_by.clone(),
            changed_at: Some(wire::timestamp(version.changed_at)),
            reason: version.reason.clone(),
        }
    }
}
