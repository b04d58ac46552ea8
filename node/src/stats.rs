//! Statistics of one node: every figure is defined **once**, here, as a pure function (`aggregate`) over facts
//! collected from the store (`collect`), so the federation's roll-ups reuse the same definitions.
//!
//! Periods are China calendar days (UTC+8) and months are China calendar months: a service interval starting
//! 2026-01-31T23:30+08:00 counts in January. A range is `[start_date 00:00, end_date + 1 day 00:00)` China time.
//!
//! `collect` scans the store (volunteers, teams, projects, sign-ups, service records): bounded by the size of one
//! county (~10^5 volunteers, ~10^5 records a year). The federation issue replaces these scans with incremental
//! roll-ups kept in the same write as each change; `aggregate` stays the definition both use.
//!
//! Trainings, ratings and stars are read through private views of the stored JSON of their modules (their key
//! contract only): `train/<id>` (`date`, `attendee_count`), `eval/<project>/<volunteer>` (`rating`, `rated_at`; the
//! current version of each evaluation), `star/<volunteer>` (`star`, 0 meaning none).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Utc};
use ecovol_proto::v1 as pb;
use serde::Deserialize;

use crate::auth::{Caller, Role};
use crate::error::{DomainError, Violations};
use crate::project::ActivityKind;
use crate::store::{self, Store};
use crate::wire;

/// Longest range a query may cover, in months (five years).
pub const RANGE_MONTHS_MAX: u32 = 60;

/// A validated range of China calendar days, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsRange {
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
}

impl StatsRange {
    /// The first instant of the range (00:00 China time of `start_date`).
    pub fn start(&self) -> DateTime<Utc> {
        china_midnight(self.start_date)
    }

    /// The first instant after the range (00:00 China time of the day after `end_date`).
    pub fn end(&self) -> DateTime<Utc> {
        china_midnight(self.end_date.succ_opt().unwrap_or(self.end_date))
    }

    /// True if `time` lies in the range.
    pub fn contains(&self, time: DateTime<Utc>) -> bool {
        self.start() <= time && time < self.end()
    }
}

fn china_midnight(date: NaiveDate) -> DateTime<Utc> {
    wire::china()
        .from_local_datetime(&date.and_time(NaiveTime::MIN))
        .single()
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The China calendar month of an instant, `(year, month)`.
pub fn china_month(time: DateTime<Utc>) -> (i32, u32) {
    let local = time.with_timezone(&wire::china());
    (local.year(), local.month())
}

fn month_label((year, month): (i32, u32)) -> String {
    format!("{year:04}-{month:02}")
}

impl TryFrom<pb::GetStatsRequest> for StatsRange {
    type Error = DomainError;

    fn try_from(request: pb::GetStatsRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let mut date = |field: &str, text: &str| {
            if text.is_empty() {
                violations.add(field, "is required (YYYY-MM-DD)");
                None
            } else {
                let parsed = wire::parse_date(text);
                if parsed.is_none() {
                    violations.add(field, "must be a date YYYY-MM-DD");
                }
                parsed
            }
        };
        let start_date = date("start_date", &request.start_date);
        let end_date = date("end_date", &request.end_date);
        if let (Some(start), Some(end)) = (start_date, end_date) {
            if end < start {
                violations.add("end_date", "must not be before start_date");
            } else {
                let months = (end.year() - start.year()) * 12 + end.month() as i32 - start.month() as i32 + 1;
                if months > RANGE_MONTHS_MAX as i32 {
                    violations.add("end_date", format!("the range may cover at most {RANGE_MONTHS_MAX} months"));
                }
            }
        }
        violations.into_result()?;
        match (start_date, end_date) {
            (Some(start_date), Some(end_date)) => Ok(StatsRange { start_date, end_date }),
            _ => Err(DomainError::Internal("dates checked above".into())),
        }
    }
}

// ----- facts -----

/// A registered volunteer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolunteerFact {
    pub registered_at: DateTime<Utc>,
}

/// A registered team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamFact {
    pub created_at: DateTime<Utc>,
}

/// A project that was published (drafts are not facts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFact {
    pub activity_kind: ActivityKind,
    pub published_at: DateTime<Utc>,
}

/// A sign-up that holds a seat now, with its project's kind and start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignUpFact {
    pub activity_kind: ActivityKind,
    pub project_start_at: DateTime<Utc>,
}

/// A confirmed service record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFact {
    pub volunteer_number: String,
    pub activity_kind: ActivityKind,
    pub start_time: DateTime<Utc>,
    pub hours_x100: u64,
}

/// A training session held (00:00 China time of its day), with its attendance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingFact {
    pub held_at: DateTime<Utc>,
    pub trainees: u64,
}

/// A service rating (1–5) given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingFact {
    pub rated_at: DateTime<Utc>,
    pub rating: u32,
}

/// Everything the figures are computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub volunteers: Vec<VolunteerFact>,
    pub teams: Vec<TeamFact>,
    pub projects: Vec<ProjectFact>,
    pub accepted_sign_ups: Vec<SignUpFact>,
    pub confirmed_service: Vec<ServiceFact>,
    pub trainings: Vec<TrainingFact>,
    pub ratings: Vec<RatingFact>,
    /// Current star level (1–5) of every volunteer holding one.
    pub star_levels: Vec<u32>,
}

// ----- figures -----

/// Figures of one month that do not depend on an activity kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthFigures {
    /// Volunteers whose `registered_at` falls in the month.
    pub newly_registered_volunteers: u64,
    /// Distinct volunteers with a confirmed service record whose start falls in the month.
    pub active_volunteers: u64,
    /// Training sessions held in the month.
    pub trainings: u64,
    /// Attendances at sessions held in the month.
    pub trainees: u64,
}

/// Figures of one month and one activity kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindFigures {
    /// Projects of the kind whose `published_at` falls in the month.
    pub projects_published: u64,
    /// Sign-ups holding a seat on projects of the kind whose start falls in the month.
    pub sign_ups_accepted: u64,
    /// Sum of `hours_x100` of confirmed records of the kind whose start falls in the month (exact).
    pub confirmed_hours_x100: u64,
    /// Distinct volunteers with a confirmed record of the kind whose start falls in the month.
    pub active_volunteers: u64,
}

/// Figures over the whole range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Volunteers registered before the end of the range (whatever their status now).
    pub registered_volunteers: u64,
    /// Volunteers registered within the range.
    pub newly_registered_volunteers: u64,
    /// Distinct volunteers with a confirmed record starting within the range (not the sum of the months).
    pub active_volunteers: u64,
    /// Teams registered before the end of the range.
    pub teams: u64,
    pub projects_published: u64,
    pub sign_ups_accepted: u64,
    pub confirmed_hours_x100: u64,
    pub trainings: u64,
    pub trainees: u64,
    /// Sum and count of ratings given within the range; the average is `rating_sum / rating_count`, exact.
    pub rating_sum: u64,
    pub rating_count: u64,
    /// Volunteers by current star level (a snapshot now, not at the end of the range).
    pub star_distribution: BTreeMap<u32, u64>,
}

/// The statistics of a range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub range: Option<StatsRange>,
    pub months: BTreeMap<(i32, u32), MonthFigures>,
    pub month_kinds: BTreeMap<((i32, u32), ActivityKindKey), KindFigures>,
    pub totals: Totals,
}

/// An activity kind as an ordered map key (guidance order 1–5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ActivityKindKey(pub u8);

impl ActivityKindKey {
    pub fn of(kind: ActivityKind) -> Self {
        ActivityKindKey(pb::ActivityKind::from(kind) as i32 as u8)
    }
}

/// The definitions of every figure: a pure function of the facts and the range.
pub fn aggregate(facts: &Facts, range: StatsRange) -> Stats {
    let mut stats = Stats { range: Some(range), ..Stats::default() };
    let end = range.end();
    let totals = &mut stats.totals;
    for volunteer in &facts.volunteers {
        if volunteer.registered_at < end {
            totals.registered_volunteers += 1;
        }
        if range.contains(volunteer.registered_at) {
            totals.newly_registered_volunteers += 1;
            stats.months.entry(china_month(volunteer.registered_at)).or_default().newly_registered_volunteers += 1;
        }
    }
    totals.teams = facts.teams.iter().filter(|team| team.created_at < end).count() as u64;
    for project in facts.projects.iter().filter(|project| range.contains(project.published_at)) {
        totals.projects_published += 1;
        let key = (china_month(project.published_at), ActivityKindKey::of(project.activity_kind));
        stats.month_kinds.entry(key).or_default().projects_published += 1;
    }
    for sign_up in facts.accepted_sign_ups.iter().filter(|sign_up| range.contains(sign_up.project_start_at)) {
        totals.sign_ups_accepted += 1;
        let key = (china_month(sign_up.project_start_at), ActivityKindKey::of(sign_up.activity_kind));
        stats.month_kinds.entry(key).or_default().sign_ups_accepted += 1;
    }
    let mut active: BTreeSet<&str> = BTreeSet::new();
    let mut active_by_month: BTreeMap<(i32, u32), BTreeSet<&str>> = BTreeMap::new();
    let mut active_by_kind: BTreeMap<((i32, u32), ActivityKindKey), BTreeSet<&str>> = BTreeMap::new();
    for service in facts.confirmed_service.iter().filter(|service| range.contains(service.start_time)) {
        let month = china_month(service.start_time);
        let key = (month, ActivityKindKey::of(service.activity_kind));
        totals.confirmed_hours_x100 += service.hours_x100;
        stats.month_kinds.entry(key).or_default().confirmed_hours_x100 += service.hours_x100;
        active.insert(&service.volunteer_number);
        active_by_month.entry(month).or_default().insert(&service.volunteer_number);
        active_by_kind.entry(key).or_default().insert(&service.volunteer_number);
    }
    totals.active_volunteers = active.len() as u64;
    for (month, volunteers) in active_by_month {
        stats.months.entry(month).or_default().active_volunteers = volunteers.len() as u64;
    }
    for (key, volunteers) in active_by_kind {
        stats.month_kinds.entry(key).or_default().active_volunteers = volunteers.len() as u64;
    }
    for training in facts.trainings.iter().filter(|training| range.contains(training.held_at)) {
        totals.trainings += 1;
        totals.trainees += training.trainees;
        let month = stats.months.entry(china_month(training.held_at)).or_default();
        month.trainings += 1;
        month.trainees += training.trainees;
    }
    for rating in facts.ratings.iter().filter(|rating| range.contains(rating.rated_at)) {
        totals.rating_sum += u64::from(rating.rating);
        totals.rating_count += 1;
    }
    for level in &facts.star_levels {
        *totals.star_distribution.entry(*level).or_default() += 1;
    }
    stats
}

// ----- collecting facts from the store -----

/// The fields of a volunteer record read here (`vol/<number>`).
#[derive(Deserialize)]
struct VolunteerView {
    registered_at: DateTime<Utc>,
}

/// The fields of a team record read here (`team/<id>`).
#[derive(Deserialize)]
struct TeamView {
    created_at: DateTime<Utc>,
}

/// The fields of a project read here (`proj/<id>`).
#[derive(Deserialize)]
struct ProjectView {
    activity_kind: ActivityKind,
    start_at: DateTime<Utc>,
    #[serde(default)]
    published_at: Option<DateTime<Utc>>,
}

/// The fields of a sign-up read here (`signup/<project>/<volunteer>`).
#[derive(Deserialize)]
struct SignUpView {
    project_id: String,
    status: String,
}

/// The fields of a service record read here (`svc/<id>`).
#[derive(Deserialize)]
struct ServiceView {
    volunteer_number: String,
    activity_kind: ActivityKind,
    start_time: DateTime<Utc>,
    hours_x100: u32,
    state: String,
}

/// The fields of a training session read here (`train/<id>`).
#[derive(Deserialize)]
struct TrainingView {
    /// The China calendar day it was held.
    date: NaiveDate,
    attendee_count: u32,
}

/// The fields of an evaluation read here (`eval/<project>/<volunteer>`, its current version).
#[derive(Deserialize)]
struct EvaluationView {
    rating: u32,
    rated_at: DateTime<Utc>,
}

/// The field of a volunteer's star state read here (`star/<volunteer>`).
#[derive(Deserialize)]
struct StarView {
    star: u32,
}

/// Reads the facts from the store (see the module note on scans).
pub fn collect(store: &dyn Store) -> Result<Facts, DomainError> {
    let mut facts = Facts::default();
    store::scan_json::<VolunteerView>(store, "vol/", |volunteer| {
        facts.volunteers.push(VolunteerFact { registered_at: volunteer.registered_at })
    })?;
    store::scan_json::<TeamView>(store, "team/", |team| facts.teams.push(TeamFact { created_at: team.created_at }))?;
    let mut projects: BTreeMap<String, (ActivityKind, DateTime<Utc>)> = BTreeMap::new();
    let mut failure = None;
    store.scan(b"proj/", None, &mut |key, value| match store::decode::<ProjectView>(key, value) {
        Ok(project) => {
            let id = String::from_utf8_lossy(&key[b"proj/".len()..]).into_owned();
            if let Some(published_at) = project.published_at {
                facts.projects.push(ProjectFact { activity_kind: project.activity_kind, published_at });
            }
            projects.insert(id, (project.activity_kind, project.start_at));
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
    store::scan_json::<SignUpView>(store, "signup/", |sign_up| {
        if sign_up.status == "accepted"
            && let Some((activity_kind, project_start_at)) = projects.get(&sign_up.project_id)
        {
            facts
                .accepted_sign_ups
                .push(SignUpFact { activity_kind: *activity_kind, project_start_at: *project_start_at });
        }
    })?;
    store::scan_json::<ServiceView>(store, "svc/", |record| {
        if record.state == "confirmed" {
            facts.confirmed_service.push(ServiceFact {
                volunteer_number: record.volunteer_number,
                activity_kind: record.activity_kind,
                start_time: record.start_time,
                hours_x100: u64::from(record.hours_x100),
            });
        }
    })?;
    store::scan_json::<TrainingView>(store, "train/", |training| {
        facts
            .trainings
            .push(TrainingFact { held_at: china_midnight(training.date), trainees: u64::from(training.attendee_count) })
    })?;
    store::scan_json::<EvaluationView>(store, "eval/", |evaluation| {
        facts.ratings.push(RatingFact { rated_at: evaluation.rated_at, rating: evaluation.rating })
    })?;
    store::scan_json::<StarView>(store, "star/", |state| {
        if state.star > 0 {
            facts.star_levels.push(state.star);
        }
    })?;
    Ok(facts)
}

/// The statistics of a range: staff and auditors (read-only figures, no personal data); not operators.
pub fn get(store: &dyn Store, caller: &Caller, range: StatsRange) -> Result<Stats, DomainError> {
    caller.require_any(&[Role::Staff, Role::Auditor], "reading statistics")?;
    Ok(aggregate(&collect(store)?, range))
}

// ----- wire -----

impl From<&Stats> for pb::GetStatsResponse {
    fn from(stats: &Stats) -> Self {
        let kind = |key: ActivityKindKey| pb::ActivityKind::try_from(i32::from(key.0)).unwrap_or_default() as i32;
        let totals = &stats.totals;
        pb::GetStatsResponse {
            start_date: stats.range.map(|range| range.start_date.to_string()).unwrap_or_default(),
            end_date: stats.range.map(|range| range.end_date.to_string()).unwrap_or_default(),
            months: stats
                .months
                .iter()
                .map(|(month, figures)| pb::MonthStats {
                    month: month_label(*month),
                    newly_registered_volunteers: figures.newly_registered_volunteers,
                    active_volunteers: figures.active_volunteers,
                    trainings: figures.trainings,
                    trainees: figures.trainees,
                })
                .collect(),
            month_kinds: stats
                .month_kinds
                .iter()
                .map(|((month, key), figures)| pb::MonthKindStats {
                    month: month_label(*month),
                    activity_kind: kind(*key),
                    projects_published: figures.projects_published,
                    sign_ups_accepted: figures.sign_ups_accepted,
                    confirmed_hours_x100: figures.confirmed_hours_x100,
                    active_volunteers: figures.active_volunteers,
                })
                .collect(),
            totals: Some(pb::StatsTotals {
                registered_volunteers: totals.registered_volunteers,
                newly_registered_volunteers: totals.newly_registered_volunteers,
                active_volunteers: totals.active_volunteers,
                teams: totals.teams,
                projects_published: totals.projects_published,
                sign_ups_accepted: totals.sign_ups_accepted,
                confirmed_hours_x100: totals.confirmed_hours_x100,
                trainings: totals.trainings,
                trainees: totals.trainees,
                rating_sum: totals.rating_sum,
                rating_count: totals.rating_count,
                star_distribution: totals
                    .star_distribution
                    .iter()
                    .map(|(stars, volunteers)| pb::StarCount { stars: *stars, volunteers: *volunteers })
                    .collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
