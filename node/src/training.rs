//! Training sessions and their attendance (the guidance, part 五(五): tiered training, pre-job basic, project
//! skills and backbone management, for volunteer workers, organisation heads and volunteers; every province at
//! least one a year). Attendance is part of each attendee's volunteer record (Regulations on Volunteer Service
//! 2017: a record holds the volunteer's training).
//!
//! Staff create sessions and keep their attendance lists; staff and team managers read them.
//!
//! Keys:
//! - `train/<training_id>` the session (`{node code}-TR{seq:06}`, sequence `training`);
//! - `train_att/<training>/<volunteer>` the attendance list; `vol_train/<volunteer>/<training>` its mirror, for
//!   the volunteer's record. Both change in the same write.
//!
//! A session and every change of its attendance count for the federation in the month of its date
//! (`federation::outbox`, same write).

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use ecovol_coordinator::rollup::Cell;
use ecovol_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::commit::Txn;
use crate::error::{DomainError, Violations};
use crate::evaluation::check_volunteer_number;
use crate::federation::outbox::{self, Change};
use crate::page::{Page, PageRequest};
use crate::registry::volunteer;
use crate::store::{self, Store};
use crate::wire;

/// Most characters of a session's title.
pub const TITLE_CHARS_MAX: usize = 200;
/// Most characters of a session's organiser.
pub const ORGANISER_CHARS_MAX: usize = 200;
/// Most volunteers added or removed in one call.
pub const ATTENDANCE_BATCH_MAX: usize = 1000;

/// The tier of a training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainingTier {
    PreJobBasic,
    ProjectSkills,
    BackboneManagement,
}

/// Who a training is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainingAudience {
    VolunteerWorkers,
    OrganisationHeads,
    Volunteers,
}

/// A session, as stored under `train/<training_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Training {
    pub training_id: String,
    pub title: String,
    pub tier: TrainingTier,
    /// A set: each audience at most once, in order.
    pub audiences: Vec<TrainingAudience>,
    pub date: NaiveDate,
    pub organiser: String,
    pub attendee_count: u32,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A validated `CreateTrainingRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTraining {
    pub title: String,
    pub tier: TrainingTier,
    pub audiences: Vec<TrainingAudience>,
    pub date: NaiveDate,
    pub organiser: String,
}

/// A validated change of attendance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendance {
    pub training_id: String,
    /// Distinct, in order.
    pub volunteer_numbers: Vec<String>,
}

pub fn training_key(training_id: &str) -> String {
    format!("train/{training_id}")
}

fn attendance_prefix(training_id: &str) -> String {
    format!("train_att/{training_id}/")
}

fn attendance_key(training_id: &str, volunteer_number: &str) -> String {
    format!("{}{volunteer_number}", attendance_prefix(training_id))
}

fn volunteer_prefix(volunteer_number: &str) -> String {
    format!("vol_train/{volunteer_number}/")
}

fn volunteer_key(volunteer_number: &str, training_id: &str) -> String {
    format!("{}{training_id}", volunteer_prefix(volunteer_number))
}

fn tier(value: i32) -> Option<TrainingTier> {
    match pb::TrainingTier::try_from(value).ok()? {
        pb::TrainingTier::PreJobBasic => Some(TrainingTier::PreJobBasic),
        pb::TrainingTier::ProjectSkills => Some(TrainingTier::ProjectSkills),
        pb::TrainingTier::BackboneManagement => Some(TrainingTier::BackboneManagement),
        pb::TrainingTier::Unspecified => None,
    }
}

fn audience(value: i32) -> Option<TrainingAudience> {
    match pb::TrainingAudience::try_from(value).ok()? {
        pb::TrainingAudience::VolunteerWorkers => Some(TrainingAudience::VolunteerWorkers),
        pb::TrainingAudience::OrganisationHeads => Some(TrainingAudience::OrganisationHeads),
        pb::TrainingAudience::Volunteers => Some(TrainingAudience::Volunteers),
        pb::TrainingAudience::Unspecified => None,
    }
}

fn check_training_id(violations: &mut Violations, training_id: &str) {
    crate::project::check_id(violations, "training_id", training_id, "330106-TR000001");
}

/// Validates a training id from the wire.
pub fn parse_training_id(training_id: &str) -> Result<String, DomainError> {
    let mut violations = Violations::new();
    check_training_id(&mut violations, training_id);
    violations.into_result()?;
    Ok(training_id.to_string())
}

impl TryFrom<pb::CreateTrainingRequest> for CreateTraining {
    type Error = DomainError;

    fn try_from(request: pb::CreateTrainingRequest) -> Result<Self, DomainError> {
        let mut violations = Violations::new();
        violations.text("title", &request.title, TITLE_CHARS_MAX);
        let tier = tier(request.tier);
        if tier.is_none() {
            violations.add("tier", "must be pre-job basic, project skills or backbone management");
        }
        let mut audiences = BTreeSet::new();
        if request.audiences.is_empty() {
            violations.add("audiences", "name at least one audience");
        }
        for (index, value) in request.audiences.iter().enumerate() {
            match audience(*value) {
                Some(audience) if !audiences.insert(audience) => {
                    violations.add(format!("audiences[{index}]"), "is named twice")
                }
                Some(_) => {}
                None => violations
                    .add(format!("audiences[{index}]"), "must be volunteer workers, organisation heads or volunteers"),
            }
        }
        let date = wire::parse_date(&request.date);
        if date.is_none() {
            violations.add("date", "must be a date YYYY-MM-DD");
        }
        violations.text("organiser", &request.organiser, ORGANISER_CHARS_MAX);
        violations.into_result()?;
        let (Some(tier), Some(date)) = (tier, date) else {
            return Err(DomainError::Internal("a checked training without tier or date".into()));
        };
        Ok(Self {
            title: request.title.trim().to_string(),
            tier,
            audiences: audiences.into_iter().collect(),
            date,
            organiser: request.organiser.trim().to_string(),
        })
    }
}

fn attendance(training_id: String, numbers: Vec<String>) -> Result<Attendance, DomainError> {
    let mut violations = Violations::new();
    check_training_id(&mut violations, &training_id);
    if numbers.is_empty() || numbers.len() > ATTENDANCE_BATCH_MAX {
        violations.add("volunteer_numbers", format!("name 1 to {ATTENDANCE_BATCH_MAX} volunteers"));
    }
    let mut seen = BTreeSet::new();
    let mut distinct = Vec::new();
    for (index, number) in numbers.into_iter().enumerate() {
        check_volunteer_number(&mut violations, &format!("volunteer_numbers[{index}]"), &number);
        if seen.insert(number.clone()) {
            distinct.push(number);
        }
    }
    violations.into_result()?;
    Ok(Attendance { training_id, volunteer_numbers: distinct })
}

impl TryFrom<pb::AddTrainingAttendanceRequest> for Attendance {
    type Error = DomainError;

    fn try_from(request: pb::AddTrainingAttendanceRequest) -> Result<Self, DomainError> {
        attendance(request.training_id, request.volunteer_numbers)
    }
}

impl TryFrom<pb::RemoveTrainingAttendanceRequest> for Attendance {
    type Error = DomainError;

    fn try_from(request: pb::RemoveTrainingAttendanceRequest) -> Result<Self, DomainError> {
        attendance(request.training_id, request.volunteer_numbers)
    }
}

fn load(txn: &Txn<'_>, training_id: &str) -> Result<Training, DomainError> {
    txn.get_json(&training_key(training_id))?.ok_or_else(|| DomainError::not_found("training", training_id))
}

/// Creates a session. Staff only.
pub fn create(
    txn: &mut Txn<'_>,
    node_code: &str,
    caller: &Caller,
    command: CreateTraining,
) -> Result<Training, DomainError> {
    caller.require_any(&[Role::Staff], "creating a training")?;
    let seq = txn.next_seq("training")?;
    let now = txn.now();
    let training = Training {
        training_id: format!("{node_code}-TR{seq:06}"),
        title: command.title,
        tier: command.tier,
        audiences: command.audiences,
        date: command.date,
        organiser: command.organiser,
        attendee_count: 0,
        created_by: caller.account_id.clone(),
        created_at: now,
        updated_at: now,
    };
    txn.target = training.training_id.clone();
    txn.put_json(training_key(&training.training_id), &training);
    record_held(txn, &training, 1, 0)?;
    Ok(training)
}

/// Tells the federation that the sessions held on `training`'s day changed by `trainings` and their attendance by
/// `trainees` (stats: a session counts in the China calendar month of its date, with its attendee count). Nothing
/// is recorded when neither moved.
fn record_held(txn: &mut Txn<'_>, training: &Training, trainings: i64, trainees: i64) -> Result<(), DomainError> {
    if trainings == 0 && trainees == 0 {
        return Ok(());
    }
    let month = Cell { month: training.date.year().max(0) as u32 * 100 + training.date.month(), kind: 0 };
    let mut change = Change::new(pb::ChangeKind::TrainingHeld, training.training_id.clone());
    change.deltas.add(month, |f| {
        f.trainings += trainings;
        f.trainees += trainees;
    });
    outbox::record(txn, change)
}

/// Adds volunteers to the attendance list; one already on it is left as is. Every volunteer must be on this
/// node (NotFound names the first that is not). Staff only.
pub fn add_attendance(txn: &mut Txn<'_>, caller: &Caller, command: Attendance) -> Result<Training, DomainError> {
    txn.target = command.training_id.clone();
    caller.require_any(&[Role::Staff], "recording training attendance")?;
    let mut training = load(txn, &command.training_id)?;
    let mut added = 0;
    for number in &command.volunteer_numbers {
        volunteer::load(txn, number)?;
        let key = attendance_key(&training.training_id, number);
        if txn.get(key.as_bytes())?.is_none() {
            txn.put(key, Vec::new());
            txn.put(volunteer_key(number, &training.training_id), Vec::new());
            added += 1;
        }
    }
    training.attendee_count += added;
    training.updated_at = txn.now();
    txn.detail = format!("added {added} of {}", command.volunteer_numbers.len());
    txn.put_json(training_key(&training.training_id), &training);
    record_held(txn, &training, 0, i64::from(added))?;
    Ok(training)
}

/// Removes volunteers from the attendance list; each must be on it (NotFound otherwise). Staff only.
pub fn remove_attendance(txn: &mut Txn<'_>, caller: &Caller, command: Attendance) -> Result<Training, DomainError> {
    txn.target = command.training_id.clone();
    caller.require_any(&[Role::Staff], "recording training attendance")?;
    let mut training = load(txn, &command.training_id)?;
    let attendees_before = training.attendee_count;
    for number in &command.volunteer_numbers {
        let key = attendance_key(&training.training_id, number);
        if txn.get(key.as_bytes())?.is_none() {
            return Err(DomainError::not_found(
                "attendance of training",
                format!("{} by {number}", training.training_id),
            ));
        }
        txn.delete(key);
        txn.delete(volunteer_key(number, &training.training_id));
    }
    training.attendee_count = training.attendee_count.saturating_sub(command.volunteer_numbers.len() as u32);
    training.updated_at = txn.now();
    txn.detail = format!("removed {}", command.volunteer_numbers.len());
    txn.put_json(training_key(&training.training_id), &training);
    record_held(txn, &training, 0, i64::from(training.attendee_count) - i64::from(attendees_before))?;
    Ok(training)
}

fn require_reader(caller: &Caller) -> Result<(), DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager], "reading trainings")
}

/// The last path segment of each key under `prefix`.
fn suffixes(store: &dyn Store, prefix: &str) -> Result<Vec<String>, DomainError> {
    let mut found = Vec::new();
    store.scan(prefix.as_bytes(), None, &mut |key, _| {
        found.push(String::from_utf8_lossy(&key[prefix.len().min(key.len())..]).into_owned());
        ControlFlow::Continue(())
    })?;
    Ok(found)
}

/// One session with its attendees' volunteer numbers. Staff and team managers.
pub fn get(store: &dyn Store, caller: &Caller, training_id: &str) -> Result<(Training, Vec<String>), DomainError> {
    require_reader(caller)?;
    let training: Training = store::get_json(store, training_key(training_id).as_bytes())?
        .ok_or_else(|| DomainError::not_found("training", training_id))?;
    let attendees = suffixes(store, &attendance_prefix(training_id))?;
    Ok((training, attendees))
}

/// Sessions in id order. Staff and team managers.
pub fn list(store: &dyn Store, caller: &Caller, page: &PageRequest) -> Result<Page<Training>, DomainError> {
    require_reader(caller)?;
    crate::page::collect(store, "train/", page, |key, value| Ok(Some(store::decode(key, value)?)))
}

/// The sessions a volunteer attended, in id order (part of the volunteer's record).
pub fn of_volunteer(store: &dyn Store, volunteer_number: &str) -> Result<Vec<Training>, DomainError> {
    let mut trainings = Vec::new();
    for training_id in suffixes(store, &volunteer_prefix(volunteer_number))? {
        if let Some(training) = store::get_json(store, training_key(&training_id).as_bytes())? {
            trainings.push(training);
        }
    }
    Ok(trainings)
}

// ----- wire conversions -----

impl From<TrainingTier> for pb::TrainingTier {
    fn from(tier: TrainingTier) -> Self {
        match tier {
            TrainingTier::PreJobBasic => pb::TrainingTier::PreJobBasic,
            TrainingTier::ProjectSkills => pb::TrainingTier::ProjectSkills,
            TrainingTier::BackboneManagement => pb::TrainingTier::BackboneManagement,
        }
    }
}

impl From<TrainingAudience> for pb::TrainingAudience {
    fn from(audience: TrainingAudience) -> Self {
        match audience {
            TrainingAudience::VolunteerWorkers => pb::TrainingAudience::VolunteerWorkers,
            TrainingAudience::OrganisationHeads => pb::TrainingAudience::OrganisationHeads,
            TrainingAudience::Volunteers => pb::TrainingAudience::Volunteers,
        }
    }
}

impl From<&Training> for pb::Training {
    fn from(training: &Training) -> Self {
        pb::Training {
            training_id: training.training_id.clone(),
            title: training.title.clone(),
            tier: pb::TrainingTier::from(training.tier) as i32,
            audiences: training.audiences.iter().map(|audience| pb::TrainingAudience::from(*audience) as i32).collect(),
            date: training.date.format("%Y-%m-%d").to_string(),
            organiser: training.organiser.clone(),
            attendee_count: training.attendee_count,
            created_by: training.created_by.clone(),
            created_at: Some(wire::timestamp(training.created_at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(tier: pb::TrainingTier, audiences: &[i32], date: &str) -> pb::CreateTrainingRequest {
        pb::CreateTrainingRequest {
            title: "岗前基础培训".into(),
            tier: tier as i32,
            audiences: audiences.to_vec(),
            date: date.into(),
            organiser: "西湖区生态环境局".into(),
        }
    }

    fn check<T: std::fmt::Debug>(result: Result<T, DomainError>, expected: &[&str]) {
        match result {
            Ok(value) => assert!(expected.is_empty(), "accepted {value:?}, expected {expected:?}"),
            Err(DomainError::Invalid(violations)) => {
                let fields: Vec<&str> = violations.iter().map(|violation| violation.field.as_str()).collect();
                assert_eq!(fields, expected);
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_training_request_is_checked_field_by_field() {
        use pb::TrainingAudience as A;
        use pb::TrainingTier as T;
        let (workers, heads) = (A::VolunteerWorkers as i32, A::OrganisationHeads as i32);
        check(CreateTraining::try_from(create(T::PreJobBasic, &[workers, heads], "2026-03-05")), &[]);
        check(CreateTraining::try_from(create(T::Unspecified, &[], "2026-02-30")), &["tier", "audiences", "date"]);
        check(
            CreateTraining::try_from(create(T::ProjectSkills, &[workers, 0, 9, workers], "5 March")),
            &["audiences[1]", "audiences[2]", "audiences[3]", "date"],
        );
        let blank = pb::CreateTrainingRequest {
            title: " ".into(),
            organiser: String::new(),
            ..create(T::BackboneManagement, &[heads], "2026-12-05")
        };
        check(CreateTraining::try_from(blank), &["title", "organiser"]);
        let sorted =
            CreateTraining::try_from(create(T::PreJobBasic, &[A::Volunteers as i32, workers], "2026-06-05")).unwrap();
        assert_eq!(sorted.audiences, [TrainingAudience::VolunteerWorkers, TrainingAudience::Volunteers]);
    }

    #[test]
    fn an_attendance_request_is_checked_and_deduplicated() {
        let request = |id: &str, numbers: &[&str]| pb::AddTrainingAttendanceRequest {
            training_id: id.into(),
            volunteer_numbers: numbers.iter().map(|number| number.to_string()).collect(),
        };
        check(Attendance::try_from(request("330106-TR000001", &["330106-00000001"])), &[]);
        check(Attendance::try_from(request("", &[])), &["training_id", "volunteer_numbers"]);
        check(
            Attendance::try_from(request("330106-TR000001", &["330106-00000001", "no/such"])),
            &["volunteer_numbers[1]"],
        );
        let twice = Attendance::try_from(request("330106-TR000001", &["330106-00000001", "330106-00000001"])).unwrap();
        assert_eq!(twice.volunteer_numbers, ["330106-00000001"]);
    }
}
