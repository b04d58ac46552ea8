//! Sign-ups (CAP-1): a volunteer takes a seat on a published project while seats remain, else a place on its
//! waitlist; cancelling an accepted seat promotes the first waitlisted volunteer at once.
//!
//! CAP-1: a project never has more accepted sign-ups than its capacity, and no sign-up is lost or duplicated.
//! The committer runs one use-case at a time, so the read-check-write of a sign-up needs no lock: the counters
//! `accepted_count` / `waitlisted_count` of the project record are changed in the same atomic write as the
//! sign-up itself. A retry carrying the same idempotency key returns the first answer.
//!
//! Rules (DOMAIN.md "Minors"; Regulations on Volunteer Service 2017): minors need a guardian's consent (a parent's
//! under 14, PIPL art. 31) and may not join a risky project; 16–17 year olds living on their own income count as
//! adults (Civil Code art. 18). Ages are counted in whole years on the day the project starts, in China time.
//!
//! Keys: `signup/<project_id>/<volunteer_number>` the sign-up (`SignUpRecord`);
//! `signup_wl/<project_id>/<waitlist_seq:020>` → volunteer number, the waitlist in order of arrival (removed when
//! promoted or cancelled); `vol_signup/<volunteer_number>/<project_id>` → "" a volunteer's sign-ups (kept after
//! a cancellation; the record says its status); `idem/signup/<idempotency_key>` → the first answer.
//!
//! Every net change of a project's accepted sign-ups (a seat taken, given up, or given to the next in line) is
//! recorded for the federation in the same write (`record_accepted_change`).

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use ecovol_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::commit::Txn;
use crate::error::{DomainError, Violations};
use crate::federation::outbox::{self, Change, cell_at, kind_number};
use crate::page::{Page, PageRequest};
use crate::project::{self, ProjectRecord, ProjectStatus, check_id};
use crate::registry::volunteer::{self, GuardianConsent, VolunteerStatus};
use crate::store::{self, Store};
use crate::validate::{ConsentRequirement, age_on, consent_requirement};
use crate::wire;

/// Longest idempotency key accepted, characters.
pub const IDEMPOTENCY_KEY_CHARS_MAX: usize = 64;

/// Where a sign-up stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignUpStatus {
    Accepted,
    Waitlisted,
    Cancelled,
}

impl SignUpStatus {
    fn label(self) -> &'static str {
        match self {
            SignUpStatus::Accepted => "accepted",
            SignUpStatus::Waitlisted => "waitlisted",
            SignUpStatus::Cancelled => "cancelled",
        }
    }
}

impl From<SignUpStatus> for pb::SignUpStatus {
    fn from(status: SignUpStatus) -> Self {
        match status {
            SignUpStatus::Accepted => pb::SignUpStatus::Accepted,
            SignUpStatus::Waitlisted => pb::SignUpStatus::Waitlisted,
            SignUpStatus::Cancelled => pb::SignUpStatus::Cancelled,
        }
    }
}

/// A sign-up as stored under `signup/<project_id>/<volunteer_number>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignUpRecord {
    pub project_id: String,
    pub volunteer_number: String,
    pub status: SignUpStatus,
    /// Order of arrival on this node (sequence `signup`); the waitlist is kept in this order.
    pub waitlist_seq: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The client's key of the request that made this sign-up, if it sent one.
    pub idempotency_key: Option<String>,
}

/// The key of a sign-up.
pub fn signup_key(project_id: &str, volunteer_number: &str) -> String {
    format!("signup/{project_id}/{volunteer_number}")
}

/// The key of a waitlist place: byte order is arrival order.
pub fn waitlist_key(project_id: &str, waitlist_seq: u64) -> String {
    format!("signup_wl/{project_id}/{waitlist_seq:020}")
}

/// The key of a volunteer's sign-up in the per-volunteer index.
pub fn volunteer_signup_key(volunteer_number: &str, project_id: &str) -> String {
    format!("vol_signup/{volunteer_number}/{project_id}")
}

fn idempotency_record_key(idempotency_key: &str) -> String {
    format!("idem/signup/{idempotency_key}")
}

/// True if the volunteer holds an accepted seat on the project.
pub fn is_accepted(txn: &Txn<'_>, project_id: &str, volunteer_number: &str) -> Result<bool, DomainError> {
    let record: Option<SignUpRecord> = txn.get_json(&signup_key(project_id, volunteer_number))?;
    Ok(record.is_some_and(|record| record.status == SignUpStatus::Accepted))
}

/// A sign-up as answered: the record and, when waitlisted, its 1-based place on the waitlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignUpView {
    pub record: SignUpRecord,
    /// 1-based; 0 unless waitlisted.
    pub waitlist_position: u32,
}

/// The answer to a sign-up.
#[derive(Debug, Clone)]
pub struct SignUpAnswer {
    pub sign_up: SignUpView,
    /// True when a retry was answered with the first answer.
    pub already: bool,
}

/// The first answer to a request with an idempotency key, as stored under `idem/signup/<key>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdempotentAnswer {
    project_id: String,
    volunteer_number: String,
    sign_up: SignUpView,
}

/// The answer to a cancellation.
#[derive(Debug, Clone)]
pub struct CancelAnswer {
    pub sign_up: SignUpView,
    /// The volunteer moved from the waitlist to the freed seat.
    pub promoted: Option<String>,
}

fn check_volunteer_number(violations: &mut Violations, number: &str) {
    if let Err(DomainError::Invalid(found)) = volunteer::parse_volunteer_number(number) {
        for violation in found {
            violations.add(violation.field, violation.description);
        }
    }
}

fn check_project_id(violations: &mut Violations, project_id: &str) {
    check_id(violations, "project_id", project_id, "330106-P000007");
}

/// A validated sign-up.
#[derive(Debug, Clone)]
pub struct SignUp {
    pub project_id: String,
    pub volunteer_number: String,
    pub idempotency_key: Option<String>,
}

impl TryFrom<pb::SignUpRequest> for SignUp {
    type Error = DomainError;

    fn try_from(request: pb::SignUpRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_project_id(&mut violations, &request.project_id);
        check_volunteer_number(&mut violations, &request.volunteer_number);
        let key = &request.idempotency_key;
        if key.len() > IDEMPOTENCY_KEY_CHARS_MAX {
            violations.add(
                "idempotency_key",
                format!("must be at most {IDEMPOTENCY_KEY_CHARS_MAX} characters, got {}", key.chars().count()),
            );
        } else if !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')) {
            violations.add("idempotency_key", "may hold only letters, digits, '-', '_', '.' and ':'");
        }
        violations.into_result()?;
        Ok(Self {
            project_id: request.project_id,
            volunteer_number: request.volunteer_number,
            idempotency_key: (!request.idempotency_key.is_empty()).then_some(request.idempotency_key),
        })
    }
}

/// A validated cancellation of a sign-up.
#[derive(Debug, Clone)]
pub struct CancelSignUp {
    pub project_id: String,
    pub volunteer_number: String,
}

impl TryFrom<pb::CancelSignUpRequest> for CancelSignUp {
    type Error = DomainError;

    fn try_from(request: pb::CancelSignUpRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        check_project_id(&mut violations, &request.project_id);
        check_volunteer_number(&mut violations, &request.volunteer_number);
        violations.into_result()?;
        Ok(Self { project_id: request.project_id, volunteer_number: request.volunteer_number })
    }
}

/// Whose sign-ups to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignUpOwner {
    Project(String),
    Volunteer(String),
}

/// A validated sign-up list query. Paging comes separately.
#[derive(Debug, Clone)]
pub struct ListSignUps {
    pub owner: SignUpOwner,
    /// `None`: every status.
    pub status: Option<SignUpStatus>,
}

impl TryFrom<&pb::ListSignUpsRequest> for ListSignUps {
    type Error = DomainError;

    fn try_from(request: &pb::ListSignUpsRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let owner = match (request.project_id.is_empty(), request.volunteer_number.is_empty()) {
            (false, true) => {
                check_project_id(&mut violations, &request.project_id);
                Some(SignUpOwner::Project(request.project_id.clone()))
            }
            (true, false) => {
                check_volunteer_number(&mut violations, &request.volunteer_number);
                Some(SignUpOwner::Volunteer(request.volunteer_number.clone()))
            }
            (true, true) => {
                violations.add("project_id", "give project_id or volunteer_number");
                None
            }
            (false, false) => {
                violations.add("volunteer_number", "give project_id or volunteer_number, not both");
                None
            }
        };
        let status = match pb::SignUpStatus::try_from(request.status) {
            Ok(pb::SignUpStatus::Unspecified) => None,
            Ok(pb::SignUpStatus::Accepted) => Some(SignUpStatus::Accepted),
            Ok(pb::SignUpStatus::Waitlisted) => Some(SignUpStatus::Waitlisted),
            Ok(pb::SignUpStatus::Cancelled) => Some(SignUpStatus::Cancelled),
            Err(_) => {
                violations.add("status", "is not a known sign-up status");
                None
            }
        };
        violations.into_result()?;
        let owner = owner.ok_or_else(|| DomainError::Internal("validation passed with a missing field".into()))?;
        Ok(Self { owner, status })
    }
}

/// PermissionDenied unless the caller is the volunteer, staff, or the manager of the organising team.
fn check_can_act_for(
    caller: &Caller,
    project: &ProjectRecord,
    volunteer_number: &str,
    action: &str,
) -> Result<(), DomainError> {
    if caller.is_volunteer(volunteer_number)
        || caller.has(Role::Staff)
        || caller.manages_team(&project.organising_team_id)
    {
        return Ok(());
    }
    Err(DomainError::denied(format!(
        "{action} for volunteer {volunteer_number} needs to be that volunteer, staff, or the manager of the \
         organising team {}",
        project.organising_team_id
    )))
}

fn refuse(message: String) -> DomainError {
    DomainError::FailedPrecondition(message)
}

/// Checks who the volunteer is against the project's rules: active, old enough, consent, risk.
fn check_eligible(txn: &Txn<'_>, project: &ProjectRecord, volunteer_number: &str) -> Result<(), DomainError> {
    let record = volunteer::load(txn, volunteer_number)?;
    let project_id = &project.project_id;
    if record.status != VolunteerStatus::Active {
        return Err(refuse(format!("volunteer {volunteer_number} is inactive")));
    }
    // Ages are whole years (周岁) on the day the project starts, in China time.
    let start_day = project.start_at.with_timezone(&wire::china()).date_naive();
    let age = age_on(record.birth_date, start_day);
    if age < project.min_age {
        return Err(refuse(format!(
            "volunteer {volunteer_number} is too young: aged {age} when project {project_id} starts, which needs \
             at least {}",
            project.min_age
        )));
    }
    let requirement = consent_requirement(age, record.self_supporting);
    if requirement != ConsentRequirement::None && project.risky {
        return Err(refuse(format!(
            "volunteer {volunteer_number} is a minor (aged {age}) and project {project_id} is risky: minors may \
             not be assigned to dangerous work"
        )));
    }
    match requirement {
        ConsentRequirement::Guardian if record.guardian_consent == GuardianConsent::None => Err(refuse(format!(
            "volunteer {volunteer_number} is a minor (aged {age}) without a guardian's consent on record"
        ))),
        ConsentRequirement::Parent if record.guardian_consent != GuardianConsent::Parent => Err(refuse(format!(
            "volunteer {volunteer_number} is under 14 (aged {age}) without a parent's consent on record \
             (PIPL art. 31)"
        ))),
        _ => Ok(()),
    }
}

/// The first other project on which the volunteer holds an accepted seat overlapping `project` in time.
fn overlapping_seat(
    txn: &Txn<'_>,
    volunteer_number: &str,
    project: &ProjectRecord,
) -> Result<Option<String>, DomainError> {
    let prefix = format!("vol_signup/{volunteer_number}/");
    let mut others = Vec::new();
    txn.store().scan(prefix.as_bytes(), None, &mut |key, _| {
        let other = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
        if other != project.project_id {
            others.push(other);
        }
        ControlFlow::Continue(())
    })?;
    for other in others {
        if !is_accepted(txn, &other, volunteer_number)? {
            continue;
        }
        let Some(other_project) = txn.get_json::<ProjectRecord>(&project::project_key(&other))? else {
            continue;
        };
        if other_project.status != ProjectStatus::Cancelled && other_project.overlaps(project.start_at, project.end_at)
        {
            return Ok(Some(other));
        }
    }
    Ok(None)
}

/// Signs a volunteer up: an accepted seat while seats remain, else a waitlist place. The volunteer's own
/// account, staff, or the organising team's manager on their behalf.
pub fn sign_up(txn: &mut Txn<'_>, caller: &Caller, command: SignUp) -> Result<SignUpAnswer, DomainError> {
    let number = command.volunteer_number.clone();
    txn.target = command.project_id.clone();
    txn.detail = format!("volunteer {number}");
    let mut project = project::load(txn, &command.project_id)?;
    check_can_act_for(caller, &project, &number, "signing up")?;
    if let Some(key) = &command.idempotency_key
        && let Some(first) = txn.get_json::<IdempotentAnswer>(&idempotency_record_key(key))?
    {
        if first.project_id != command.project_id || first.volunteer_number != number {
            return Err(DomainError::invalid(
                "idempotency_key",
                format!(
                    "was used for another sign-up (volunteer {} on project {}): use a new key for a new request",
                    first.volunteer_number, first.project_id
                ),
            ));
        }
        // A retry: the first answer, even if the sign-up changed since.
        txn.detail = format!("volunteer {number}: retry answered with the first answer");
        return Ok(SignUpAnswer { sign_up: first.sign_up, already: true });
    }
    if project.status != ProjectStatus::Published {
        return Err(refuse(format!(
            "project {} is not open for sign-up: it is {}",
            project.project_id,
            project.status.label()
        )));
    }
    let now = txn.now();
    if now >= project.start_at {
        return Err(refuse(format!(
            "sign-up for project {} closed when it started at {}",
            project.project_id,
            project.start_at.with_timezone(&wire::china()).format("%Y-%m-%d %H:%M %:z")
        )));
    }
    check_eligible(txn, &project, &number)?;
    let key = signup_key(&project.project_id, &number);
    if let Some(existing) = txn.get_json::<SignUpRecord>(&key)?
        && existing.status != SignUpStatus::Cancelled
    {
        let holding = if existing.status == SignUpStatus::Accepted { "a seat" } else { "a waitlist place" };
        return Err(DomainError::AlreadyExists {
            message: format!("volunteer {number} already holds {holding} on project {}", project.project_id),
            existing: number,
        });
    }
    let status =
        if project.accepted_count < project.capacity { SignUpStatus::Accepted } else { SignUpStatus::Waitlisted };
    if status == SignUpStatus::Accepted
        && let Some(other) = overlapping_seat(txn, &number, &project)?
    {
        return Err(refuse(format!(
            "volunteer {number} holds an accepted seat on project {other}, which overlaps project {} in time",
            project.project_id
        )));
    }
    let waitlist_seq = txn.next_seq("signup")?;
    let record = SignUpRecord {
        project_id: project.project_id.clone(),
        volunteer_number: number.clone(),
        status,
        waitlist_seq,
        created_at: now,
        updated_at: now,
        idempotency_key: command.idempotency_key.clone(),
    };
    // CAP-1: the counters change in the same atomic write as the sign-up.
    let waitlist_position = match status {
        SignUpStatus::Accepted => {
            project.accepted_count += 1;
            0
        }
        _ => {
            // The newest arrival is last in line.
            txn.put(waitlist_key(&project.project_id, waitlist_seq), number.clone());
            project.waitlisted_count += 1;
            project.waitlisted_count
        }
    };
    txn.put_json(key, &record);
    txn.put(volunteer_signup_key(&number, &project.project_id), Vec::new());
    project::save(txn, &project);
    if status == SignUpStatus::Accepted {
        record_accepted_change(txn, &project, 1)?;
    }
    let view = SignUpView { record, waitlist_position };
    if let Some(idempotency_key) = &command.idempotency_key {
        let first = IdempotentAnswer {
            project_id: project.project_id.clone(),
            volunteer_number: number.clone(),
            sign_up: view.clone(),
        };
        txn.put_json(idempotency_record_key(idempotency_key), &first);
    }
    txn.detail = match status {
        SignUpStatus::Waitlisted => format!("volunteer {number} waitlisted at position {waitlist_position}"),
        _ => format!("volunteer {number} accepted"),
    };
    Ok(SignUpAnswer { sign_up: view, already: false })
}

/// Cancels a sign-up. Cancelling an accepted seat promotes the first waitlisted volunteer at once, also on the
/// day of the activity. The volunteer's own account, staff, or the organising team's manager.
pub fn cancel(txn: &mut Txn<'_>, caller: &Caller, command: CancelSignUp) -> Result<CancelAnswer, DomainError> {
    let number = command.volunteer_number.clone();
    txn.target = command.project_id.clone();
    txn.detail = format!("volunteer {number}");
    let mut project = project::load(txn, &command.project_id)?;
    check_can_act_for(caller, &project, &number, "cancelling a sign-up")?;
    let key = signup_key(&project.project_id, &number);
    let mut record: SignUpRecord = txn
        .get_json(&key)?
        .ok_or_else(|| DomainError::not_found("sign-up", format!("of volunteer {number} on {}", project.project_id)))?;
    if record.status == SignUpStatus::Cancelled {
        return Err(refuse(format!(
            "the sign-up of volunteer {number} on project {} is already cancelled",
            project.project_id
        )));
    }
    if project.status.is_final() {
        return Err(refuse(format!(
            "project {} is {}: its sign-ups are final",
            project.project_id,
            project.status.label()
        )));
    }
    if txn.now() >= project.end_at {
        return Err(refuse(format!("project {} has ended: its sign-ups are final", project.project_id)));
    }
    let was = record.status;
    record.status = SignUpStatus::Cancelled;
    record.updated_at = txn.now();
    txn.put_json(key, &record);
    let promoted = match was {
        SignUpStatus::Waitlisted => {
            txn.delete(waitlist_key(&project.project_id, record.waitlist_seq));
            project.waitlisted_count = project.waitlisted_count.saturating_sub(1);
            None
        }
        _ => {
            project.accepted_count = project.accepted_count.saturating_sub(1);
            promote(txn, &mut project, 1)?.into_iter().next()
        }
    };
    project::save(txn, &project);
    if was == SignUpStatus::Accepted {
        // The seat given up, and the seat taken by the promoted volunteer if any: often no net change.
        record_accepted_change(txn, &project, i64::from(promoted.is_some()) - 1)?;
    }
    txn.detail = match &promoted {
        Some(promoted) => format!("volunteer {number} cancelled ({}); volunteer {promoted} promoted", was.label()),
        None => format!("volunteer {number} cancelled ({})", was.label()),
    };
    Ok(CancelAnswer { sign_up: SignUpView { record, waitlist_position: 0 }, promoted })
}

/// Tells the federation that the accepted sign-ups of `project` changed by `accepted_delta` in this write: they
/// count in the cell of the project's start month and activity kind (stats: sign-ups holding a seat). Nothing is
/// recorded when the net change is zero.
pub(crate) fn record_accepted_change(
    txn: &mut Txn<'_>,
    project: &ProjectRecord,
    accepted_delta: i64,
) -> Result<(), DomainError> {
    if accepted_delta == 0 {
        return Ok(());
    }
    let mut change = Change::new(pb::ChangeKind::SignUpsCounted, project.project_id.clone());
    change
        .deltas
        .add(cell_at(project.start_at, kind_number(project.activity_kind)), |f| f.sign_ups_accepted += accepted_delta);
    outbox::record(txn, change)
}

/// Moves up to `seats` volunteers from the waitlist to accepted seats, in order of arrival, and keeps the
/// project's counters in step (the caller saves `project`). A waitlisted volunteer who meanwhile holds an
/// overlapping accepted seat elsewhere is passed over and keeps their place.
pub fn promote(txn: &mut Txn<'_>, project: &mut ProjectRecord, seats: u32) -> Result<Vec<String>, DomainError> {
    if seats == 0 || project.waitlisted_count == 0 {
        return Ok(Vec::new());
    }
    let prefix = format!("signup_wl/{}/", project.project_id);
    let mut chosen: Vec<(Vec<u8>, String)> = Vec::new();
    let mut failure = None;
    {
        let view: &Txn<'_> = txn;
        let project: &ProjectRecord = project;
        view.store().scan(prefix.as_bytes(), None, &mut |key, value| {
            // The scan does not see this job's own writes: skip places it already removed.
            match view.get(key) {
                Ok(Some(_)) => {}
                Ok(None) => return ControlFlow::Continue(()),
                Err(error) => {
                    failure = Some(DomainError::from(error));
                    return ControlFlow::Break(());
                }
            }
            let number = String::from_utf8_lossy(value).into_owned();
            match overlapping_seat(view, &number, project) {
                Ok(Some(_)) => ControlFlow::Continue(()),
                Ok(None) => {
                    chosen.push((key.to_vec(), number));
                    if chosen.len() as u64 >= u64::from(seats) {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                }
                Err(error) => {
                    failure = Some(error);
                    ControlFlow::Break(())
                }
            }
        })?;
    }
    if let Some(error) = failure {
        return Err(error);
    }
    let now = txn.now();
    let mut promoted = Vec::with_capacity(chosen.len());
    for (waitlist_entry, number) in chosen {
        let key = signup_key(&project.project_id, &number);
        let mut record: SignUpRecord = txn.get_json(&key)?.ok_or_else(|| {
            DomainError::Internal(format!(
                "waitlist of project {} names volunteer {number} without a sign-up",
                project.project_id
            ))
        })?;
        if record.status != SignUpStatus::Waitlisted {
            return Err(DomainError::Internal(format!(
                "waitlist of project {} names volunteer {number}, whose sign-up is {}",
                project.project_id,
                record.status.label()
            )));
        }
        record.status = SignUpStatus::Accepted;
        record.updated_at = now;
        txn.put_json(key, &record);
        txn.delete(waitlist_entry);
        project.accepted_count += 1;
        project.waitlisted_count = project.waitlisted_count.saturating_sub(1);
        promoted.push(number);
    }
    Ok(promoted)
}

/// The 1-based waitlist position of the place `waitlist_seq` of `project_id`; 0 if it is not on the waitlist.
pub fn waitlist_position(store: &dyn Store, project_id: &str, waitlist_seq: u64) -> Result<u32, DomainError> {
    let own = waitlist_key(project_id, waitlist_seq);
    let prefix = format!("signup_wl/{project_id}/");
    let mut ahead = 0u32;
    let mut found = false;
    store.scan(prefix.as_bytes(), None, &mut |key, _| {
        ahead += 1;
        if key == own.as_bytes() {
            found = true;
            return ControlFlow::Break(());
        }
        if key > own.as_bytes() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })?;
    Ok(if found { ahead } else { 0 })
}

/// Waitlist places up to and including the store key `after` (the page token), for numbering a page.
fn places_through(store: &dyn Store, prefix: &str, after: Option<&[u8]>) -> Result<u32, DomainError> {
    let Some(after) = after else {
        return Ok(0);
    };
    let mut count = 0u32;
    store.scan(prefix.as_bytes(), None, &mut |key, _| {
        if key > after {
            return ControlFlow::Break(());
        }
        count += 1;
        ControlFlow::Continue(())
    })?;
    Ok(count)
}

fn view_of(store: &dyn Store, record: SignUpRecord) -> Result<SignUpView, DomainError> {
    let waitlist_position = match record.status {
        SignUpStatus::Waitlisted => waitlist_position(store, &record.project_id, record.waitlist_seq)?,
        _ => 0,
    };
    Ok(SignUpView { record, waitlist_position })
}

/// Lists a project's sign-ups (staff, or the organising team's manager; waitlisted ones in waitlist order), or a
/// volunteer's (staff, or the volunteer themself).
pub fn list(
    store: &dyn Store,
    caller: &Caller,
    query: &ListSignUps,
    page: &PageRequest,
) -> Result<Page<SignUpView>, DomainError> {
    let wanted = |record: &SignUpRecord| query.status.is_none_or(|status| status == record.status);
    match &query.owner {
        SignUpOwner::Project(project_id) => {
            let project: ProjectRecord = store::get_json(store, project::project_key(project_id).as_bytes())?
                .ok_or_else(|| DomainError::not_found("project", project_id.clone()))?;
            if !(caller.has(Role::Staff) || caller.manages_team(&project.organising_team_id)) {
                return Err(DomainError::denied(format!(
                    "listing the sign-ups of a project needs the role staff, or to be the manager of the organising \
                     team {}",
                    project.organising_team_id
                )));
            }
            if query.status == Some(SignUpStatus::Waitlisted) {
                let prefix = format!("signup_wl/{project_id}/");
                page.check_prefix(&prefix)?;
                let mut position = places_through(store, &prefix, page.after.as_deref())?;
                return crate::page::collect(store, &prefix, page, |_, value| {
                    let number = String::from_utf8_lossy(value).into_owned();
                    let Some(record) =
                        store::get_json::<SignUpRecord>(store, signup_key(project_id, &number).as_bytes())?
                    else {
                        return Ok(None);
                    };
                    position += 1;
                    Ok(Some(SignUpView { record, waitlist_position: position }))
                });
            }
            let prefix = format!("signup/{project_id}/");
            crate::page::collect(store, &prefix, page, |key, value| {
                let record: SignUpRecord = store::decode(key, value)?;
                if !wanted(&record) {
                    return Ok(None);
                }
                view_of(store, record).map(Some)
            })
        }
        SignUpOwner::Volunteer(number) => {
            if !(caller.has(Role::Staff) || caller.is_volunteer(number)) {
                return Err(DomainError::denied(
                    "listing a volunteer's sign-ups needs the role staff, or to be that volunteer",
                ));
            }
            if store.get(volunteer::record_key(number).as_bytes())?.is_none() {
                return Err(DomainError::not_found("volunteer", number.clone()));
            }
            let prefix = format!("vol_signup/{number}/");
            crate::page::collect(store, &prefix, page, |key, _| {
                let project_id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                let Some(record) = store::get_json::<SignUpRecord>(store, signup_key(&project_id, number).as_bytes())?
                else {
                    return Ok(None);
                };
                if !wanted(&record) {
                    return Ok(None);
                }
                view_of(store, record).map(Some)
            })
        }
    }
}

impl SignUpView {
    /// The wire form.
    pub fn to_pb(&self) -> pb::SignUp {
        pb::SignUp {
            project_id: self.record.project_id.clone(),
            volunteer_number: self.record.volunteer_number.clone(),
            status: pb::SignUpStatus::from(self.record.status) as i32,
            waitlist_position: self.waitlist_position,
            created_at: Some(wire::timestamp(self.record.created_at)),
            updated_at: Some(wire::timestamp(self.record.updated_at)),
            arrival_sequence: self.record.waitlist_seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;

    use chrono::{Datelike, NaiveDate};
    use proptest::prelude::*;

    use super::*;
    use crate::audit::AuditContext;
    use crate::auth::Department;
    use crate::commit::Committer;
    use crate::crypto::NodeKeys;
    use crate::project::{CreateProject, ProjectRef, SetProjectCapacity};
    use crate::registry::team::{self, CreateTeam};
    use crate::registry::volunteer::{RegisterVolunteer, VolunteerRecord};
    use crate::store::SledStore;
    use crate::validate::identity_check_char;

    use crate::testing::{check, violated_fields as fields};

    fn sign_up_request(key: &str) -> pb::SignUpRequest {
        pb::SignUpRequest {
            project_id: "330106-P000001".into(),
            volunteer_number: "330106-00000001".into(),
            idempotency_key: key.into(),
        }
    }

    #[test]
    fn sign_up_requests_are_checked_field_by_field() {
        let cases: Vec<(pb::SignUpRequest, &[&str])> = vec![
            (sign_up_request(""), &[]),
            (sign_up_request("rush-1:retry.2_a"), &[]),
            (sign_up_request(&"k".repeat(64)), &[]),
            (sign_up_request(&"k".repeat(65)), &["idempotency_key"]),
            (sign_up_request("a/b"), &["idempotency_key"]),
            (sign_up_request("钥匙"), &["idempotency_key"]),
            (pb::SignUpRequest { project_id: String::new(), ..sign_up_request("") }, &["project_id"]),
            (pb::SignUpRequest { volunteer_number: "x y".into(), ..sign_up_request("") }, &["volunteer_number"]),
            (
                pb::SignUpRequest {
                    project_id: "p/1".into(),
                    volunteer_number: String::new(),
                    idempotency_key: "/".into(),
                },
                &["project_id", "volunteer_number", "idempotency_key"],
            ),
        ];
        for (request, expected) in cases {
            check::<SignUp, _>(request, expected);
        }
        let list = |project: &str, volunteer: &str, status: i32| pb::ListSignUpsRequest {
            project_id: project.into(),
            volunteer_number: volunteer.into(),
            status,
            ..Default::default()
        };
        let list_fields = |request: pb::ListSignUpsRequest| fields(ListSignUps::try_from(&request));
        assert!(list_fields(list("330106-P000001", "", 2)).is_empty());
        assert!(list_fields(list("", "330106-00000001", 0)).is_empty());
        assert_eq!(list_fields(list("", "", 0)), ["project_id"]);
        assert_eq!(list_fields(list("330106-P000001", "330106-00000001", 0)), ["volunteer_number"]);
        assert_eq!(list_fields(list("330106-P000001", "", 7)), ["status"]);
    }

    /// The waitlist index as stored: each key with the volunteer number it names.
    type WaitlistIndex = Vec<(Vec<u8>, String)>;

    /// A node's store and committer in a temporary directory, with one team and its published projects.
    struct Node {
        _dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        committer: Committer,
        keys: Arc<NodeKeys>,
    }

    fn staff() -> Caller {
        Caller {
            account_id: "acct-test".into(),
            name: "测试账号".into(),
            department: Department::EcologyBureau,
            roles: vec![Role::Staff],
            team_id: None,
            volunteer_number: None,
            request_id: "test".into(),
        }
    }

    impl Node {
        fn start() -> anyhow::Result<Self> {
            let dir = tempfile::tempdir()?;
            let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("db"), 8 << 20)?);
            let committer = Committer::start(store.clone(), 64, 64);
            Ok(Self { _dir: dir, store, committer, keys: Arc::new(NodeKeys::from_bytes(&[7u8; 32])) })
        }

        async fn write<T: Send + 'static>(
            &self,
            use_case: impl FnOnce(&mut Txn<'_>, &Caller) -> Result<T, DomainError> + Send + 'static,
        ) -> Result<T, DomainError> {
            let caller = staff();
            self.committer.write(AuditContext::new(&caller, "test", ""), move |txn| use_case(txn, &caller)).await
        }

        async fn team(&self) -> Result<String, DomainError> {
            let command = CreateTeam::try_from(pb::CreateTeamRequest {
                name: "西湖环保志愿队".into(),
                kind: pb::TeamKind::SocialOrganisation as i32,
                ..Default::default()
            })?;
            self.write(move |txn, caller| team::create(txn, "330106", caller, command)).await.map(|t| t.team.team_id)
        }

        /// A published project of `team_id` a week from now.
        async fn project(&self, team_id: &str, capacity: u32, risky: bool) -> Result<String, DomainError> {
            let start = Utc::now() + chrono::Duration::days(7);
            let command = CreateProject::try_from(pb::CreateProjectRequest {
                title: "西湖净滩".into(),
                activity_kind: pb::ActivityKind::GreenLowCarbon as i32,
                organising_team_id: team_id.into(),
                start_at: Some(wire::timestamp(start)),
                end_at: Some(wire::timestamp(start + chrono::Duration::hours(4))),
                capacity,
                risky,
                insured: risky,
                ..Default::default()
            })?;
            let project_id =
                self.write(move |txn, caller| project::create(txn, "330106", caller, command)).await?.project_id;
            let publish = ProjectRef { project_id: project_id.clone() };
            self.write(move |txn, caller| project::publish(txn, caller, publish)).await?;
            Ok(project_id)
        }

        /// Registers the `index`-th adult (born 1990).
        async fn volunteer(&self, index: u32) -> Result<String, DomainError> {
            let first17 = format!("33010619900101{:03}", index % 1000);
            let check = identity_check_char(&first17).unwrap_or('0');
            let command = RegisterVolunteer::parse(
                pb::RegisterVolunteerRequest {
                    name: format!("志愿者{index}"),
                    identity_number: format!("{first17}{check}"),
                    phone: "13800138000".into(),
                    political_status: pb::PoliticalStatus::Masses as i32,
                    consent_to_processing: true,
                    home_division_code: "330106".into(),
                    ..Default::default()
                },
                NaiveDate::from_ymd_opt(2026, 11, 28).unwrap_or_default(),
            )?;
            let keys = self.keys.clone();
            self.write(move |txn, caller| volunteer::register(txn, &keys, "330106", caller, command))
                .await
                .map(|record| record.volunteer_number)
        }

        async fn sign_up(&self, project_id: &str, number: &str) -> Result<SignUpAnswer, DomainError> {
            let command =
                SignUp { project_id: project_id.into(), volunteer_number: number.into(), idempotency_key: None };
            self.write(move |txn, caller| sign_up(txn, caller, command)).await
        }

        async fn cancel(&self, project_id: &str, number: &str) -> Result<CancelAnswer, DomainError> {
            let command = CancelSignUp { project_id: project_id.into(), volunteer_number: number.into() };
            self.write(move |txn, caller| cancel(txn, caller, command)).await
        }

        async fn set_capacity(&self, project_id: &str, capacity: u32) -> Result<Vec<String>, DomainError> {
            let command = SetProjectCapacity { project_id: project_id.into(), capacity };
            self.write(move |txn, caller| project::set_capacity(txn, caller, command)).await.map(|c| c.promoted)
        }

        fn project_record(&self, project_id: &str) -> anyhow::Result<ProjectRecord> {
            store::get_json(&*self.store, project::project_key(project_id).as_bytes())?
                .ok_or_else(|| anyhow::anyhow!("project {project_id} missing"))
        }

        /// Every sign-up record of the project, and the waitlist index in key order.
        fn sign_ups(&self, project_id: &str) -> anyhow::Result<(Vec<SignUpRecord>, WaitlistIndex)> {
            let mut records = Vec::new();
            let mut decode_failure = None;
            self.store.scan(format!("signup/{project_id}/").as_bytes(), None, &mut |key, value| {
                match store::decode::<SignUpRecord>(key, value) {
                    Ok(record) => records.push(record),
                    Err(error) => decode_failure = Some(error),
                }
                ControlFlow::Continue(())
            })?;
            if let Some(error) = decode_failure {
                return Err(error.into());
            }
            let mut waitlist = Vec::new();
            self.store.scan(format!("signup_wl/{project_id}/").as_bytes(), None, &mut |key, value| {
                waitlist.push((key.to_vec(), String::from_utf8_lossy(value).into_owned()));
                ControlFlow::Continue(())
            })?;
            Ok((records, waitlist))
        }
    }

    fn refusal<T: std::fmt::Debug>(result: Result<T, DomainError>) -> String {
        match result {
            Err(DomainError::FailedPrecondition(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn minors_need_consent_on_record_and_stay_off_risky_projects() -> anyhow::Result<()> {
        let node = Node::start()?;
        let team_id = node.team().await?;
        let ordinary = node.project(&team_id, 5, false).await?;
        let risky = node.project(&team_id, 5, true).await?;
        let number = node.volunteer(1).await?;
        // Registration refuses minors without consent, so a record without it can only be an older record: write
        // one directly. 15 years old on the day the project starts.
        let start_day = node.project_record(&ordinary)?.start_at.with_timezone(&wire::china()).date_naive();
        let birth = start_day.with_year(start_day.year() - 15).unwrap_or(start_day);
        let minor = number.clone();
        node.write(move |txn, _| {
            let mut record: VolunteerRecord = volunteer::load(txn, &minor)?;
            record.birth_date = birth;
            record.guardian_consent = GuardianConsent::None;
            txn.put_json(volunteer::record_key(&minor), &record);
            Ok(())
        })
        .await?;
        assert!(refusal(node.sign_up(&ordinary, &number).await).contains("without a guardian's consent"));
        assert!(refusal(node.sign_up(&risky, &number).await).contains("risky"));
        let minor = number.clone();
        node.write(move |txn, _| {
            let mut record: VolunteerRecord = volunteer::load(txn, &minor)?;
            record.guardian_consent = GuardianConsent::Guardian;
            txn.put_json(volunteer::record_key(&minor), &record);
            Ok(())
        })
        .await?;
        assert_eq!(node.sign_up(&ordinary, &number).await?.sign_up.record.status, SignUpStatus::Accepted);
        assert!(refusal(node.sign_up(&risky, &number).await).contains("minors may not be assigned"));
        Ok(())
    }

    #[tokio::test]
    async fn idempotent_retries_return_the_first_answer_even_after_a_change() -> anyhow::Result<()> {
        let node = Node::start()?;
        let team_id = node.team().await?;
        let project_id = node.project(&team_id, 1, false).await?;
        let first = node.volunteer(1).await?;
        let second = node.volunteer(2).await?;
        let keyed = |number: &str, key: &str| SignUp {
            project_id: project_id.clone(),
            volunteer_number: number.into(),
            idempotency_key: Some(key.into()),
        };
        let command = keyed(&first, "k-1");
        let answer = node.write(move |txn, caller| sign_up(txn, caller, command)).await?;
        assert!(!answer.already);
        let command = keyed(&second, "k-2");
        let waiting = node.write(move |txn, caller| sign_up(txn, caller, command)).await?;
        assert_eq!(waiting.sign_up.waitlist_position, 1);
        // The second is promoted; a retry still gets the first answer (waitlisted, position 1).
        assert_eq!(node.cancel(&project_id, &first).await?.promoted, Some(second.clone()));
        let command = keyed(&second, "k-2");
        let again = node.write(move |txn, caller| sign_up(txn, caller, command)).await?;
        assert!(again.already);
        assert_eq!(again.sign_up, waiting.sign_up);
        let command = keyed(&first, "k-2");
        assert_eq!(fields(node.write(move |txn, caller| sign_up(txn, caller, command)).await), ["idempotency_key"]);
        Ok(())
    }

    #[derive(Debug, Clone)]
    enum Op {
        SignUp(usize),
        Cancel(usize),
        Capacity(u32),
    }

    const VOLUNTEERS: usize = 8;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..VOLUNTEERS).prop_map(Op::SignUp),
            3 => (0..VOLUNTEERS).prop_map(Op::Cancel),
            1 => (1u32..6).prop_map(Op::Capacity),
        ]
    }

    /// The reference model: who holds a seat, and the waitlist in order of arrival.
    #[derive(Debug, Default)]
    struct Model {
        capacity: u32,
        accepted: Vec<usize>,
        waitlist: VecDeque<usize>,
    }

    /// Runs `ops` against a real store and committer and checks CAP-1 and the waitlist after every step.
    async fn run_ops(capacity: u32, ops: Vec<Op>) -> anyhow::Result<()> {
        let node = Node::start()?;
        let team_id = node.team().await?;
        let project_id = node.project(&team_id, capacity, false).await?;
        let mut numbers = Vec::new();
        for index in 0..VOLUNTEERS {
            numbers.push(node.volunteer(index as u32).await?);
        }
        let mut model = Model { capacity, ..Default::default() };
        for op in ops {
            match op {
                Op::SignUp(who) => {
                    let answer = node.sign_up(&project_id, &numbers[who]).await;
                    if model.accepted.contains(&who) || model.waitlist.contains(&who) {
                        anyhow::ensure!(matches!(answer, Err(DomainError::AlreadyExists { .. })), "{answer:?}");
                    } else if (model.accepted.len() as u32) < model.capacity {
                        anyhow::ensure!(answer?.sign_up.record.status == SignUpStatus::Accepted);
                        model.accepted.push(who);
                    } else {
                        let view = answer?.sign_up;
                        anyhow::ensure!(view.record.status == SignUpStatus::Waitlisted);
                        model.waitlist.push_back(who);
                        anyhow::ensure!(view.waitlist_position as usize == model.waitlist.len());
                    }
                }
                Op::Cancel(who) => {
                    let answer = node.cancel(&project_id, &numbers[who]).await;
                    if let Some(place) = model.waitlist.iter().position(|w| *w == who) {
                        model.waitlist.remove(place);
                        anyhow::ensure!(answer?.promoted.is_none());
                    } else if let Some(seat) = model.accepted.iter().position(|a| *a == who) {
                        model.accepted.remove(seat);
                        // Exactly one promoted, the first in line, when anyone waits.
                        let expected = model.waitlist.pop_front();
                        model.accepted.extend(expected);
                        anyhow::ensure!(answer?.promoted == expected.map(|w| numbers[w].clone()));
                    } else {
                        anyhow::ensure!(answer.is_err());
                    }
                }
                Op::Capacity(capacity) => {
                    let answer = node.set_capacity(&project_id, capacity).await;
                    if (capacity as usize) < model.accepted.len() {
                        anyhow::ensure!(matches!(answer, Err(DomainError::FailedPrecondition(_))), "{answer:?}");
                    } else {
                        model.capacity = capacity;
                        let free = capacity as usize - model.accepted.len();
                        let moved: Vec<usize> = (0..free).filter_map(|_| model.waitlist.pop_front()).collect();
                        model.accepted.extend(&moved);
                        let expected: Vec<String> = moved.iter().map(|w| numbers[*w].clone()).collect();
                        anyhow::ensure!(answer? == expected);
                    }
                }
            }
            // CAP-1 and the stored state agree with the model after every step.
            let project = node.project_record(&project_id)?;
            let (records, waitlist) = node.sign_ups(&project_id)?;
            let count = |status| records.iter().filter(|r| r.status == status).count() as u32;
            anyhow::ensure!(project.accepted_count <= project.capacity, "CAP-1 broken: {project:?}");
            anyhow::ensure!(project.accepted_count == count(SignUpStatus::Accepted));
            anyhow::ensure!(project.waitlisted_count == count(SignUpStatus::Waitlisted));
            anyhow::ensure!(project.accepted_count as usize == model.accepted.len());
            anyhow::ensure!(project.capacity == model.capacity);
            // No idle seat while someone waits.
            anyhow::ensure!(project.accepted_count == project.capacity || waitlist.is_empty());
            // The waitlist index is the model's line, in order of arrival.
            let line: Vec<String> = model.waitlist.iter().map(|w| numbers[*w].clone()).collect();
            let indexed: Vec<String> = waitlist.iter().map(|(_, number)| number.clone()).collect();
            anyhow::ensure!(indexed == line, "waitlist {indexed:?} != model {line:?}");
            for (key, number) in &waitlist {
                let record = records
                    .iter()
                    .find(|r| r.volunteer_number == *number)
                    .ok_or_else(|| anyhow::anyhow!("waitlisted {number} without a sign-up"))?;
                anyhow::ensure!(record.status == SignUpStatus::Waitlisted);
                anyhow::ensure!(*key == waitlist_key(&project_id, record.waitlist_seq).into_bytes());
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn random_sign_ups_cancels_and_capacity_changes_keep_cap_1_and_the_waitlist_order(
            capacity in 1u32..4,
            ops in proptest::collection::vec(op(), 1..40),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()
                .map_err(|error| TestCaseError::fail(error.to_string()))?;
            runtime.block_on(run_ops(capacity, ops)).map_err(|error| TestCaseError::fail(format!("{error:#}")))?;
        }
    }
}
