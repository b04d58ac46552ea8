//! Social supervision reports (activity kind 3 of the guidance): a volunteer's report of damage to the environment
//! or a violation, registered for the ecology bureau, moved forward received → referred → closed by staff.
//!
//! Environmental Protection Law art. 57: the reporter stays confidential. The reporter's identity (volunteer number
//! and name) is shown only to staff of this node and to the reporter themself; no other role may read a report at
//! all (least privilege). The audit target of every write is the report id only, and the audit detail never names
//! the reporter; logs carry no report content. Reports never leave the node (the federation replicates none).
//!
//! Keys: `report/<id>` the report (`{code}-R{seq:06}`, sequence `report`); `report_st/<status>/<id>` the status
//! index (moved in the same write as each step); `vol_report/<volunteer>/<id>` the reporter's own reports.

use chrono::{DateTime, Duration, Utc};
use ecovol_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::commit::Txn;
use crate::error::{DomainError, Violations};
use crate::page::{Page, PageRequest};
use crate::registry::volunteer;
use crate::store::{self, Store};
use crate::wire;

/// Longest place text, characters.
pub const PLACE_CHARS_MAX: usize = 200;
/// Longest description, characters.
pub const DESCRIPTION_CHARS_MAX: usize = 2000;
/// Longest note of a step, characters.
pub const NOTE_CHARS_MAX: usize = 500;
/// Clock difference tolerated between a client and the node when checking "not in the future".
const CLOCK_SKEW_SECONDS: i64 = 60;

/// What a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportCategory {
    Water,
    Air,
    Soil,
    Noise,
    SolidWaste,
    EcologicalDamage,
    Other,
}

/// Where a report stands; it only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    Received,
    Referred,
    Closed,
}

impl ReportStatus {
    pub fn label(self) -> &'static str {
        match self {
            ReportStatus::Received => "received",
            ReportStatus::Referred => "referred",
            ReportStatus::Closed => "closed",
        }
    }
}

/// One step of a report's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportEvent {
    pub status: ReportStatus,
    pub note: String,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
}

/// A report as stored under `report/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisionReport {
    pub report_id: String,
    pub place: String,
    pub occurred_at: DateTime<Utc>,
    pub description: String,
    pub category: ReportCategory,
    pub status: ReportStatus,
    pub history: Vec<ReportEvent>,
    pub submitted_at: DateTime<Utc>,
    /// Confidential (Environmental Protection Law art. 57): see the module note.
    pub reporter_volunteer_number: String,
}

pub fn report_key(report_id: &str) -> String {
    format!("report/{report_id}")
}

fn status_key(status: ReportStatus, report_id: &str) -> String {
    format!("report_st/{}/{report_id}", status.label())
}

fn reporter_key(volunteer_number: &str, report_id: &str) -> String {
    format!("vol_report/{volunteer_number}/{report_id}")
}

// ----- commands -----

/// A validated submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitReport {
    pub place: String,
    pub occurred_at: DateTime<Utc>,
    pub description: String,
    pub category: ReportCategory,
    pub reporter_volunteer_number: String,
}

fn category(value: i32) -> Option<ReportCategory> {
    match pb::ReportCategory::try_from(value).ok()? {
        pb::ReportCategory::Unspecified => None,
        pb::ReportCategory::Water => Some(ReportCategory::Water),
        pb::ReportCategory::Air => Some(ReportCategory::Air),
        pb::ReportCategory::Soil => Some(ReportCategory::Soil),
        pb::ReportCategory::Noise => Some(ReportCategory::Noise),
        pb::ReportCategory::SolidWaste => Some(ReportCategory::SolidWaste),
        pb::ReportCategory::EcologicalDamage => Some(ReportCategory::EcologicalDamage),
        pb::ReportCategory::Other => Some(ReportCategory::Other),
    }
}

fn status(value: i32) -> Option<ReportStatus> {
    match pb::ReportStatus::try_from(value).ok()? {
        pb::ReportStatus::Unspecified => None,
        pb::ReportStatus::Received => Some(ReportStatus::Received),
        pb::ReportStatus::Referred => Some(ReportStatus::Referred),
        pb::ReportStatus::Closed => Some(ReportStatus::Closed),
    }
}

fn check_volunteer_number(violations: &mut Violations, field: &str, number: &str) {
    if let Err(DomainError::Invalid(found)) = volunteer::parse_volunteer_number(number) {
        for violation in found {
            violations.add(field, violation.description);
        }
    }
}

fn check_report_id(violations: &mut Violations, report_id: &str) {
    if report_id.is_empty() {
        violations.add("report_id", "is required");
    } else if report_id.len() > 32 || !report_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        violations.add("report_id", "is not a report id (like 330106-R000042)");
    }
}

impl SubmitReport {
    /// Validates a submission; `now` is the node's clock (the time seen may not be in the future).
    pub fn parse(request: pb::SubmitReportRequest, now: DateTime<Utc>) -> Result<Self, DomainError> {
        let mut violations = Violations::new();
        violations.text("place", &request.place, PLACE_CHARS_MAX);
        violations.text("description", &request.description, DESCRIPTION_CHARS_MAX);
        let occurred_at = match request.occurred_at.as_ref().map(wire::from_timestamp) {
            None => {
                violations.add("occurred_at", "is required");
                None
            }
            Some(None) => {
                violations.add("occurred_at", "is not a valid timestamp");
                None
            }
            Some(Some(time)) if time > now + Duration::seconds(CLOCK_SKEW_SECONDS) => {
                violations.add("occurred_at", "must not be in the future");
                None
            }
            Some(Some(time)) => Some(time),
        };
        let category = category(request.category);
        if category.is_none() {
            violations.add("category", "is required: water, air, soil, noise, solid waste, ecological damage or other");
        }
        check_volunteer_number(&mut violations, "reporter_volunteer_number", &request.reporter_volunteer_number);
        violations.into_result()?;
        match (occurred_at, category) {
            (Some(occurred_at), Some(category)) => Ok(SubmitReport {
                place: request.place.trim().to_string(),
                occurred_at,
                description: request.description.trim().to_string(),
                category,
                reporter_volunteer_number: request.reporter_volunteer_number,
            }),
            _ => Err(DomainError::Internal("fields checked above".into())),
        }
    }
}

/// A validated step forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvanceReport {
    pub report_id: String,
    pub status: ReportStatus,
    pub note: String,
}

impl TryFrom<pb::AdvanceReportRequest> for AdvanceReport {
    type Error = DomainError;

    fn try_from(request: pb::AdvanceReportRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_report_id(&mut violations, &request.report_id);
        let next = status(request.status);
        match next {
            None => violations.add("status", "is required: referred or closed"),
            Some(ReportStatus::Received) => violations.add("status", "must be referred or closed"),
            Some(_) => {}
        }
        violations.text("note", &request.note, NOTE_CHARS_MAX);
        violations.into_result()?;
        let status = next.ok_or_else(|| DomainError::Internal("status checked above".into()))?;
        Ok(AdvanceReport { report_id: request.report_id, status, note: request.note.trim().to_string() })
    }
}

/// Checks a report id given on the wire.
pub fn parse_report_id(report_id: &str) -> Result<String, DomainError> {
    let mut violations = Violations::new();
    check_report_id(&mut violations, report_id);
    violations.into_result()?;
    Ok(report_id.to_string())
}

/// The status filter of a list (unset: every status).
pub fn parse_status_filter(value: i32) -> Result<Option<ReportStatus>, DomainError> {
    match pb::ReportStatus::try_from(value) {
        Ok(pb::ReportStatus::Unspecified) => Ok(None),
        Ok(_) => Ok(status(value)),
        Err(_) => Err(DomainError::invalid("status", "is not a report status")),
    }
}

// ----- use-cases -----

/// Registers a report: the volunteer through their own account, or staff on their behalf.
pub fn submit(
    txn: &mut Txn<'_>,
    node_code: &str,
    caller: &Caller,
    command: SubmitReport,
) -> Result<SupervisionReport, DomainError> {
    if !caller.has(Role::Staff) && !caller.is_volunteer(&command.reporter_volunteer_number) {
        return Err(DomainError::denied(
            "a supervision report is submitted by the volunteer through their own account, or by staff",
        ));
    }
    // The reporter must be registered here; the refusal names no one beyond what the caller sent.
    volunteer::load(txn, &command.reporter_volunteer_number)?;
    let now = txn.now();
    let report_id = format!("{node_code}-R{:06}", txn.next_seq("report")?);
    txn.target = report_id.clone();
    let report = SupervisionReport {
        report_id: report_id.clone(),
        place: command.place,
        occurred_at: command.occurred_at,
        description: command.description,
        category: command.category,
        status: ReportStatus::Received,
        history: vec![ReportEvent {
            status: ReportStatus::Received,
            note: String::new(),
            changed_by: caller.account_id.clone(),
            changed_at: now,
        }],
        submitted_at: now,
        reporter_volunteer_number: command.reporter_volunteer_number,
    };
    txn.put_json(report_key(&report_id), &report);
    txn.put(status_key(report.status, &report_id), Vec::new());
    txn.put(reporter_key(&report.reporter_volunteer_number, &report_id), Vec::new());
    Ok(report)
}

/// Moves a report forward (staff), never back and never to the same status; each step keeps its note.
pub fn advance(txn: &mut Txn<'_>, caller: &Caller, command: AdvanceReport) -> Result<SupervisionReport, DomainError> {
    txn.target = command.report_id.clone();
    caller.require_any(&[Role::Staff], "moving a supervision report forward")?;
    let mut report: SupervisionReport = txn
        .get_json(&report_key(&command.report_id))?
        .ok_or_else(|| DomainError::not_found("supervision report", &command.report_id))?;
    if command.status <= report.status {
        return Err(DomainError::FailedPrecondition(format!(
            "report {} is {}: it moves only forward (received → referred → closed)",
            report.report_id,
            report.status.label()
        )));
    }
    txn.delete(status_key(report.status, &report.report_id));
    txn.put(status_key(command.status, &report.report_id), Vec::new());
    report.status = command.status;
    report.history.push(ReportEvent {
        status: command.status,
        note: command.note,
        changed_by: caller.account_id.clone(),
        changed_at: txn.now(),
    });
    txn.put_json(report_key(&report.report_id), &report);
    txn.detail = format!("to {}", command.status.label());
    Ok(report)
}

/// One report: staff, or the reporter for their own report.
pub fn get(store: &dyn Store, caller: &Caller, report_id: &str) -> Result<SupervisionReport, DomainError> {
    caller.require_any(&[Role::Staff, Role::Volunteer], "reading a supervision report")?;
    let report: SupervisionReport = store::get_json(store, report_key(report_id).as_bytes())?
        .ok_or_else(|| DomainError::not_found("supervision report", report_id))?;
    if caller.has(Role::Staff) || caller.is_volunteer(&report.reporter_volunteer_number) {
        return Ok(report);
    }
    // The same answer as for a report that does not exist: a volunteer learns nothing of others' reports.
    Err(DomainError::not_found("supervision report", report_id))
}

/// Reports, optionally in one status (staff only).
pub fn list(
    store: &dyn Store,
    caller: &Caller,
    status: Option<ReportStatus>,
    page: &PageRequest,
) -> Result<Page<SupervisionReport>, DomainError> {
    caller.require_any(&[Role::Staff], "listing supervision reports")?;
    match status {
        Some(status) => {
            let prefix = format!("report_st/{}/", status.label());
            crate::page::collect(store, &prefix, page, |key, _| {
                let report_id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                Ok(store::get_json(store, report_key(&report_id).as_bytes())?)
            })
        }
        None => crate::page::collect(store, "report/", page, |key, value| Ok(Some(store::decode(key, value)?))),
    }
}

/// Names of volunteers for reports shown to a caller allowed to see the reporter.
pub fn reporter_name(store: &dyn Store, volunteer_number: &str) -> Result<String, DomainError> {
    let record: Option<volunteer::VolunteerRecord> =
        store::get_json(store, volunteer::record_key(volunteer_number).as_bytes())?;
    Ok(record.map(|record| record.name).unwrap_or_default())
}

// ----- wire -----

impl From<ReportCategory> for pb::ReportCategory {
    fn from(category: ReportCategory) -> Self {
        match category {
            ReportCategory::Water => pb::ReportCategory::Water,
            ReportCategory::Air => pb::ReportCategory::Air,
            ReportCategory::Soil => pb::ReportCategory::Soil,
            ReportCategory::Noise => pb::ReportCategory::Noise,
            ReportCategory::SolidWaste => pb::ReportCategory::SolidWaste,
            ReportCategory::EcologicalDamage => pb::ReportCategory::EcologicalDamage,
            ReportCategory::Other => pb::ReportCategory::Other,
        }
    }
}

impl From<ReportStatus> for pb::ReportStatus {
    fn from(status: ReportStatus) -> Self {
        match status {
            ReportStatus::Received => pb::ReportStatus::Received,
            ReportStatus::Referred => pb::ReportStatus::Referred,
            ReportStatus::Closed => pb::ReportStatus::Closed,
        }
    }
}

impl SupervisionReport {
    /// The wire form; `reporter` is `(volunteer number, name)` and is given only to callers allowed to see it
    /// (staff of this node, the reporter themself).
    pub fn to_pb(&self, reporter: Option<(String, String)>) -> pb::SupervisionReport {
        let (reporter_volunteer_number, reporter_name) = reporter.unwrap_or_default();
        pb::SupervisionReport {
            report_id: self.report_id.clone(),
            place: self.place.clone(),
            occurred_at: Some(wire::timestamp(self.occurred_at)),
            description: self.description.clone(),
            category: pb::ReportCategory::from(self.category) as i32,
            status: pb::ReportStatus::from(self.status) as i32,
            history: self
                .history
                .iter()
                .map(|event| pb::ReportEvent {
                    status: pb::ReportStatus::from(event.status) as i32,
                    note: event.note.clone(),
                    changed_by: event.changed_by.clone(),
                    changed_at: Some(wire::timestamp(event.changed_at)),
                })
                .collect(),
            submitted_at: Some(wire::timestamp(self.submitted_at)),
            reporter_volunteer_number,
            reporter_name,
        }
    }
}

/// True if `caller` may see who reported `report`: staff of this node, or the reporter themself.
pub fn sees_reporter(caller: &Caller, report: &SupervisionReport) -> bool {
    caller.has(Role::Staff) || caller.is_volunteer(&report.reporter_volunteer_number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T10:00:00+08:00").unwrap().with_timezone(&Utc)
    }

    fn valid() -> pb::SubmitReportRequest {
        pb::SubmitReportRequest {
            place: "西溪湿地东侧排水口".into(),
            occurred_at: Some(wire::timestamp(now() - Duration::hours(2))),
            description: "排水口有黑色污水流入河道".into(),
            category: pb::ReportCategory::Water as i32,
            reporter_volunteer_number: "330106-00000001".into(),
        }
    }

    fn check(request: pb::SubmitReportRequest, expected: &[&str]) {
        match SubmitReport::parse(request.clone(), now()) {
            Ok(_) => assert!(expected.is_empty(), "{request:?} should break {expected:?}"),
            Err(DomainError::Invalid(violations)) => {
                let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
                assert_eq!(fields, expected, "{request:?}");
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn submissions_are_validated() {
        check(valid(), &[]);
        check(pb::SubmitReportRequest { place: "x".repeat(201), ..valid() }, &["place"]);
        check(pb::SubmitReportRequest { place: "x".repeat(200), ..valid() }, &[]);
        check(pb::SubmitReportRequest { description: "污".repeat(2001), ..valid() }, &["description"]);
        check(
            pb::SubmitReportRequest { occurred_at: Some(wire::timestamp(now() + Duration::hours(1))), ..valid() },
            &["occurred_at"],
        );
        check(pb::SubmitReportRequest { category: 99, ..valid() }, &["category"]);
        check(
            pb::SubmitReportRequest::default(),
            &["place", "description", "occurred_at", "category", "reporter_volunteer_number"],
        );
    }

    #[test]
    fn steps_are_validated() {
        let step = |status: pb::ReportStatus, note: &str| pb::AdvanceReportRequest {
            report_id: "330106-R000001".into(),
            status: status as i32,
            note: note.into(),
        };
        assert!(AdvanceReport::try_from(step(pb::ReportStatus::Referred, "转交执法大队")).is_ok());
        let fields = |request| match AdvanceReport::try_from(request) {
            Err(DomainError::Invalid(violations)) => violations.into_iter().map(|v| v.field).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(fields(step(pb::ReportStatus::Received, "x")), ["status"]);
        assert_eq!(fields(step(pb::ReportStatus::Unspecified, "")), ["status", "note"]);
        assert_eq!(
            fields(pb::AdvanceReportRequest { report_id: "a/b".into(), ..step(pb::ReportStatus::Closed, "结案") }),
            ["report_id"]
        );
    }

    #[test]
    fn statuses_only_move_forward_in_order() {
        assert!(ReportStatus::Received < ReportStatus::Referred);
        assert!(ReportStatus::Referred < ReportStatus::Closed);
    }
}
