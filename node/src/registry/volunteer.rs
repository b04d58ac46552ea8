//! Volunteers: registration, search, versioned updates, deactivation, and the operator's audited reveal.
//!
//! Rules (DOMAIN.md): the public identifier is the volunteer number the node assigns, never the identity number
//! (MCA Order 67); identity and phone numbers are sensitive personal information, encrypted at rest and looked up
//! through keyed hashes (GB/T 35273); consent to processing is required (PIPL art. 13); minors need a guardian's
//! consent, under-14s a parent's (PIPL art. 28, 31), 16–17 year olds living on their own income count as adults
//! (Civil Code art. 18).
//!
//! Keys: `vol/<number>` the record; `vol_v/<number>/<version>` every version; `vol_id/<hash>` → number;
//! `vol_ph/<hash>/<number>`, `vol_nm/<name>\0<number>`, `vol_sk/<skill>\0<number>` search indexes.
//!
//! The federation (`federation::outbox`) hears of every registration (counted in its month, with the volunteer's
//! pseudonymous key remembered first), every new version and every deactivation, minimised, in the same write.

use chrono::{DateTime, NaiveDate, Utc};
use ecovol_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::commit::Txn;
use crate::crypto::NodeKeys;
use crate::error::{DomainError, Violations};
use crate::federation::outbox::{self, Change, cell_at};
use crate::page::{Page, PageRequest};
use crate::store::{self, Store};
use crate::validate::{
    ConsentRequirement, DivisionCode, Gender, IdentityNumber, age_on, check_mobile, consent_requirement,
};
use crate::wire;

/// Longest name accepted, characters.
pub const NAME_CHARS_MAX: usize = 50;
/// Most skills on one volunteer.
pub const SKILLS_MAX: usize = 20;
/// Longest skill, characters.
pub const SKILL_CHARS_MAX: usize = 32;
/// Longest change reason, characters.
pub const REASON_CHARS_MAX: usize = 500;

const SEALED_IDENTITY: &str = "identity_number";
const SEALED_PHONE: &str = "phone";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoliticalStatus {
    PartyMember,
    LeagueMember,
    Masses,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardianConsent {
    None,
    Guardian,
    Parent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VolunteerStatus {
    Active,
    Inactive,
}

/// A volunteer as stored. Identity and phone numbers only sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolunteerRecord {
    pub volunteer_number: String,
    pub name: String,
    pub identity_sealed: String,
    pub identity_lookup: String,
    pub phone_sealed: String,
    pub phone_lookup: String,
    pub gender: Gender,
    pub birth_date: NaiveDate,
    pub residence_permit: bool,
    pub skills: Vec<String>,
    pub political_status: PoliticalStatus,
    pub guardian_consent: GuardianConsent,
    pub self_supporting: bool,
    pub home_division_code: String,
    pub status: VolunteerStatus,
    pub version: u32,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Account that made this version.
    pub changed_by: String,
    /// Why this version was made.
    pub change_reason: String,
    /// Teams the volunteer currently belongs to.
    #[serde(default)]
    pub team_ids: Vec<String>,
}

pub fn record_key(volunteer_number: &str) -> String {
    format!("vol/{volunteer_number}")
}

fn version_key(volunteer_number: &str, version: u32) -> String {
    format!("vol_v/{volunteer_number}/{version:010}")
}

fn identity_key(lookup: &str) -> String {
    format!("vol_id/{lookup}")
}

fn phone_key(lookup: &str, volunteer_number: &str) -> String {
    format!("vol_ph/{lookup}/{volunteer_number}")
}

fn name_key(name: &str, volunteer_number: &str) -> String {
    format!("vol_nm/{name}\0{volunteer_number}")
}

fn skill_key(skill: &str, volunteer_number: &str) -> String {
    format!("vol_sk/{skill}\0{volunteer_number}")
}

/// A validated registration.
#[derive(Debug, Clone)]
pub struct RegisterVolunteer {
    pub name: String,
    pub identity: IdentityNumber,
    pub phone: String,
    pub skills: Vec<String>,
    pub political_status: PoliticalStatus,
    pub guardian_consent: GuardianConsent,
    pub self_supporting: bool,
    pub home_division_code: DivisionCode,
}

fn political_status(value: i32) -> Option<PoliticalStatus> {
    match pb::PoliticalStatus::try_from(value).ok()? {
        pb::PoliticalStatus::PartyMember => Some(PoliticalStatus::PartyMember),
        pb::PoliticalStatus::LeagueMember => Some(PoliticalStatus::LeagueMember),
        pb::PoliticalStatus::Masses => Some(PoliticalStatus::Masses),
        pb::PoliticalStatus::Unspecified => None,
    }
}

fn guardian_consent(value: i32) -> Option<GuardianConsent> {
    match pb::GuardianConsent::try_from(value).ok()? {
        pb::GuardianConsent::Unspecified => Some(GuardianConsent::None),
        pb::GuardianConsent::Guardian => Some(GuardianConsent::Guardian),
        pb::GuardianConsent::Parent => Some(GuardianConsent::Parent),
    }
}

fn check_skills(violations: &mut Violations, field: &str, skills: &[String]) {
    if skills.len() > SKILLS_MAX {
        violations.add(field, format!("at most {SKILLS_MAX} skills, got {}", skills.len()));
        return;
    }
    for (index, skill) in skills.iter().enumerate() {
        violations.text(&format!("{field}[{index}]"), skill, SKILL_CHARS_MAX);
        if skill.contains('\0') {
            violations.add(format!("{field}[{index}]"), "must not contain NUL");
        }
        if skills[..index].contains(skill) {
            violations.add(format!("{field}[{index}]"), "is listed twice");
        }
    }
}

/// Minors need consent (PIPL art. 28, 31; Civil Code art. 18). `today` in China.
fn check_consent(
    violations: &mut Violations,
    birth_date: NaiveDate,
    today: NaiveDate,
    consent: GuardianConsent,
    self_supporting: bool,
) {
    let age = age_on(birth_date, today);
    if self_supporting && !(16..=17).contains(&age) {
        violations.add("self_supporting", format!("applies only to volunteers aged 16 or 17 (age {age})"));
    }
    match consent_requirement(age, self_supporting) {
        ConsentRequirement::None => {}
        ConsentRequirement::Guardian if consent == GuardianConsent::None => violations.add(
            "guardian_consent",
            format!("a volunteer aged {age} needs a guardian's consent (under 18, PIPL art. 31)"),
        ),
        ConsentRequirement::Parent if consent != GuardianConsent::Parent => violations.add(
            "guardian_consent",
            format!("a volunteer aged {age} needs a parent's consent (under 14, PIPL art. 31)"),
        ),
        _ => {}
    }
}

impl RegisterVolunteer {
    /// Validates a registration; `today` is the date in China (birth dates must be past, ages are counted on it).
    pub fn parse(request: pb::RegisterVolunteerRequest, today: NaiveDate) -> Result<Self, DomainError> {
        let mut violations = Violations::new();
        violations.text("name", &request.name, NAME_CHARS_MAX);
        if request.name.contains('\0') {
            violations.add("name", "must not contain NUL");
        }
        let identity = match IdentityNumber::parse(&request.identity_number, today) {
            Ok(identity) => Some(identity),
            Err(error) => {
                violations.add("identity_number", error.to_string());
                None
            }
        };
        if let Err(error) = check_mobile(&request.phone) {
            violations.add("phone", error.to_string());
        }
        if let Some(identity) = &identity {
            match pb::Gender::try_from(request.gender) {
                Ok(pb::Gender::Unspecified) => {}
                Ok(given) => {
                    let derived = match identity.gender() {
                        Gender::Male => pb::Gender::Male,
                        Gender::Female => pb::Gender::Female,
                    };
                    if given != derived {
                        violations
                            .add("gender", "does not match the identity number (GB 11643: 17th digit odd = male)");
                    }
                }
                Err(_) => violations.add("gender", "is not a known value"),
            }
            if !request.birth_date.is_empty() {
                match wire::parse_date(&request.birth_date) {
                    None => violations.add("birth_date", "must be a date YYYY-MM-DD"),
                    Some(date) if date != identity.birth_date() => {
                        violations.add("birth_date", "does not match the identity number")
                    }
                    Some(_) => {}
                }
            }
        }
        check_skills(&mut violations, "skills", &request.skills);
        let status = political_status(request.political_status);
        if status.is_none() {
            violations.add("political_status", "is required: party member, league member or masses");
        }
        if !request.consent_to_processing {
            violations.add("consent_to_processing", "the volunteer's consent to processing is required (PIPL art. 13)");
        }
        let consent = guardian_consent(request.guardian_consent);
        if consent.is_none() {
            violations.add("guardian_consent", "is not a known value");
        }
        if let (Some(identity), Some(consent)) = (&identity, consent) {
            check_consent(&mut violations, identity.birth_date(), today, consent, request.self_supporting);
        }
        let home = match DivisionCode::parse(&request.home_division_code) {
            Ok(code) => Some(code),
            Err(error) => {
                violations.add("home_division_code", error.to_string());
                None
            }
        };
        violations.into_result()?;
        match (identity, status, consent, home) {
            (Some(identity), Some(political_status), Some(guardian_consent), Some(home_division_code)) => Ok(Self {
                name: request.name.trim().to_string(),
                identity,
                phone: request.phone,
                skills: request.skills.into_iter().map(|skill| skill.trim().to_string()).collect(),
                political_status,
                guardian_consent,
                self_supporting: request.self_supporting,
                home_division_code,
            }),
            _ => Err(DomainError::Internal("validation passed with a missing field".into())),
        }
    }
}

impl TryFrom<pb::RegisterVolunteerRequest> for RegisterVolunteer {
    type Error = DomainError;

    fn try_from(request: pb::RegisterVolunteerRequest) -> Result<Self, Self::Error> {
        Self::parse(request, wire::today_china())
    }
}

/// A validated update: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateVolunteer {
    pub volunteer_number: String,
    pub expected_version: Option<u32>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub skills: Option<Vec<String>>,
    pub political_status: Option<PoliticalStatus>,
    pub guardian_consent: Option<GuardianConsent>,
    pub self_supporting: Option<bool>,
    pub home_division_code: Option<DivisionCode>,
    pub reason: String,
}

fn check_volunteer_number(violations: &mut Violations, number: &str) {
    if number.is_empty() {
        violations.add("volunteer_number", "is required");
    } else if number.len() > 32 || !number.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        violations.add("volunteer_number", "is not a volunteer number (like 330106-00000042)");
    }
}

/// Validates a volunteer number from the wire.
pub fn parse_volunteer_number(number: &str) -> Result<String, DomainError> {
    let mut violations = Violations::new();
    check_volunteer_number(&mut violations, number);
    violations.into_result()?;
    Ok(number.to_string())
}

/// Validates a change reason: required, bounded.
pub fn check_reason(violations: &mut Violations, reason: &str) {
    violations.text("reason", reason, REASON_CHARS_MAX);
}

impl TryFrom<pb::UpdateVolunteerRequest> for UpdateVolunteer {
    type Error = DomainError;

    fn try_from(request: pb::UpdateVolunteerRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_volunteer_number(&mut violations, &request.volunteer_number);
        if let Some(name) = &request.name {
            violations.text("name", name, NAME_CHARS_MAX);
            if name.contains('\0') {
                violations.add("name", "must not contain NUL");
            }
        }
        if let Some(phone) = &request.phone
            && let Err(error) = check_mobile(phone)
        {
            violations.add("phone", error.to_string());
        }
        if let Some(skills) = &request.skills {
            check_skills(&mut violations, "skills.skills", &skills.skills);
        }
        let status = request.political_status.map(political_status);
        if status == Some(None) {
            violations.add("political_status", "must be party member, league member or masses");
        }
        let consent = request.guardian_consent.map(guardian_consent);
        if consent == Some(None) {
            violations.add("guardian_consent", "is not a known value");
        }
        let home = match request.home_division_code.as_deref().map(DivisionCode::parse) {
            Some(Err(error)) => {
                violations.add("home_division_code", error.to_string());
                None
            }
            Some(Ok(code)) => Some(code),
            None => None,
        };
        check_reason(&mut violations, &request.reason);
        violations.into_result()?;
        Ok(Self {
            volunteer_number: request.volunteer_number,
            expected_version: (request.expected_version != 0).then_some(request.expected_version),
            name: request.name.map(|name| name.trim().to_string()),
            phone: request.phone,
            skills: request.skills.map(|list| list.skills.into_iter().map(|s| s.trim().to_string()).collect()),
            political_status: status.flatten(),
            guardian_consent: consent.flatten(),
            self_supporting: request.self_supporting,
            home_division_code: home,
            reason: request.reason,
        })
    }
}

/// Search criteria; the most selective one given is used as the index, the others filter.
#[derive(Debug, Clone, Default)]
pub struct SearchVolunteers {
    pub name_prefix: Option<String>,
    pub phone: Option<String>,
    pub volunteer_number: Option<String>,
    pub skill: Option<String>,
    pub team_id: Option<String>,
    pub include_inactive: bool,
}

impl TryFrom<&pb::SearchVolunteersRequest> for SearchVolunteers {
    type Error = DomainError;

    fn try_from(request: &pb::SearchVolunteersRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        violations.optional_text("name_prefix", &request.name_prefix, NAME_CHARS_MAX);
        if !request.phone.is_empty()
            && let Err(error) = check_mobile(&request.phone)
        {
            violations.add("phone", error.to_string());
        }
        if !request.volunteer_number.is_empty() {
            check_volunteer_number(&mut violations, &request.volunteer_number);
        }
        violations.optional_text("skill", &request.skill, SKILL_CHARS_MAX);
        violations.optional_text("team_id", &request.team_id, 32);
        violations.into_result()?;
        let non_empty = |text: &str| (!text.trim().is_empty()).then(|| text.trim().to_string());
        Ok(Self {
            name_prefix: non_empty(&request.name_prefix),
            phone: non_empty(&request.phone),
            volunteer_number: non_empty(&request.volunteer_number),
            skill: non_empty(&request.skill),
            team_id: non_empty(&request.team_id),
            include_inactive: request.include_inactive,
        })
    }
}

/// Registers a volunteer. Staff or team managers; a team manager's registration does not join the team.
pub fn register(
    txn: &mut Txn<'_>,
    keys: &NodeKeys,
    node_code: &str,
    caller: &Caller,
    command: RegisterVolunteer,
) -> Result<VolunteerRecord, DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager], "registering a volunteer")?;
    let identity_lookup = keys.identity_lookup_key(command.identity.as_str());
    if let Some(existing) = txn.get(identity_key(&identity_lookup).as_bytes())? {
        let existing = String::from_utf8_lossy(&existing).into_owned();
        txn.target = existing.clone();
        return Err(DomainError::AlreadyExists {
            message: format!("this identity number is already registered as volunteer {existing}"),
            existing,
        });
    }
    let sequence = txn.next_seq("volunteer")?;
    let volunteer_number = format!("{node_code}-{sequence:08}");
    txn.target = volunteer_number.clone();
    let now = txn.now();
    let phone_lookup = keys.phone_lookup_key(&command.phone);
    let record = VolunteerRecord {
        volunteer_number: volunteer_number.clone(),
        name: command.name,
        identity_sealed: keys.seal(SEALED_IDENTITY, command.identity.as_str()),
        identity_lookup: identity_lookup.clone(),
        phone_sealed: keys.seal(SEALED_PHONE, &command.phone),
        phone_lookup,
        gender: command.identity.gender(),
        birth_date: command.identity.birth_date(),
        residence_permit: command.identity.is_residence_permit(),
        skills: command.skills,
        political_status: command.political_status,
        guardian_consent: command.guardian_consent,
        self_supporting: command.self_supporting,
        home_division_code: command.home_division_code.as_string(),
        status: VolunteerStatus::Active,
        version: 1,
        registered_at: now,
        updated_at: now,
        changed_by: caller.account_id.clone(),
        change_reason: "registered".into(),
        team_ids: Vec::new(),
    };
    txn.put(identity_key(&identity_lookup), volunteer_number.clone());
    write_indexes(txn, None, &record);
    save(txn, &record);
    // The federation: the volunteer's pseudonymous key first, then the registration counted in its month.
    outbox::remember_volunteer_key(txn, &volunteer_number, command.identity.as_str());
    let mut change = Change::new(pb::ChangeKind::VolunteerRegistered, "");
    change.volunteer = Some(outbox::minimised(txn, &volunteer_number)?);
    change.deltas.add(cell_at(record.registered_at, 0), |f| f.new_volunteers += 1);
    outbox::record(txn, change)?;
    Ok(record)
}

/// Most rows of one `RegisterVolunteers` call: a 1,000-row batch is about 200 KiB, far under
/// `office.message_bytes_max`, and one committer job of that size holds the writer for a few milliseconds.
pub const REGISTER_BULK_ROWS_MAX: usize = 1_000;

/// What became of one row of a bulk registration.
#[derive(Debug)]
pub enum RowRegistration {
    Registered(Box<VolunteerRecord>),
    /// The identity number was registered already, as this volunteer number.
    AlreadyRegistered(String),
    /// Refused as `register` would refuse it; nothing of the row was written.
    Refused(DomainError),
}

/// Registers each row as `register` would, in one job (spreadsheet imports: one call, one group commit, for many
/// rows). A row refused (its validation in `rows`, a registered identity number, the caller's role) is reported
/// and skipped; every row gets its own audit entry as a single registration would (`row_audit`), besides the
/// job's entry for the whole call. A fault of the node (the store) fails the whole job, so nothing is written.
pub fn register_bulk(
    txn: &mut Txn<'_>,
    keys: &NodeKeys,
    node_code: &str,
    caller: &Caller,
    rows: Vec<Result<RegisterVolunteer, DomainError>>,
    row_audit: &crate::audit::AuditContext,
) -> Result<Vec<RowRegistration>, DomainError> {
    let mut results = Vec::with_capacity(rows.len());
    for (index, row) in rows.into_iter().enumerate() {
        txn.target = format!("row {index}");
        // `register` refuses for the role and for a known identity number before it writes anything, so a
        // refused row leaves no write behind; any other error is the store's and fails the whole job.
        let outcome = row.and_then(|command| register(txn, keys, node_code, caller, command));
        let result = match outcome {
            Ok(record) => {
                crate::audit::append(txn, row_audit, None)?;
                RowRegistration::Registered(Box::new(record))
            }
            Err(DomainError::AlreadyExists { message, existing }) => {
                let error = DomainError::AlreadyExists { message, existing: existing.clone() };
                crate::audit::append(txn, row_audit, Some(&error))?;
                RowRegistration::AlreadyRegistered(existing)
            }
            Err(error @ (DomainError::Invalid(_) | DomainError::PermissionDenied(_))) => {
                crate::audit::append(txn, row_audit, Some(&error))?;
                RowRegistration::Refused(error)
            }
            Err(fault) => return Err(fault),
        };
        results.push(result);
    }
    let registered = results.iter().filter(|row| matches!(row, RowRegistration::Registered(_))).count();
    txn.target = format!("{} rows, {registered} registered", results.len());
    Ok(results)
}

/// Tells the federation of a new version of a volunteer's record (no figure changes: a registration counts once,
/// whatever the volunteer's status later). The volunteer number stays local: the subject is empty.
fn record_volunteer_change(txn: &mut Txn<'_>, kind: pb::ChangeKind, volunteer_number: &str) -> Result<(), DomainError> {
    let mut change = Change::new(kind, "");
    change.volunteer = Some(outbox::minimised(txn, volunteer_number)?);
    outbox::record(txn, change)
}

/// Stores `record` as the current version and in the version history.
pub fn save(txn: &mut Txn<'_>, record: &VolunteerRecord) {
    txn.put_json(version_key(&record.volunteer_number, record.version), record);
    txn.put_json(record_key(&record.volunteer_number), record);
}

/// Keeps the search indexes in step: removes `old`'s entries that `new` no longer has, adds `new`'s.
fn write_indexes(txn: &mut Txn<'_>, old: Option<&VolunteerRecord>, new: &VolunteerRecord) {
    let number = &new.volunteer_number;
    if let Some(old) = old {
        if old.phone_lookup != new.phone_lookup {
            txn.delete(phone_key(&old.phone_lookup, number));
        }
        if old.name != new.name {
            txn.delete(name_key(&old.name, number));
        }
        for skill in old.skills.iter().filter(|skill| !new.skills.contains(skill)) {
            txn.delete(skill_key(skill, number));
        }
    }
    txn.put(phone_key(&new.phone_lookup, number), Vec::new());
    txn.put(name_key(&new.name, number), Vec::new());
    for skill in &new.skills {
        txn.put(skill_key(skill, number), Vec::new());
    }
}

/// Loads a volunteer inside a write.
pub fn load(txn: &Txn<'_>, volunteer_number: &str) -> Result<VolunteerRecord, DomainError> {
    txn.get_json(&record_key(volunteer_number))?.ok_or_else(|| DomainError::not_found("volunteer", volunteer_number))
}

/// Who may read a volunteer's record: staff; the volunteer themself; a team manager for members of their team.
pub fn check_can_read(caller: &Caller, record: &VolunteerRecord) -> Result<(), DomainError> {
    if caller.has(Role::Staff) || caller.is_volunteer(&record.volunteer_number) {
        return Ok(());
    }
    if let Some(team) = caller.team_id.as_deref()
        && caller.has(Role::TeamManager)
        && record.team_ids.iter().any(|id| id == team)
    {
        return Ok(());
    }
    Err(DomainError::denied(format!(
        "volunteer {} is visible to staff, the volunteer and the managers of the volunteer's teams",
        record.volunteer_number
    )))
}

/// Applies an update as a new version. Staff only.
pub fn update(
    txn: &mut Txn<'_>,
    keys: &NodeKeys,
    caller: &Caller,
    command: UpdateVolunteer,
    today: NaiveDate,
) -> Result<VolunteerRecord, DomainError> {
    caller.require_any(&[Role::Staff], "updating a volunteer")?;
    let old = load(txn, &command.volunteer_number)?;
    if let Some(expected) = command.expected_version
        && expected != old.version
    {
        return Err(DomainError::FailedPrecondition(format!(
            "volunteer {} is at version {}, not {expected}: reload and try again",
            old.volunteer_number, old.version
        )));
    }
    let mut new = old.clone();
    if let Some(name) = command.name {
        new.name = name;
    }
    if let Some(phone) = &command.phone {
        new.phone_sealed = keys.seal(SEALED_PHONE, phone);
        new.phone_lookup = keys.phone_lookup_key(phone);
    }
    if let Some(skills) = command.skills {
        new.skills = skills;
    }
    if let Some(status) = command.political_status {
        new.political_status = status;
    }
    if let Some(consent) = command.guardian_consent {
        new.guardian_consent = consent;
    }
    if let Some(self_supporting) = command.self_supporting {
        new.self_supporting = self_supporting;
    }
    if let Some(home) = command.home_division_code {
        new.home_division_code = home.as_string();
    }
    let mut violations = Violations::new();
    check_consent(&mut violations, new.birth_date, today, new.guardian_consent, new.self_supporting);
    violations.into_result()?;
    new.version = old.version + 1;
    new.updated_at = txn.now();
    new.changed_by = caller.account_id.clone();
    new.change_reason = command.reason.clone();
    txn.detail = command.reason;
    write_indexes(txn, Some(&old), &new);
    save(txn, &new);
    record_volunteer_change(txn, pb::ChangeKind::VolunteerUpdated, &new.volunteer_number)?;
    Ok(new)
}

/// Marks a volunteer inactive (kept, with history). Staff only.
pub fn deactivate(
    txn: &mut Txn<'_>,
    caller: &Caller,
    volunteer_number: &str,
    reason: String,
) -> Result<VolunteerRecord, DomainError> {
    caller.require_any(&[Role::Staff], "deactivating a volunteer")?;
    let old = load(txn, volunteer_number)?;
    if old.status == VolunteerStatus::Inactive {
        return Err(DomainError::FailedPrecondition(format!("volunteer {volunteer_number} is already inactive")));
    }
    let mut new = old;
    new.status = VolunteerStatus::Inactive;
    new.version += 1;
    new.updated_at = txn.now();
    new.changed_by = caller.account_id.clone();
    new.change_reason = reason.clone();
    txn.detail = reason;
    save(txn, &new);
    record_volunteer_change(txn, pb::ChangeKind::VolunteerDeactivated, volunteer_number)?;
    Ok(new)
}

/// The operator's audited reveal of an identity number. The audit entry (with the reason) is written by the
/// committer in the same batch; nothing else changes.
pub fn reveal_identity(
    txn: &mut Txn<'_>,
    keys: &NodeKeys,
    caller: &Caller,
    volunteer_number: &str,
    reason: String,
) -> Result<String, DomainError> {
    caller.require_any(&[Role::Operator], "revealing an identity number")?;
    txn.detail = reason;
    let record = load(txn, volunteer_number)?;
    keys.open(SEALED_IDENTITY, &record.identity_sealed)
        .map_err(|error| DomainError::Internal(format!("volunteer {volunteer_number}: {error}")))
}

/// Reads one volunteer for `caller`.
pub fn get(store: &dyn Store, caller: &Caller, volunteer_number: &str) -> Result<VolunteerRecord, DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager, Role::Volunteer], "reading a volunteer")?;
    let record: VolunteerRecord = store::get_json(store, record_key(volunteer_number).as_bytes())?
        .ok_or_else(|| DomainError::not_found("volunteer", volunteer_number))?;
    check_can_read(caller, &record)?;
    Ok(record)
}

/// Searches volunteers visible to `caller`.
pub fn search(
    store: &dyn Store,
    keys: &NodeKeys,
    caller: &Caller,
    mut query: SearchVolunteers,
    page: &PageRequest,
) -> Result<Page<VolunteerRecord>, DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager, Role::Volunteer], "searching volunteers")?;
    if !caller.has(Role::Staff) {
        if caller.has(Role::TeamManager)
            && let Some(team) = &caller.team_id
        {
            // A team manager sees the members of their own team only.
            if query.team_id.as_ref().is_some_and(|asked| asked != team) {
                return Err(DomainError::denied("a team manager may search only their own team's members"));
            }
            query.team_id = Some(team.clone());
        } else if let Some(own) = &caller.volunteer_number {
            query.volunteer_number = Some(own.clone());
        } else {
            return Err(DomainError::denied("searching volunteers needs the role staff"));
        }
    }
    // Pick the index: an exact key first, then the most selective prefix.
    let phone_lookup = query.phone.as_deref().map(|phone| keys.phone_lookup_key(phone));
    let prefix = if let Some(number) = &query.volunteer_number {
        record_key(number)
    } else if let Some(lookup) = &phone_lookup {
        format!("vol_ph/{lookup}/")
    } else if let Some(team) = &query.team_id {
        format!("team_mem/{team}/")
    } else if let Some(skill) = &query.skill {
        format!("vol_sk/{skill}\0")
    } else if let Some(name) = &query.name_prefix {
        format!("vol_nm/{name}")
    } else {
        "vol/".to_string()
    };
    let by_record = prefix.starts_with("vol/");
    crate::page::collect(store, &prefix, page, |key, value| {
        let record: VolunteerRecord = if by_record {
            store::decode(key, value)?
        } else {
            // Index keys end in the volunteer number, after '/' or NUL.
            let text = String::from_utf8_lossy(key);
            let number = text.rsplit(['/', '\0']).next().unwrap_or_default();
            match store::get_json(store, record_key(number).as_bytes())? {
                Some(record) => record,
                None => return Ok(None),
            }
        };
        // A team index entry may be a former member: the record's team list is the truth.
        Ok(matches(&query, phone_lookup.as_deref(), &record).then_some(record))
    })
}

fn matches(query: &SearchVolunteers, phone_lookup: Option<&str>, record: &VolunteerRecord) -> bool {
    (query.include_inactive || record.status == VolunteerStatus::Active)
        && query.volunteer_number.as_ref().is_none_or(|number| *number == record.volunteer_number)
        && phone_lookup.is_none_or(|lookup| lookup == record.phone_lookup)
        && query.name_prefix.as_ref().is_none_or(|name| record.name.starts_with(name.as_str()))
        && query.skill.as_ref().is_none_or(|skill| record.skills.contains(skill))
        && query.team_id.as_ref().is_none_or(|team| record.team_ids.contains(team))
}

/// A volunteer's versions, oldest first.
pub fn versions(
    store: &dyn Store,
    caller: &Caller,
    volunteer_number: &str,
    page: &PageRequest,
) -> Result<Page<VolunteerRecord>, DomainError> {
    get(store, caller, volunteer_number)?;
    let prefix = format!("vol_v/{volunteer_number}/");
    crate::page::collect(store, &prefix, page, |key, value| Ok(Some(store::decode::<VolunteerRecord>(key, value)?)))
}

impl VolunteerRecord {
    /// The wire form. The identity number never appears; the phone is opened for the caller (who may read the record).
    pub fn to_pb(&self, keys: &NodeKeys) -> pb::Volunteer {
        let phone = keys.open(SEALED_PHONE, &self.phone_sealed).unwrap_or_else(|_| "unreadable".into());
        pb::Volunteer {
            volunteer_number: self.volunteer_number.clone(),
            name: self.name.clone(),
            phone,
            gender: match self.gender {
                Gender::Male => pb::Gender::Male,
                Gender::Female => pb::Gender::Female,
            } as i32,
            birth_date: self.birth_date.format("%Y-%m-%d").to_string(),
            skills: self.skills.clone(),
            political_status: match self.political_status {
                PoliticalStatus::PartyMember => pb::PoliticalStatus::PartyMember,
                PoliticalStatus::LeagueMember => pb::PoliticalStatus::LeagueMember,
                PoliticalStatus::Masses => pb::PoliticalStatus::Masses,
            } as i32,
            guardian_consent: match self.guardian_consent {
                GuardianConsent::None => pb::GuardianConsent::Unspecified,
                GuardianConsent::Guardian => pb::GuardianConsent::Guardian,
                GuardianConsent::Parent => pb::GuardianConsent::Parent,
            } as i32,
            self_supporting: self.self_supporting,
            home_division_code: self.home_division_code.clone(),
            status: match self.status {
                VolunteerStatus::Active => pb::VolunteerStatus::Active,
                VolunteerStatus::Inactive => pb::VolunteerStatus::Inactive,
            } as i32,
            version: self.version,
            registered_at: Some(wire::timestamp(self.registered_at)),
            updated_at: Some(wire::timestamp(self.updated_at)),
            team_ids: self.team_ids.clone(),
            residence_permit: self.residence_permit,
        }
    }

    /// The version-history form.
    pub fn to_version_pb(&self, keys: &NodeKeys) -> pb::VolunteerVersion {
        pb::VolunteerVersion {
            version: self.version,
            volunteer: Some(self.to_pb(keys)),
            changed_by_account_id: self.changed_by.clone(),
            changed_at: Some(wire::timestamp(self.updated_at)),
            reason: self.change_reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    fn request(identity: &str) -> pb::RegisterVolunteerRequest {
        pb::RegisterVolunteerRequest {
            name: "测试甲".into(),
            identity_number: identity.into(),
            phone: "13800138000".into(),
            political_status: pb::PoliticalStatus::Masses as i32,
            consent_to_processing: true,
            home_division_code: "330106".into(),
            ..Default::default()
        }
    }

    fn fields(result: Result<RegisterVolunteer, DomainError>) -> Vec<String> {
        match result {
            Ok(_) => Vec::new(),
            Err(DomainError::Invalid(violations)) => violations.into_iter().map(|v| v.field).collect(),
            Err(other) => panic!("unexpected {other}"),
        }
    }

    fn check(request: pb::RegisterVolunteerRequest, expected_fields: &[&str]) {
        assert_eq!(fields(RegisterVolunteer::parse(request, today())), expected_fields);
    }

    #[test]
    fn registrations_are_checked_field_by_field() {
        check(request("11010519491231002X"), &[]);
        check(request("440308199901101512"), &[]);
        check(request("810000199408230021"), &[]);
        check(request("15000019970319128X"), &["identity_number"]);
        check(
            pb::RegisterVolunteerRequest { gender: pb::Gender::Male as i32, ..request("11010519491231002X") },
            &["gender"],
        );
        check(
            pb::RegisterVolunteerRequest { birth_date: "1949-12-30".into(), ..request("11010519491231002X") },
            &["birth_date"],
        );
        check(pb::RegisterVolunteerRequest { birth_date: "1949-12-31".into(), ..request("11010519491231002X") }, &[]);
        check(
            pb::RegisterVolunteerRequest { consent_to_processing: false, ..request("11010519491231002X") },
            &["consent_to_processing"],
        );
        check(
            pb::RegisterVolunteerRequest { skills: vec!["a".into(), "a".into()], ..request("11010519491231002X") },
            &["skills[1]"],
        );
    }

    #[test]
    fn every_broken_rule_is_reported_at_once() {
        let bad = pb::RegisterVolunteerRequest {
            name: String::new(),
            identity_number: "15000019970319128X".into(),
            phone: "2380013800".into(),
            political_status: 0,
            consent_to_processing: false,
            home_division_code: "99".into(),
            ..Default::default()
        };
        check(
            bad,
            &["name", "identity_number", "phone", "political_status", "consent_to_processing", "home_division_code"],
        );
    }

    fn minor_born(birth: &str) -> pb::RegisterVolunteerRequest {
        let first17 = format!("330106{birth}123");
        let check_char = crate::validate::identity_check_char(&first17).unwrap();
        request(&format!("{first17}{check_char}"))
    }

    #[test]
    fn minors_need_consent_by_age() {
        // 15 on 2026-11-28: a guardian's consent.
        check(minor_born("20110101"), &["guardian_consent"]);
        check(
            pb::RegisterVolunteerRequest {
                guardian_consent: pb::GuardianConsent::Guardian as i32,
                ..minor_born("20110101")
            },
            &[],
        );
        // 12: a parent's consent; a guardian's is not enough.
        check(
            pb::RegisterVolunteerRequest {
                guardian_consent: pb::GuardianConsent::Guardian as i32,
                ..minor_born("20140101")
            },
            &["guardian_consent"],
        );
        check(
            pb::RegisterVolunteerRequest {
                guardian_consent: pb::GuardianConsent::Parent as i32,
                ..minor_born("20140101")
            },
            &[],
        );
        // 17 and self-supporting counts as an adult; self-supporting at 30 is refused.
        check(pb::RegisterVolunteerRequest { self_supporting: true, ..minor_born("20090101") }, &[]);
        check(pb::RegisterVolunteerRequest { self_supporting: true, ..minor_born("19960101") }, &["self_supporting"]);
    }
}
