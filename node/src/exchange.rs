//! The exchange with the national volunteer-service platform (the guidance part 五(四): "interconnection and
//! mutual recognition"), and the tables that spreadsheets and exchange files are made of.
//!
//! - Consent: a volunteer's information goes to the national platform only with their separate consent (PIPL
//!   art. 23: providing personal information to another processor; Regulations on Volunteer Service 2017: not
//!   disclosed without consent). Consent to processing at the node (given at registration) is not enough, so it is
//!   kept here, apart, under `xchg_consent/<volunteer_number>`; every change leaves an audit entry.
//! - Export (`export`): volunteers with that consent, teams, published projects and the confirmed service records
//!   of consenting volunteers, as the unified data items of `pb::Exchange*`, changed in a window
//!   `(since, upto]`. The caller takes `upto` as the time of the export's own audit entry: that write waits for
//!   every write queued before it, and any later write carries a later time, so the next export from `upto` misses
//!   nothing and repeats nothing. Every item carries the node's stable id: exported twice, it is the same item.
//! - Recognition (`import_recognised`): service records kept by another platform, each validated alone,
//!   de-duplicated by source and source record id (`xchg_rec/<source>/<id>`), and marked with their source. They
//!   are kept beside the node's own records and do not change the node's confirmed hours or stars.
//!
//! The submodules hold what the command line and a web console share: `table` (rows of typed cells, written as
//! CSV, .xlsx or JSON Lines), `sheet` (reading rows from CSV or .xlsx) and `platform` (the adapter to the national
//! platform's transport).

pub mod platform;
pub mod sheet;
pub mod table;

use std::collections::HashMap;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use ecovol_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::commit::Txn;
use crate::crypto::NodeKeys;
use crate::error::{DomainError, FieldViolation, Violations};
use crate::hours::{RecordState, ServiceRecord};
use crate::project::ProjectRecord;
use crate::registry::team::TeamRecord;
use crate::registry::volunteer::{self, VolunteerRecord, VolunteerStatus};
use crate::store::{self, Store};
use crate::validate::IdentityNumber;
use crate::wire::{from_timestamp, optional_timestamp, timestamp};

/// The purposes the registry seals identity and phone numbers under (`registry::volunteer`'s sealing purposes;
/// the exchange test compares the exported numbers with the registered ones).
const SEALED_IDENTITY: &str = "identity_number";
const SEALED_PHONE: &str = "phone";

/// Items per export message when the request does not say.
pub const EXPORT_BATCH_ITEMS_DEFAULT: usize = 500;
/// Items per export message at most.
pub const EXPORT_BATCH_ITEMS_MAX: usize = 1000;
/// Rows of one recognition import at most.
pub const RECOGNITION_ROWS_MAX: usize = 1000;
/// Characters of a consent's evidence at most.
const EVIDENCE_CHARS_MAX: usize = 200;

/// A volunteer's separate consent to sharing with the national platform, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExchangeConsent {
    pub volunteer_number: String,
    pub consent: bool,
    /// How the consent was given (a signed form, an online confirmation).
    pub evidence: String,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
}

fn consent_key(volunteer_number: &str) -> String {
    format!("xchg_consent/{volunteer_number}")
}

/// A validated `SetExchangeConsentRequest`.
#[derive(Debug, Clone)]
pub struct SetConsent {
    pub volunteer_number: String,
    pub consent: bool,
    pub evidence: String,
}

impl TryFrom<pb::SetExchangeConsentRequest> for SetConsent {
    type Error = DomainError;

    fn try_from(request: pb::SetExchangeConsentRequest) -> Result<Self, DomainError> {
        let volunteer_number = volunteer::parse_volunteer_number(&request.volunteer_number)?;
        let mut violations = Violations::new();
        violations.text("evidence", &request.evidence, EVIDENCE_CHARS_MAX);
        violations.into_result()?;
        Ok(Self { volunteer_number, consent: request.consent, evidence: request.evidence.trim().to_string() })
    }
}

/// Records or withdraws a consent (staff). Returns the consent in force and whether it changed.
pub fn set_consent(
    txn: &mut Txn<'_>,
    caller: &Caller,
    command: SetConsent,
) -> Result<(ExchangeConsent, bool), DomainError> {
    caller.require_any(&[Role::Staff], "recording consent to sharing with the national platform")?;
    volunteer::load(txn, &command.volunteer_number)?;
    txn.detail = format!("consent {} ({})", command.consent, command.evidence);
    let key = consent_key(&command.volunteer_number);
    if let Some(current) = txn.get_json::<ExchangeConsent>(&key)?
        && current.consent == command.consent
    {
        return Ok((current, false));
    }
    if !command.consent && txn.get(key.as_bytes())?.is_none() {
        // Nothing was ever shared: there is nothing to withdraw, and no withdrawal notice to send.
        let never = ExchangeConsent {
            volunteer_number: command.volunteer_number,
            consent: false,
            evidence: command.evidence,
            changed_by: caller.account_id.clone(),
            changed_at: txn.now(),
        };
        return Ok((never, false));
    }
    let consent = ExchangeConsent {
        volunteer_number: command.volunteer_number,
        consent: command.consent,
        evidence: command.evidence,
        changed_by: caller.account_id.clone(),
        changed_at: txn.now(),
    };
    txn.put_json(key, &consent);
    Ok((consent, true))
}

/// The window of an export: items changed after `since` (everything if `None`) and at or before `upto`.
#[derive(Debug, Clone, Copy)]
pub struct ExportWindow {
    pub since: Option<DateTime<Utc>>,
    pub upto: DateTime<Utc>,
}

impl ExportWindow {
    fn contains(&self, time: DateTime<Utc>) -> bool {
        self.since.is_none_or(|since| time > since) && time <= self.upto
    }
}

/// Starts an export (staff only): checks the role and returns the watermark of the window, the time of the
/// export's own audit entry. Runs inside the audited write, so a refused export is in the audit trail too.
pub fn begin_export(
    txn: &mut Txn<'_>,
    caller: &Caller,
    since: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, DomainError> {
    caller.require_any(&[Role::Staff], "exporting to the national platform")?;
    txn.detail = match since {
        Some(since) => format!("items changed after {}", since.to_rfc3339()),
        None => "every item".into(),
    };
    Ok(txn.now())
}

/// How many items of each kind an export sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCounts {
    pub volunteers: usize,
    pub teams: usize,
    pub projects: usize,
    pub service_records: usize,
}

impl std::fmt::Display for ExportCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} volunteers, {} teams, {} projects, {} service records",
            self.volunteers, self.teams, self.projects, self.service_records
        )
    }
}

/// Collects items into messages of at most `batch_items_max` and hands each full one to `emit`.
struct Batcher<'a> {
    batch_items_max: usize,
    pending: pb::ExportExchangeResponse,
    pending_items: usize,
    counts: ExportCounts,
    /// False once `emit` broke (the receiver went away): the scan goes on without sending.
    open: bool,
    emit: &'a mut dyn FnMut(pb::ExportExchangeResponse) -> ControlFlow<()>,
}

impl Batcher<'_> {
    fn added(&mut self) {
        self.pending_items += 1;
        if self.pending_items >= self.batch_items_max {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let batch = std::mem::take(&mut self.pending);
        self.pending_items = 0;
        if self.open && (self.emit)(batch).is_break() {
            self.open = false;
        }
    }
}

/// The name serde gives an enum value (all stored enums are `snake_case`).
fn serde_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|value| value.as_str().map(str::to_string)).unwrap_or_default()
}

/// Sends every item changed in `window` through `emit`, in messages of at most `batch_items_max` items, the last
/// one marked `last` with `window.upto` as the watermark. Reads the store as it is (no write is held up).
pub fn export(
    store: &dyn Store,
    keys: &NodeKeys,
    node_code: &str,
    window: ExportWindow,
    batch_items_max: usize,
    emit: &mut dyn FnMut(pb::ExportExchangeResponse) -> ControlFlow<()>,
) -> Result<ExportCounts, DomainError> {
    let mut consents: HashMap<String, ExchangeConsent> = HashMap::new();
    store::scan_json(store, "xchg_consent/", |consent: ExchangeConsent| {
        consents.insert(consent.volunteer_number.clone(), consent);
    })?;
    let consenting = |number: &str| consents.get(number).filter(|consent| consent.consent);
    let mut batcher = Batcher {
        batch_items_max: batch_items_max.clamp(1, EXPORT_BATCH_ITEMS_MAX),
        pending: pb::ExportExchangeResponse::default(),
        pending_items: 0,
        counts: ExportCounts::default(),
        open: true,
        emit,
    };

    let mut failure = None;
    store::scan_json(store, "vol/", |record: VolunteerRecord| {
        let Some(consent) = consents.get(&record.volunteer_number) else { return };
        let changed_at = record.updated_at.max(consent.changed_at);
        if !window.contains(changed_at) {
            return;
        }
        let item = if consent.consent {
            match volunteer_item(keys, node_code, &record, changed_at) {
                Ok(item) => item,
                Err(error) => {
                    failure.get_or_insert(error);
                    return;
                }
            }
        } else {
            pb::ExchangeVolunteer {
                volunteer_number: record.volunteer_number.clone(),
                consent: false,
                changed_at: Some(timestamp(consent.changed_at)),
                ..Default::default()
            }
        };
        batcher.pending.volunteers.push(item);
        batcher.counts.volunteers += 1;
        batcher.added();
    })?;
    if let Some(error) = failure {
        return Err(error);
    }

    store::scan_json(store, "team/", |team: TeamRecord| {
        if !window.contains(team.updated_at) {
            return;
        }
        batcher.pending.teams.push(pb::ExchangeTeam {
            team_id: team.team_id.clone(),
            name: team.name.clone(),
            credit_code: team.credit_code.clone().unwrap_or_default(),
            kind: serde_name(&team.kind),
            hub: team.hub,
            support: team.support,
            parent_team_id: team.parent_team_id.clone().unwrap_or_default(),
            member_count: team.active_member_count,
            division_code: node_code.to_string(),
            created_at: Some(timestamp(team.created_at)),
            changed_at: Some(timestamp(team.updated_at)),
        });
        batcher.counts.teams += 1;
        batcher.added();
    })?;

    store::scan_json(store, "proj/", |project: ProjectRecord| {
        // A draft is not public yet: it reaches the platform once published.
        if project.published_at.is_none() || !window.contains(project.updated_at) {
            return;
        }
        batcher.pending.projects.push(pb::ExchangeProject {
            project_id: project.project_id.clone(),
            title: project.title.clone(),
            activity_kind: serde_name(&project.activity_kind),
            organising_team_id: project.organising_team_id.clone(),
            start_at: Some(timestamp(project.start_at)),
            end_at: Some(timestamp(project.end_at)),
            site_id: project.site_id.clone().unwrap_or_default(),
            capacity: project.capacity,
            status: serde_name(&project.status),
            contact: project.contact.clone(),
            division_code: node_code.to_string(),
            changed_at: Some(timestamp(project.updated_at)),
        });
        batcher.counts.projects += 1;
        batcher.added();
    })?;

    store::scan_json(store, "svc/", |record: ServiceRecord| {
        let Some(consent) = consenting(&record.volunteer_number) else { return };
        // Confirmed records count; a revoked one is sent only if it was confirmed once (it may have been sent).
        let shareable = match record.state {
            RecordState::Confirmed => true,
            RecordState::Revoked => record.confirmed_at.is_some(),
            RecordState::Recorded => false,
        };
        // A consent given in the window brings the volunteer's earlier records too.
        if !shareable || !(window.contains(record.updated_at) || window.contains(consent.changed_at)) {
            return;
        }
        batcher.pending.service_records.push(pb::ExchangeServiceRecord {
            record_id: record.record_id.clone(),
            volunteer_number: record.volunteer_number.clone(),
            project_id: record.project_id.clone(),
            organising_team_id: record.organising_team_id.clone(),
            activity_kind: record.activity_kind.clone(),
            start_time: Some(timestamp(record.start_time)),
            end_time: Some(timestamp(record.end_time)),
            hours_x100: record.hours_x100,
            content: record.content.clone(),
            state: serde_name(&record.state),
            recorded_by: record.recorded_by.clone(),
            confirmed_by: record.confirmed_by.clone().unwrap_or_default(),
            confirmed_at: optional_timestamp(record.confirmed_at),
            division_code: node_code.to_string(),
            changed_at: Some(timestamp(record.updated_at.max(consent.changed_at))),
        });
        batcher.counts.service_records += 1;
        batcher.added();
    })?;

    batcher.pending.watermark = Some(timestamp(window.upto));
    batcher.pending.last = true;
    batcher.flush();
    Ok(batcher.counts)
}

fn volunteer_item(
    keys: &NodeKeys,
    node_code: &str,
    record: &VolunteerRecord,
    changed_at: DateTime<Utc>,
) -> Result<pb::ExchangeVolunteer, DomainError> {
    let open = |purpose: &str, sealed: &str| {
        keys.open(purpose, sealed)
            .map_err(|error| DomainError::Internal(format!("volunteer {}: {error}", record.volunteer_number)))
    };
    Ok(pb::ExchangeVolunteer {
        volunteer_number: record.volunteer_number.clone(),
        consent: true,
        name: record.name.clone(),
        id_type: if record.residence_permit { "residence_permit" } else { "resident_identity_card" }.into(),
        id_number: open(SEALED_IDENTITY, &record.identity_sealed)?,
        gender: serde_name(&record.gender),
        birth_date: record.birth_date.format("%Y-%m-%d").to_string(),
        political_status: serde_name(&record.political_status),
        phone: open(SEALED_PHONE, &record.phone_sealed)?,
        home_division_code: record.home_division_code.clone(),
        skills: record.skills.clone(),
        registered_by_division_code: node_code.to_string(),
        registered_at: Some(timestamp(record.registered_at)),
        status: match record.status {
            VolunteerStatus::Active => "active",
            VolunteerStatus::Inactive => "inactive",
        }
        .into(),
        changed_at: Some(timestamp(changed_at)),
    })
}

/// A service record of another platform, recognised at this node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecognisedRecord {
    pub source: String,
    pub source_record_id: String,
    pub volunteer_number: String,
    pub organisation: String,
    pub project_title: String,
    pub activity_kind: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub hours_x100: u32,
    pub content: String,
    pub imported_by: String,
    pub imported_at: DateTime<Utc>,
}

impl RecognisedRecord {
    pub fn recognised_id(&self) -> String {
        format!("{}/{}", self.source, self.source_record_id)
    }
}

impl From<&RecognisedRecord> for pb::RecognisedRecord {
    fn from(record: &RecognisedRecord) -> Self {
        pb::RecognisedRecord {
            recognised_id: record.recognised_id(),
            source: record.source.clone(),
            source_record_id: record.source_record_id.clone(),
            volunteer_number: record.volunteer_number.clone(),
            organisation: record.organisation.clone(),
            project_title: record.project_title.clone(),
            activity_kind: record.activity_kind.clone(),
            start_time: Some(timestamp(record.start_time)),
            end_time: Some(timestamp(record.end_time)),
            hours_x100: record.hours_x100,
            content: record.content.clone(),
            imported_by: record.imported_by.clone(),
            imported_at: Some(timestamp(record.imported_at)),
        }
    }
}

fn recognised_key(source: &str, source_record_id: &str) -> String {
    format!("xchg_rec/{source}/{source_record_id}")
}

fn recognised_volunteer_key(volunteer_number: &str, source: &str, source_record_id: &str) -> String {
    format!("xchg_rec_vol/{volunteer_number}/{source}/{source_record_id}")
}

/// The activity kinds a recognised record may name (the guidance part 三), as on the wire.
const ACTIVITY_KINDS: [&str; 5] =
    ["theory_promotion", "publicity_education", "social_supervision", "green_low_carbon", "international_exchange"];

fn is_token(text: &str, chars_max: usize, extra: &[char]) -> bool {
    !text.is_empty()
        && text.len() <= chars_max
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c))
}

/// Imports the records of `request` (staff): each row alone is created, a duplicate, or rejected.
pub fn import_recognised(
    txn: &mut Txn<'_>,
    keys: &NodeKeys,
    caller: &Caller,
    request: pb::ImportRecognisedRecordsRequest,
) -> Result<pb::ImportRecognisedRecordsResponse, DomainError> {
    caller.require_any(&[Role::Staff], "importing service records of another platform")?;
    let source = request.source.trim().to_string();
    let mut violations = Violations::new();
    if !is_token(&source, 32, &['-']) {
        violations.add("source", "must be 1 to 32 characters of a-z, 0-9 and '-'");
    }
    if request.records.len() > RECOGNITION_ROWS_MAX {
        violations.add("records", format!("at most {RECOGNITION_ROWS_MAX} records per call"));
    }
    violations.into_result()?;
    txn.target = source.clone();
    let today = crate::wire::today_china();
    let now = txn.now();
    let mut response = pb::ImportRecognisedRecordsResponse::default();
    for (index, row) in request.records.into_iter().enumerate() {
        let index = index as u32;
        let key = recognised_key(&source, row.source_record_id.trim());
        let valid_id = row.source_record_id.len() <= 64
            && !row.source_record_id.is_empty()
            && row.source_record_id.chars().all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
        if valid_id && let Some(existing) = txn.get_json::<RecognisedRecord>(&key)? {
            response.duplicate_count += 1;
            response.results.push(pb::RecognisedRowResult {
                index,
                outcome: pb::RecognitionOutcome::Duplicate as i32,
                recognised_id: existing.recognised_id(),
                volunteer_number: existing.volunteer_number,
                violations: Vec::new(),
            });
            continue;
        }
        match check_external(txn, keys, &row, valid_id, today, now) {
            Ok((volunteer_number, start_time, end_time)) => {
                let record = RecognisedRecord {
                    source: source.clone(),
                    source_record_id: row.source_record_id.clone(),
                    volunteer_number: volunteer_number.clone(),
                    organisation: row.organisation.trim().to_string(),
                    project_title: row.project_title.trim().to_string(),
                    activity_kind: row.activity_kind.trim().to_string(),
                    start_time,
                    end_time,
                    hours_x100: row.hours_x100,
                    content: row.content.trim().to_string(),
                    imported_by: caller.account_id.clone(),
                    imported_at: now,
                };
                txn.put_json(key, &record);
                txn.put(recognised_volunteer_key(&volunteer_number, &source, &row.source_record_id), Vec::new());
                response.created_count += 1;
                response.results.push(pb::RecognisedRowResult {
                    index,
                    outcome: pb::RecognitionOutcome::Created as i32,
                    recognised_id: record.recognised_id(),
                    volunteer_number,
                    violations: Vec::new(),
                });
            }
            Err(violations) => {
                response.rejected_count += 1;
                response.results.push(pb::RecognisedRowResult {
                    index,
                    outcome: pb::RecognitionOutcome::Rejected as i32,
                    recognised_id: String::new(),
                    volunteer_number: String::new(),
                    violations: violations
                        .into_iter()
                        .map(|violation| pb::RecognitionViolation {
                            field: violation.field,
                            description: violation.description,
                        })
                        .collect(),
                });
            }
        }
    }
    txn.detail = format!(
        "source {source}: {} created, {} duplicates, {} rejected",
        response.created_count, response.duplicate_count, response.rejected_count
    );
    Ok(response)
}

/// Checks one external record; returns the local volunteer number and the interval, or every broken rule.
fn check_external(
    txn: &Txn<'_>,
    keys: &NodeKeys,
    row: &pb::ExternalServiceRecord,
    valid_id: bool,
    today: chrono::NaiveDate,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>, DateTime<Utc>), Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let mut add = |field: &str, description: String| {
        violations.push(FieldViolation { field: field.into(), description });
    };
    if !valid_id {
        add("source_record_id", "must be 1 to 64 characters of A-Z, a-z, 0-9 and ._:-".into());
    }
    let mut volunteer_number = None;
    match IdentityNumber::parse(row.id_number.trim(), today) {
        Err(error) => add("id_number", format!("is not a valid identity number: {error}")),
        Ok(identity) => {
            // The registry's uniqueness index (`registry::volunteer`): `vol_id/<keyed hash>` → volunteer number.
            let lookup = keys.identity_lookup_key(identity.as_str());
            match txn.get(format!("vol_id/{lookup}").as_bytes()) {
                Ok(Some(number)) => {
                    let number = String::from_utf8_lossy(&number).into_owned();
                    match volunteer::load(txn, &number) {
                        Ok(record) if record.name != row.name.trim() => add(
                            "name",
                            "does not match the name registered for this identity number at this node".into(),
                        ),
                        Ok(_) => volunteer_number = Some(number),
                        Err(error) => add("id_number", error.to_string()),
                    }
                }
                Ok(None) => {
                    add("id_number", "no volunteer with this identity number is registered at this node".into())
                }
                Err(error) => add("id_number", format!("cannot be looked up: {error}")),
            }
        }
    }
    let start = row.start_time.as_ref().and_then(from_timestamp);
    let end = row.end_time.as_ref().and_then(from_timestamp);
    match (start, end) {
        (None, _) => add("start_time", "is required".into()),
        (_, None) => add("end_time", "is required".into()),
        (Some(start), Some(end)) => {
            if end <= start {
                add("end_time", "must be after start_time".into());
            } else if end > now {
                add("end_time", "must be in the past".into());
            } else {
                // The source may round to a quarter hour; more than the interval plus that is not service time.
                let minutes = (end - start).num_minutes().max(0) as u64;
                if u64::from(row.hours_x100) * 60 > (minutes + 14) * 100 {
                    add("hours_x100", format!("is more than the interval of {minutes} minutes"));
                }
            }
        }
    }
    if row.hours_x100 == 0 {
        add("hours_x100", "must be more than 0".into());
    }
    let content = row.content.trim();
    if content.is_empty() {
        add("content", "is required".into());
    } else if content.chars().count() > 500 {
        add("content", "must be at most 500 characters".into());
    }
    if row.organisation.chars().count() > 200 {
        add("organisation", "must be at most 200 characters".into());
    }
    if row.project_title.chars().count() > 200 {
        add("project_title", "must be at most 200 characters".into());
    }
    let kind = row.activity_kind.trim();
    if !kind.is_empty() && !ACTIVITY_KINDS.contains(&kind) {
        add("activity_kind", format!("must be empty or one of {}", ACTIVITY_KINDS.join(", ")));
    }
    match (volunteer_number, start, end) {
        (Some(number), Some(start), Some(end)) if violations.is_empty() => Ok((number, start, end)),
        _ => Err(violations),
    }
}

/// The recognised records of a volunteer, oldest source first: staff, or the volunteer themself.
pub fn list_recognised(
    store: &dyn Store,
    caller: &Caller,
    volunteer_number: &str,
) -> Result<Vec<RecognisedRecord>, DomainError> {
    if !caller.has(Role::Staff) && !caller.is_volunteer(volunteer_number) {
        return Err(DomainError::denied("reading recognised records needs the role staff, or to be the volunteer"));
    }
    let prefix = format!("xchg_rec_vol/{volunteer_number}/");
    let mut keys = Vec::new();
    store.scan(prefix.as_bytes(), None, &mut |key, _| {
        keys.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        ControlFlow::Continue(())
    })?;
    let mut records = Vec::with_capacity(keys.len());
    for rest in keys {
        let key = format!("xchg_rec/{rest}");
        if let Some(record) = store::get_json::<RecognisedRecord>(store, key.as_bytes())? {
            records.push(record);
        }
    }
    records.sort_by_key(|record| record.start_time);
    Ok(records)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_window_is_open_below_and_closed_above() {
        let at = |seconds| Utc.timestamp_opt(seconds, 0).single().unwrap_or_default();
        let window = ExportWindow { since: Some(at(100)), upto: at(200) };
        for (time, inside) in [(99, false), (100, false), (101, true), (200, true), (201, false)] {
            assert_eq!(window.contains(at(time)), inside, "{time}");
        }
        let everything = ExportWindow { since: None, upto: at(200) };
        assert!(everything.contains(at(0)) && !everything.contains(at(201)));
    }

    #[test]
    fn sources_are_lowercase_tokens() {
        for (source, valid) in [("national", true), ("zj-volunteer", true), ("", false), ("Zj", false), ("a b", false)]
        {
            assert_eq!(is_token(source, 32, &['-']), valid, "{source:?}");
        }
        assert!(!is_token(&"a".repeat(33), 32, &['-']));
    }
}
