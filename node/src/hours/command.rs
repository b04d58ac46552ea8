//! The validated commands of the service-hours API: every `TryFrom<pb::…>` here checks the request's own fields
//! and reports every broken rule at once (rules that need the store are checked by the use-cases).

use chrono::{DateTime, TimeZone, Utc};
use ecovol_proto::v1 as pb;

use super::{RecordState, RecordingMethod, row_field};
use crate::error::{DomainError, Violations};
use crate::registry::volunteer;
use crate::wire;

/// Longest content, reason or proposed content accepted, characters.
pub const TEXT_CHARS_MAX: usize = 500;
/// Longest idempotency key accepted, characters.
pub const IDEMPOTENCY_KEY_CHARS_MAX: usize = 64;
/// Longest project or record id accepted, characters (`330106-H00000042` is 16).
const ID_CHARS_MAX: usize = 32;

/// One validated row of service (a single record or a roster row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    pub volunteer_number: String,
    pub method: RecordingMethod,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub content: String,
    pub walk_in: bool,
    pub idempotency_key: String,
}

/// A validated single recording.
#[derive(Debug, Clone)]
pub struct RecordService {
    pub project_id: String,
    pub row: ServiceRow,
}

/// A validated roster.
#[derive(Debug, Clone)]
pub struct RecordServiceBulk {
    pub project_id: String,
    pub rows: Vec<ServiceRow>,
}

/// A validated reference to one record (confirm, get).
#[derive(Debug, Clone)]
pub struct RecordTarget {
    pub record_id: String,
}

/// A validated correction request.
#[derive(Debug, Clone)]
pub struct RequestCorrection {
    pub record_id: String,
    pub reason: String,
    pub proposed_times: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub proposed_content: Option<String>,
}

/// A validated rejection of a correction request.
#[derive(Debug, Clone)]
pub struct RejectCorrection {
    pub record_id: String,
    pub reason: String,
}

/// A validated amendment: at least one of new times and new content.
#[derive(Debug, Clone)]
pub struct AmendServiceRecord {
    pub record_id: String,
    /// Refuse unless the record is at this version.
    pub expected_version: Option<u32>,
    pub times: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub content: Option<String>,
    pub reason: String,
}

/// A validated revocation.
#[derive(Debug, Clone)]
pub struct RevokeServiceRecord {
    pub record_id: String,
    pub reason: String,
}

/// A validated list query. Paging comes separately.
#[derive(Debug, Clone, Default)]
pub struct ListServiceRecords {
    pub project_id: Option<String>,
    pub volunteer_number: Option<String>,
    pub state: Option<RecordState>,
}

/// Checks an id (project or record): short, ASCII letters, digits and '-', so it can sit inside store keys.
fn check_id(violations: &mut Violations, field: &str, id: &str, example: &str) {
    if id.is_empty() {
        violations.add(field, "is required");
    } else if id.len() > ID_CHARS_MAX || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        violations.add(field, format!("is not an id (like {example})"));
    }
}

fn check_record_id(violations: &mut Violations, record_id: &str) {
    check_id(violations, "record_id", record_id, "330106-H00000042");
}

/// Adds the volunteer registry's own number check under `field`.
fn check_volunteer_number(violations: &mut Violations, field: &str, number: &str) {
    if let Err(DomainError::Invalid(found)) = volunteer::parse_volunteer_number(number) {
        for violation in found {
            violations.add(field, violation.description);
        }
    }
}

/// The earliest time a record may name; also keeps index keys (milliseconds since 1970) in order.
fn earliest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A required timestamp.
fn required_time(
    violations: &mut Violations,
    field: &str,
    timestamp: Option<&prost_types::Timestamp>,
) -> Option<DateTime<Utc>> {
    let Some(timestamp) = timestamp else {
        violations.add(field, "is required");
        return None;
    };
    match wire::from_timestamp(timestamp) {
        Some(time) if time >= earliest() => Some(time),
        Some(_) => {
            violations.add(field, "must be in 2000 or later");
            None
        }
        None => {
            violations.add(field, "is not a valid timestamp");
            None
        }
    }
}

/// An interval given as two timestamps, both or neither (`None` when neither); end after start.
fn optional_interval(
    violations: &mut Violations,
    start_field: &str,
    end_field: &str,
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if start.is_none() && end.is_none() {
        return None;
    }
    if start.is_none() {
        violations.add(start_field, format!("is required with {end_field}: give both or neither"));
    }
    if end.is_none() {
        violations.add(end_field, format!("is required with {start_field}: give both or neither"));
    }
    let (start, end) = (start?, end?);
    let start = required_time(violations, start_field, Some(start));
    let end = required_time(violations, end_field, Some(end));
    let (start, end) = (start?, end?);
    if end <= start {
        violations.add(end_field, format!("must be after {start_field}"));
        return None;
    }
    Some((start, end))
}

fn method(value: i32) -> Option<RecordingMethod> {
    match pb::RecordingMethod::try_from(value).ok()? {
        pb::RecordingMethod::Unspecified => None,
        pb::RecordingMethod::CheckInOut => Some(RecordingMethod::CheckInOut),
        pb::RecordingMethod::Interval => Some(RecordingMethod::Interval),
    }
}

fn check_idempotency_key(violations: &mut Violations, field: &str, key: &str) {
    if key.is_empty() {
        violations.add(field, "is required: a retry with the same key returns the first record");
    } else if key.chars().count() > IDEMPOTENCY_KEY_CHARS_MAX {
        violations.add(field, format!("must be at most {IDEMPOTENCY_KEY_CHARS_MAX} characters"));
    } else if !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')) {
        violations.add(field, "must be letters, digits and . _ : - only");
    }
}

/// Validates one row; fields are named `rows[i].<field>` for roster rows, plain for a single record.
fn parse_row(violations: &mut Violations, index: Option<usize>, row: pb::ServiceRow) -> Option<ServiceRow> {
    let field = |name: &str| row_field(index, name);
    check_volunteer_number(violations, &field("volunteer_number"), &row.volunteer_number);
    let method = method(row.method);
    if method.is_none() {
        violations.add(field("method"), "is required: check-in/check-out or interval");
    }
    let start = required_time(violations, &field("start_time"), row.start_time.as_ref());
    let end = required_time(violations, &field("end_time"), row.end_time.as_ref());
    if let (Some(start), Some(end)) = (start, end)
        && end <= start
    {
        violations.add(field("end_time"), "must be after start_time");
    }
    violations.text(&field("content"), &row.content, TEXT_CHARS_MAX);
    check_idempotency_key(violations, &field("idempotency_key"), &row.idempotency_key);
    Some(ServiceRow {
        volunteer_number: row.volunteer_number,
        method: method?,
        start_time: start?,
        end_time: end?,
        content: row.content.trim().to_string(),
        walk_in: row.walk_in,
        idempotency_key: row.idempotency_key,
    })
}

/// Unwraps a value the validation has already proved present.
fn checked<T>(value: Option<T>) -> Result<T, DomainError> {
    value.ok_or_else(|| DomainError::Internal("validation passed with a missing field".into()))
}

impl TryFrom<pb::RecordServiceRequest> for RecordService {
    type Error = DomainError;

    fn try_from(request: pb::RecordServiceRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_id(&mut violations, "project_id", &request.project_id, "330106-P000001");
        let row = parse_row(
            &mut violations,
            None,
            pb::ServiceRow {
                volunteer_number: request.volunteer_number,
                method: request.method,
                start_time: request.start_time,
                end_time: request.end_time,
                content: request.content,
                walk_in: request.walk_in,
                idempotency_key: request.idempotency_key,
            },
        );
        violations.into_result()?;
        Ok(Self { project_id: request.project_id, row: checked(row)? })
    }
}

impl TryFrom<pb::RecordServiceBulkRequest> for RecordServiceBulk {
    type Error = DomainError;

    fn try_from(request: pb::RecordServiceBulkRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_id(&mut violations, "project_id", &request.project_id, "330106-P000001");
        if request.rows.is_empty() {
            violations.add("rows", "is required: at least one row");
        }
        let rows: Vec<Option<ServiceRow>> = request
            .rows
            .into_iter()
            .enumerate()
            .map(|(index, row)| parse_row(&mut violations, Some(index), row))
            .collect();
        violations.into_result()?;
        Ok(Self { project_id: request.project_id, rows: rows.into_iter().map(checked).collect::<Result<_, _>>()? })
    }
}

impl TryFrom<pb::ConfirmServiceRecordRequest> for RecordTarget {
    type Error = DomainError;

    fn try_from(request: pb::ConfirmServiceRecordRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_record_id(&mut violations, &request.record_id);
        violations.into_result()?;
        Ok(Self { record_id: request.record_id })
    }
}

impl TryFrom<pb::GetServiceRecordRequest> for RecordTarget {
    type Error = DomainError;

    fn try_from(request: pb::GetServiceRecordRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_record_id(&mut violations, &request.record_id);
        violations.into_result()?;
        Ok(Self { record_id: request.record_id })
    }
}

impl TryFrom<pb::RequestCorrectionRequest> for RequestCorrection {
    type Error = DomainError;

    fn try_from(request: pb::RequestCorrectionRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_record_id(&mut violations, &request.record_id);
        violations.text("reason", &request.reason, TEXT_CHARS_MAX);
        let proposed_times = optional_interval(
            &mut violations,
            "proposed_start_time",
            "proposed_end_time",
            request.proposed_start_time.as_ref(),
            request.proposed_end_time.as_ref(),
        );
        violations.optional_text("proposed_content", &request.proposed_content, TEXT_CHARS_MAX);
        violations.into_result()?;
        let proposed_content = request.proposed_content.trim();
        Ok(Self {
            record_id: request.record_id,
            reason: request.reason.trim().to_string(),
            proposed_times,
            proposed_content: (!proposed_content.is_empty()).then(|| proposed_content.to_string()),
        })
    }
}

impl TryFrom<pb::RejectCorrectionRequest> for RejectCorrection {
    type Error = DomainError;

    fn try_from(request: pb::RejectCorrectionRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_record_id(&mut violations, &request.record_id);
        violations.text("reason", &request.reason, TEXT_CHARS_MAX);
        violations.into_result()?;
        Ok(Self { record_id: request.record_id, reason: request.reason.trim().to_string() })
    }
}

impl TryFrom<pb::AmendServiceRecordRequest> for AmendServiceRecord {
    type Error = DomainError;

    fn try_from(request: pb::AmendServiceRecordRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_record_id(&mut violations, &request.record_id);
        violations.text("reason", &request.reason, TEXT_CHARS_MAX);
        let given_times = request.start_time.is_some() || request.end_time.is_some();
        let times = optional_interval(
            &mut violations,
            "start_time",
            "end_time",
            request.start_time.as_ref(),
            request.end_time.as_ref(),
        );
        violations.optional_text("content", &request.content, TEXT_CHARS_MAX);
        let content = request.content.trim();
        if !given_times && content.is_empty() {
            violations.add("content", "nothing to amend: give start_time and end_time, content, or both");
        }
        violations.into_result()?;
        Ok(Self {
            record_id: request.record_id,
            expected_version: (request.expected_version != 0).then_some(request.expected_version),
            times,
            content: (!content.is_empty()).then(|| content.to_string()),
            reason: request.reason.trim().to_string(),
        })
    }
}

impl TryFrom<pb::RevokeServiceRecordRequest> for RevokeServiceRecord {
    type Error = DomainError;

    fn try_from(request: pb::RevokeServiceRecordRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_record_id(&mut violations, &request.record_id);
        violations.text("reason", &request.reason, TEXT_CHARS_MAX);
        violations.into_result()?;
        Ok(Self { record_id: request.record_id, reason: request.reason.trim().to_string() })
    }
}

impl TryFrom<&pb::ListServiceRecordsRequest> for ListServiceRecords {
    type Error = DomainError;

    fn try_from(request: &pb::ListServiceRecordsRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        if request.project_id.is_empty() && request.volunteer_number.is_empty() {
            violations.add("project_id", "give project_id, volunteer_number or both");
        }
        if !request.project_id.is_empty() {
            check_id(&mut violations, "project_id", &request.project_id, "330106-P000001");
        }
        if !request.volunteer_number.is_empty() {
            check_volunteer_number(&mut violations, "volunteer_number", &request.volunteer_number);
        }
        let state = match pb::ServiceRecordState::try_from(request.state) {
            Ok(pb::ServiceRecordState::Unspecified) => None,
            Ok(pb::ServiceRecordState::Recorded) => Some(RecordState::Recorded),
            Ok(pb::ServiceRecordState::Confirmed) => Some(RecordState::Confirmed),
            Ok(pb::ServiceRecordState::Revoked) => Some(RecordState::Revoked),
            Err(_) => {
                violations.add("state", "is not a known state");
                None
            }
        };
        violations.into_result()?;
        let given = |text: &str| (!text.is_empty()).then(|| text.to_string());
        Ok(Self { project_id: given(&request.project_id), volunteer_number: given(&request.volunteer_number), state })
    }
}
