//! Evaluation of service: the organising team's rating of a volunteer's service on a project, and staff's record
//! of a project's outcome (the guidance, part 五(六); a volunteer record holds its evaluations: Regulations on
//! Volunteer Service 2017, MCA Order 67).
//!
//! Rules:
//! - a rating is 1 to 5 with a comment of at most 500 characters, made by the manager of the project's organising
//!   team or by staff, only for a volunteer with at least one **confirmed** service record on the project;
//! - one evaluation per (project, volunteer): rating again replaces it as its next version, and every version is
//!   kept (never overwritten silently);
//! - a project's outcome (participants, people reached, score 1 to 5, summary of at most 2000 characters) is
//!   recorded by staff once the project is published or closed and past its end; recording again is a new version.
//!
//! The volunteer's profile (`profile`) gathers what their record shows of recognition: confirmed hours, ratings,
//! trainings and stars.
//!
//! Ratings are integers; averages are computed exactly from a sum and a count, never stored as floats.
//!
//! Keys:
//! - `eval/<project>/<volunteer>` the evaluation; `eval_v/<project>/<volunteer>/<version:010>` every version;
//! - `eval_vol/<volunteer>/<project>` index of a volunteer's evaluations;
//! - `outcome/<project>` the outcome; `outcome_v/<project>/<version:010>` every version.
//!
//! The federation counts the current version of each evaluation in the month it was rated (`federation::outbox`,
//! same write).

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use ecovol_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::commit::Txn;
use crate::error::{DomainError, Violations};
use crate::federation::outbox::{self, Change, cell_at};
use crate::hours::{self, RecordState, ServiceRecord};
use crate::project::{self, ProjectStatus};
use crate::registry::volunteer;
use crate::store::{self, Store};
use crate::wire;

/// Most characters of an evaluation's comment.
pub const COMMENT_CHARS_MAX: usize = 500;
/// Most characters of an outcome's summary.
pub const SUMMARY_CHARS_MAX: usize = 2000;
/// The scale of ratings and scores.
pub const RATING_MIN: u32 = 1;
pub const RATING_MAX: u32 = 5;

/// A rating of one volunteer's service on one project, as stored under `eval/<project>/<volunteer>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub project_id: String,
    pub volunteer_number: String,
    pub organising_team_id: String,
    pub rating: u32,
    pub comment: String,
    pub version: u32,
    pub rated_by: String,
    pub rated_at: DateTime<Utc>,
}

/// A project's outcome, as stored under `outcome/<project>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectOutcome {
    pub project_id: String,
    pub participants: u32,
    pub people_reached: u64,
    pub score: u32,
    pub summary: String,
    pub version: u32,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// A validated `RateVolunteerRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateVolunteer {
    pub project_id: String,
    pub volunteer_number: String,
    pub rating: u32,
    pub comment: String,
}

/// A validated `RecordProjectOutcomeRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    pub project_id: String,
    pub participants: u32,
    pub people_reached: u64,
    pub score: u32,
    pub summary: String,
}

pub fn evaluation_key(project_id: &str, volunteer_number: &str) -> String {
    format!("eval/{project_id}/{volunteer_number}")
}

fn evaluation_version_key(project_id: &str, volunteer_number: &str, version: u32) -> String {
    format!("eval_v/{project_id}/{volunteer_number}/{version:010}")
}

fn volunteer_index_key(volunteer_number: &str, project_id: &str) -> String {
    format!("eval_vol/{volunteer_number}/{project_id}")
}

pub fn outcome_key(project_id: &str) -> String {
    format!("outcome/{project_id}")
}

fn outcome_version_key(project_id: &str, version: u32) -> String {
    format!("outcome_v/{project_id}/{version:010}")
}

/// Adds the volunteer registry's own number check under `field`.
pub(crate) fn check_volunteer_number(violations: &mut Violations, field: &str, number: &str) {
    if let Err(DomainError::Invalid(found)) = volunteer::parse_volunteer_number(number) {
        for violation in found {
            violations.add(field, violation.description);
        }
    }
}

fn check_scale(violations: &mut Violations, field: &str, value: u32) {
    if !(RATING_MIN..=RATING_MAX).contains(&value) {
        violations.add(field, format!("must be between {RATING_MIN} and {RATING_MAX}, got {value}"));
    }
}

impl TryFrom<pb::RateVolunteerRequest> for RateVolunteer {
    type Error = DomainError;

    fn try_from(request: pb::RateVolunteerRequest) -> Result<Self, DomainError> {
        let mut violations = Violations::new();
        project::check_id(&mut violations, "project_id", &request.project_id, "330106-P000007");
        check_volunteer_number(&mut violations, "volunteer_number", &request.volunteer_number);
        check_scale(&mut violations, "rating", request.rating);
        violations.optional_text("comment", &request.comment, COMMENT_CHARS_MAX);
        violations.into_result()?;
        Ok(Self {
            project_id: request.project_id,
            volunteer_number: request.volunteer_number,
            rating: request.rating,
            comment: request.comment.trim().to_string(),
        })
    }
}

impl TryFrom<pb::RecordProjectOutcomeRequest> for RecordOutcome {
    type Error = DomainError;

    fn try_from(request: pb::RecordProjectOutcomeRequest) -> Result<Self, DomainError> {
        let mut violations = Violations::new();
        project::check_id(&mut violations, "project_id", &request.project_id, "330106-P000007");
        check_scale(&mut violations, "score", request.score);
        violations.text("summary", &request.summary, SUMMARY_CHARS_MAX);
        violations.into_result()?;
        Ok(Self {
            project_id: request.project_id,
            participants: request.participants,
            people_reached: request.people_reached,
            score: request.score,
            summary: request.summary.trim().to_string(),
        })
    }
}

/// Validates a project id from the wire.
pub fn parse_project_id(project_id: &str) -> Result<String, DomainError> {
    let mut violations = Violations::new();
    project::check_id(&mut violations, "project_id", project_id, "330106-P000007");
    violations.into_result()?;
    Ok(project_id.to_string())
}

fn rates(caller: &Caller, team_id: &str) -> bool {
    caller.has(Role::Staff) || caller.manages_team(team_id)
}

/// True if the volunteer holds a confirmed service record on the project.
fn has_confirmed_service(txn: &Txn<'_>, project_id: &str, volunteer_number: &str) -> Result<bool, DomainError> {
    let mut found = false;
    let mut failure = None;
    txn.store().scan(format!("svc_proj/{project_id}/").as_bytes(), None, &mut |key, _| {
        let record_id = String::from_utf8_lossy(key).rsplit('/').next().unwrap_or_default().to_string();
        match txn.get_json::<ServiceRecord>(&hours::record_key(&record_id)) {
            Ok(Some(record))
                if record.volunteer_number == volunteer_number && record.state == RecordState::Confirmed =>
            {
                found = true;
                ControlFlow::Break(())
            }
            Ok(_) => ControlFlow::Continue(()),
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        }
    })?;
    match failure {
        Some(error) => Err(error.into()),
        None => Ok(found),
    }
}

/// Rates a volunteer's service on a project; rating again makes the next version.
pub fn rate(txn: &mut Txn<'_>, caller: &Caller, command: RateVolunteer) -> Result<Evaluation, DomainError> {
    txn.target = format!("{}/{}", command.project_id, command.volunteer_number);
    let project = project::load(txn, &command.project_id)?;
    if !rates(caller, &project.organising_team_id) {
        return Err(DomainError::denied(format!(
            "rating a volunteer's service needs the role staff, or to be the manager of the organising team {}",
            project.organising_team_id
        )));
    }
    volunteer::load(txn, &command.volunteer_number)?;
    if !has_confirmed_service(txn, &command.project_id, &command.volunteer_number)? {
        return Err(DomainError::FailedPrecondition(format!(
            "volunteer {} has no confirmed service record on project {}: confirm their hours first",
            command.volunteer_number, command.project_id
        )));
    }
    let key = evaluation_key(&command.project_id, &command.volunteer_number);
    let previous: Option<Evaluation> = txn.get_json(&key)?;
    // The federation counts the current version of each evaluation in the month it was rated: a new version takes
    // the old one out of its month and puts itself in.
    let mut change = Change::new(pb::ChangeKind::Evaluated, command.project_id.clone());
    if let Some(previous) = &previous {
        let rating = i64::from(previous.rating);
        change.deltas.add(cell_at(previous.rated_at, 0), |f| {
            f.rating_sum -= rating;
            f.rating_count -= 1;
        });
    }
    let rating = i64::from(command.rating);
    change.deltas.add(cell_at(txn.now(), 0), |f| {
        f.rating_sum += rating;
        f.rating_count += 1;
    });
    if !change.deltas.is_empty() {
        outbox::record(txn, change)?;
    }
    let evaluation = Evaluation {
        project_id: command.project_id,
        volunteer_number: command.volunteer_number,
        organising_team_id: project.organising_team_id,
        rating: command.rating,
        comment: command.comment,
        version: previous.map_or(1, |previous| previous.version + 1),
        rated_by: caller.account_id.clone(),
        rated_at: txn.now(),
    };
    txn.detail = format!("rating {} (version {})", evaluation.rating, evaluation.version);
    txn.put_json(key, &evaluation);
    txn.put_json(
        evaluation_version_key(&evaluation.project_id, &evaluation.volunteer_number, evaluation.version),
        &evaluation,
    );
    txn.put(volunteer_index_key(&evaluation.volunteer_number, &evaluation.project_id), Vec::new());
    Ok(evaluation)
}

/// Records a project's outcome; recording again makes the next version. Staff only.
pub fn record_outcome(
    txn: &mut Txn<'_>,
    caller: &Caller,
    command: RecordOutcome,
) -> Result<ProjectOutcome, DomainError> {
    txn.target = command.project_id.clone();
    caller.require_any(&[Role::Staff], "recording a project's outcome")?;
    let project = project::load(txn, &command.project_id)?;
    if !matches!(project.status, ProjectStatus::Published | ProjectStatus::Closed) {
        return Err(DomainError::FailedPrecondition(format!(
            "project {} is {}: an outcome is recorded for a published or closed project",
            project.project_id,
            project.status.label()
        )));
    }
    let now = txn.now();
    if now <= project.end_at {
        return Err(DomainError::FailedPrecondition(format!(
            "project {} ends at {}: its outcome is recorded after the end",
            project.project_id, project.end_at
        )));
    }
    let key = outcome_key(&command.project_id);
    let previous: Option<ProjectOutcome> = txn.get_json(&key)?;
    let outcome = ProjectOutcome {
        project_id: command.project_id,
        participants: command.participants,
        people_reached: command.people_reached,
        score: command.score,
        summary: command.summary,
        version: previous.map_or(1, |previous| previous.version + 1),
        recorded_by: caller.account_id.clone(),
        recorded_at: now,
    };
    txn.detail = format!("score {} (version {})", outcome.score, outcome.version);
    txn.put_json(key, &outcome);
    txn.put_json(outcome_version_key(&outcome.project_id, outcome.version), &outcome);
    Ok(outcome)
}

/// A project's outcome (if recorded) and the evaluations of its volunteers. Staff and the organising team's
/// manager.
pub fn get_outcome(
    store: &dyn Store,
    caller: &Caller,
    project_id: &str,
) -> Result<(Option<ProjectOutcome>, Vec<Evaluation>), DomainError> {
    caller.require_any(&[Role::Staff, Role::TeamManager], "reading a project's outcome")?;
    let project: project::ProjectRecord = store::get_json(store, project::project_key(project_id).as_bytes())?
        .ok_or_else(|| DomainError::not_found("project", project_id))?;
    if !rates(caller, &project.organising_team_id) {
        return Err(DomainError::denied(format!(
            "the outcome of project {project_id} is visible to staff and the manager of team {}",
            project.organising_team_id
        )));
    }
    let outcome = store::get_json(store, outcome_key(project_id).as_bytes())?;
    let mut evaluations = Vec::new();
    store::scan_json(store, &format!("eval/{project_id}/"), |evaluation: Evaluation| evaluations.push(evaluation))?;
    Ok((outcome, evaluations))
}

/// Every evaluation of a volunteer (one per project they were rated on).
pub fn of_volunteer(store: &dyn Store, volunteer_number: &str) -> Result<Vec<Evaluation>, DomainError> {
    let prefix = format!("eval_vol/{volunteer_number}/");
    let mut projects = Vec::new();
    let mut failure = None;
    store.scan(prefix.as_bytes(), None, &mut |key, _| {
        match std::str::from_utf8(key).ok().and_then(|key| key.strip_prefix(&prefix)) {
            Some(project_id) => projects.push(project_id.to_string()),
            None => failure = Some(DomainError::Internal(format!("{prefix}: a key that is not text"))),
        }
        ControlFlow::Continue(())
    })?;
    if let Some(error) = failure {
        return Err(error);
    }
    let mut evaluations = Vec::with_capacity(projects.len());
    for project_id in projects {
        if let Some(evaluation) = store::get_json(store, evaluation_key(&project_id, volunteer_number).as_bytes())? {
            evaluations.push(evaluation);
        }
    }
    Ok(evaluations)
}

/// The exact sum and count of ratings, and their average as decimal text with two places, halves rounded up
/// ("4.67"); empty when there is no rating.
pub fn rating_summary(evaluations: &[Evaluation]) -> (u64, u32, String) {
    let sum: u64 = evaluations.iter().map(|evaluation| u64::from(evaluation.rating)).sum();
    let count = evaluations.len() as u32;
    (sum, count, average_text(sum, count))
}

/// `sum / count` with two decimals, halves rounded up; empty for no count.
pub fn average_text(sum: u64, count: u32) -> String {
    if count == 0 {
        return String::new();
    }
    let count = u64::from(count);
    let hundredths = (sum * 200 + count) / (2 * count);
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

// ----- the volunteer's profile -----

/// Evaluations a profile shows when the request does not say; and at most.
pub const PROFILE_EVALUATIONS_DEFAULT: usize = 20;
pub const PROFILE_EVALUATIONS_MAX: usize = 100;

/// A validated `GetVolunteerProfileRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileQuery {
    pub volunteer_number: String,
    pub evaluations_max: usize,
}

impl TryFrom<&pb::GetVolunteerProfileRequest> for ProfileQuery {
    type Error = DomainError;

    fn try_from(request: &pb::GetVolunteerProfileRequest) -> Result<Self, DomainError> {
        let mut violations = Violations::new();
        check_volunteer_number(&mut violations, "volunteer_number", &request.volunteer_number);
        let evaluations_max = match request.evaluations_max as usize {
            0 => PROFILE_EVALUATIONS_DEFAULT,
            max if max > PROFILE_EVALUATIONS_MAX => {
                violations.add("evaluations_max", format!("must be at most {PROFILE_EVALUATIONS_MAX}"));
                max
            }
            max => max,
        };
        violations.into_result()?;
        Ok(Self { volunteer_number: request.volunteer_number.clone(), evaluations_max })
    }
}

/// A volunteer's recognition: what their record shows of hours, ratings, training and stars.
#[derive(Debug, Clone)]
pub struct VolunteerProfile {
    pub volunteer_number: String,
    pub confirmed: hours::ConfirmedTotal,
    pub confirmed_record_count: u32,
    pub rating_sum: u64,
    pub rating_count: u32,
    pub rating_average: String,
    /// The latest, newest first.
    pub evaluations: Vec<Evaluation>,
    pub trainings: Vec<crate::training::Training>,
    pub star: crate::stars::StarState,
    pub star_events: Vec<crate::stars::StarEvent>,
    /// Confirmed minutes served in other counties (mutual recognition).
    pub elsewhere_minutes: u64,
    pub certifications: Vec<crate::stars::Certification>,
    /// Honours from selection campaigns.
    pub honours: Vec<ecovol_proto::v1::Honour>,
}

/// Counts the volunteer's confirmed service records.
fn confirmed_record_count(store: &dyn Store, volunteer_number: &str) -> Result<u32, DomainError> {
    let mut record_ids = Vec::new();
    store.scan(format!("svc_vol/{volunteer_number}/").as_bytes(), None, &mut |key, _| {
        record_ids.push(String::from_utf8_lossy(key).rsplit('/').next().unwrap_or_default().to_string());
        ControlFlow::Continue(())
    })?;
    let mut count = 0;
    for record_id in record_ids {
        let record: Option<ServiceRecord> = store::get_json(store, hours::record_key(&record_id).as_bytes())?;
        if record.is_some_and(|record| record.state == RecordState::Confirmed) {
            count += 1;
        }
    }
    Ok(count)
}

/// A volunteer's profile for `caller`: staff, the volunteer themself, and the managers of the volunteer's teams
/// (the volunteer registry's read rule).
pub fn profile(store: &dyn Store, caller: &Caller, query: &ProfileQuery) -> Result<VolunteerProfile, DomainError> {
    let number = &query.volunteer_number;
    volunteer::get(store, caller, number)?;
    let mut evaluations = of_volunteer(store, number)?;
    let (rating_sum, rating_count, rating_average) = rating_summary(&evaluations);
    evaluations.sort_by(|a, b| b.rated_at.cmp(&a.rated_at).then_with(|| a.project_id.cmp(&b.project_id)));
    evaluations.truncate(query.evaluations_max);
    Ok(VolunteerProfile {
        volunteer_number: number.clone(),
        confirmed: hours::confirmed_total(store, number)?,
        confirmed_record_count: confirmed_record_count(store, number)?,
        rating_sum,
        rating_count,
        rating_average,
        evaluations,
        trainings: crate::training::of_volunteer(store, number)?,
        star: crate::stars::state(store, number)?,
        star_events: crate::stars::events(store, number)?,
        elsewhere_minutes: crate::stars::elsewhere_minutes(store, number)?,
        certifications: crate::stars::certifications(store, number)?,
        honours: crate::campaign::honours(store, number)?,
    })
}

impl From<&VolunteerProfile> for pb::GetVolunteerProfileResponse {
    fn from(profile: &VolunteerProfile) -> Self {
        pb::GetVolunteerProfileResponse {
            volunteer_number: profile.volunteer_number.clone(),
            confirmed_minutes: profile.confirmed.confirmed_minutes,
            confirmed_hours_x100: profile.confirmed.confirmed_hours_x100,
            confirmed_record_count: profile.confirmed_record_count,
            rating_sum: profile.rating_sum,
            rating_count: profile.rating_count,
            rating_average: profile.rating_average.clone(),
            evaluations: profile.evaluations.iter().map(pb::Evaluation::from).collect(),
            trainings: profile.trainings.iter().map(pb::Training::from).collect(),
            star: profile.star.star,
            star_reached_at: wire::optional_timestamp(profile.star.reached_at),
            star_events: profile.star_events.iter().map(pb::StarEvent::from).collect(),
            elsewhere_minutes: profile.elsewhere_minutes,
            certifications: profile.certifications.iter().map(pb::StarCertification::from).collect(),
            honours: profile.honours.clone(),
        }
    }
}

// ----- wire conversions -----

impl From<&Evaluation> for pb::Evaluation {
    fn from(evaluation: &Evaluation) -> Self {
        pb::Evaluation {
            project_id: evaluation.project_id.clone(),
            volunteer_number: evaluation.volunteer_number.clone(),
            organising_team_id: evaluation.organising_team_id.clone(),
            rating: evaluation.rating,
            comment: evaluation.comment.clone(),
            version: evaluation.version,
            rated_by: evaluation.rated_by.clone(),
            rated_at: Some(wire::timestamp(evaluation.rated_at)),
        }
    }
}

impl From<&ProjectOutcome> for pb::ProjectOutcome {
    fn from(outcome: &ProjectOutcome) -> Self {
        pb::ProjectOutcome {
            project_id: outcome.project_id.clone(),
            participants: outcome.participants,
            people_reached: outcome.people_reached,
            score: outcome.score,
            summary: outcome.summary.clone(),
            version: outcome.version,
            recorded_by: outcome.recorded_by.clone(),
            recorded_at: Some(wire::timestamp(outcome.recorded_at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate_request(project_id: &str, volunteer_number: &str, rating: u32, comment: &str) -> pb::RateVolunteerRequest {
        pb::RateVolunteerRequest {
            project_id: project_id.into(),
            volunteer_number: volunteer_number.into(),
            rating,
            comment: comment.into(),
        }
    }

    /// Checks a conversion: `Ok` if `expected` is empty, else InvalidArgument naming exactly those fields.
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
    fn a_rating_request_is_checked_field_by_field() {
        let long = "评".repeat(501);
        let table: Vec<(pb::RateVolunteerRequest, Vec<&str>)> = vec![
            (rate_request("330106-P000001", "330106-00000001", 5, "认真负责"), vec![]),
            (rate_request("330106-P000001", "330106-00000001", 1, ""), vec![]),
            (rate_request("330106-P000001", "330106-00000001", 0, ""), vec!["rating"]),
            (rate_request("330106-P000001", "330106-00000001", 6, ""), vec!["rating"]),
            (rate_request("", "", 9, &long), vec!["project_id", "volunteer_number", "rating", "comment"]),
            (rate_request("330106/P1", "330106-00000001", 3, "a\u{7}"), vec!["project_id", "comment"]),
        ];
        for (request, expected) in table {
            check(RateVolunteer::try_from(request), &expected);
        }
    }

    #[test]
    fn an_outcome_request_is_checked_field_by_field() {
        let outcome = |score, summary: &str| pb::RecordProjectOutcomeRequest {
            project_id: "330106-P000001".into(),
            participants: 30,
            people_reached: 1200,
            score,
            summary: summary.into(),
        };
        check(RecordOutcome::try_from(outcome(4, "清理垃圾 300 公斤")), &[]);
        check(RecordOutcome::try_from(outcome(0, "")), &["score", "summary"]);
        check(RecordOutcome::try_from(outcome(5, &"x".repeat(2001))), &["summary"]);
        check(RecordOutcome::try_from(outcome(5, &"x".repeat(2000))), &[]);
    }

    #[test]
    fn averages_are_exact_decimal_text() {
        for (sum, count, text) in [
            (0, 0, ""),
            (5, 1, "5.00"),
            (14, 3, "4.67"),
            (13, 3, "4.33"),
            (9, 2, "4.50"),
            (1, 8, "0.13"),
            (2, 3, "0.67"),
        ] {
            assert_eq!(average_text(sum, count), text, "{sum}/{count}");
        }
    }
}
