//! The definitions of the figures, on hand-built facts: month and kind boundaries in China time.

use chrono::{DateTime, NaiveDate, Utc};

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn range(start: &str, end: &str) -> StatsRange {
    StatsRange { start_date: date(start), end_date: date(end) }
}

fn service(volunteer: &str, kind: ActivityKind, start: &str, hours_x100: u64) -> ServiceFact {
    ServiceFact { volunteer_number: volunteer.into(), activity_kind: kind, start_time: at(start), hours_x100 }
}

const GREEN: ActivityKind = ActivityKind::GreenLowCarbon;
const THEORY: ActivityKind = ActivityKind::TheoryPromotion;

#[test]
fn an_interval_starting_late_on_31_january_china_time_counts_in_january() {
    // 2026-01-31T23:30+08:00 is 15:30 UTC on 31 January; 2026-02-01T00:30+08:00 is 16:30 UTC on 31 January.
    let facts = Facts {
        confirmed_service: vec![
            service("V1", GREEN, "2026-01-31T23:30:00+08:00", 150),
            service("V2", GREEN, "2026-02-01T00:30:00+08:00", 225),
        ],
        ..Facts::default()
    };
    let stats = aggregate(&facts, range("2026-01-01", "2026-02-28"));
    let january = &stats.month_kinds[&((2026, 1), ActivityKindKey::of(GREEN))];
    let february = &stats.month_kinds[&((2026, 2), ActivityKindKey::of(GREEN))];
    assert_eq!((january.confirmed_hours_x100, january.active_volunteers), (150, 1));
    assert_eq!((february.confirmed_hours_x100, february.active_volunteers), (225, 1));
    assert_eq!(stats.totals.confirmed_hours_x100, 375);
    assert_eq!(stats.totals.active_volunteers, 2);
}

#[test]
fn range_ends_are_china_days_inclusive() {
    let facts = Facts {
        confirmed_service: vec![
            // 23:59 China time on 31 January is inside a range ending 2026-01-31.
            service("V1", GREEN, "2026-01-31T23:59:00+08:00", 100),
            // 00:00 China time on 1 February is outside.
            service("V1", GREEN, "2026-02-01T00:00:00+08:00", 100),
            // 00:00 China time on 1 January is inside; 23:59 on 31 December is outside.
            service("V2", GREEN, "2026-01-01T00:00:00+08:00", 100),
            service("V3", GREEN, "2025-12-31T23:59:00+08:00", 100),
        ],
        ..Facts::default()
    };
    let stats = aggregate(&facts, range("2026-01-01", "2026-01-31"));
    assert_eq!(stats.totals.confirmed_hours_x100, 200);
    assert_eq!(stats.totals.active_volunteers, 2);
}

#[test]
fn active_volunteers_are_distinct_per_month_per_kind_and_over_the_range() {
    let facts = Facts {
        confirmed_service: vec![
            service("V1", GREEN, "2026-03-02T09:00:00+08:00", 100),
            service("V1", GREEN, "2026-03-09T09:00:00+08:00", 100),
            service("V1", THEORY, "2026-03-10T09:00:00+08:00", 100),
            service("V1", GREEN, "2026-04-01T09:00:00+08:00", 100),
            service("V2", GREEN, "2026-04-02T09:00:00+08:00", 100),
        ],
        ..Facts::default()
    };
    let stats = aggregate(&facts, range("2026-03-01", "2026-04-30"));
    assert_eq!(stats.months[&(2026, 3)].active_volunteers, 1);
    assert_eq!(stats.months[&(2026, 4)].active_volunteers, 2);
    assert_eq!(stats.month_kinds[&((2026, 3), ActivityKindKey::of(GREEN))].active_volunteers, 1);
    assert_eq!(stats.month_kinds[&((2026, 3), ActivityKindKey::of(GREEN))].confirmed_hours_x100, 200);
    assert_eq!(stats.month_kinds[&((2026, 3), ActivityKindKey::of(THEORY))].active_volunteers, 1);
    assert_eq!(stats.totals.active_volunteers, 2);
    assert_eq!(stats.totals.confirmed_hours_x100, 500);
}

#[test]
fn registrations_teams_projects_sign_ups_trainings_ratings_and_stars() {
    let facts = Facts {
        volunteers: vec![
            VolunteerFact { registered_at: at("2025-06-01T10:00:00+08:00") },
            VolunteerFact { registered_at: at("2026-01-15T10:00:00+08:00") },
            VolunteerFact { registered_at: at("2026-02-01T00:10:00+08:00") },
        ],
        teams: vec![
            TeamFact { created_at: at("2025-01-01T10:00:00+08:00") },
            TeamFact { created_at: at("2026-03-01T10:00:00+08:00") },
        ],
        projects: vec![
            ProjectFact { activity_kind: GREEN, published_at: at("2026-01-31T23:30:00+08:00") },
            ProjectFact { activity_kind: THEORY, published_at: at("2026-02-03T10:00:00+08:00") },
            ProjectFact { activity_kind: THEORY, published_at: at("2025-12-03T10:00:00+08:00") },
        ],
        accepted_sign_ups: vec![
            SignUpFact { activity_kind: GREEN, project_start_at: at("2026-02-10T09:00:00+08:00") },
            SignUpFact { activity_kind: GREEN, project_start_at: at("2026-02-10T09:00:00+08:00") },
            SignUpFact { activity_kind: GREEN, project_start_at: at("2026-03-10T09:00:00+08:00") },
        ],
        trainings: vec![
            TrainingFact { held_at: at("2026-01-20T09:00:00+08:00"), trainees: 30 },
            TrainingFact { held_at: at("2027-01-20T09:00:00+08:00"), trainees: 7 },
        ],
        ratings: vec![
            RatingFact { rated_at: at("2026-01-20T09:00:00+08:00"), rating: 5 },
            RatingFact { rated_at: at("2026-02-20T09:00:00+08:00"), rating: 4 },
            RatingFact { rated_at: at("2026-03-20T09:00:00+08:00"), rating: 1 },
        ],
        star_levels: vec![1, 1, 3],
        ..Facts::default()
    };
    let stats = aggregate(&facts, range("2026-01-01", "2026-02-28"));
    let totals = &stats.totals;
    assert_eq!(totals.registered_volunteers, 3);
    assert_eq!(totals.newly_registered_volunteers, 2);
    assert_eq!(totals.teams, 1);
    assert_eq!(totals.projects_published, 2);
    assert_eq!(totals.sign_ups_accepted, 2);
    assert_eq!((totals.trainings, totals.trainees), (1, 30));
    assert_eq!((totals.rating_sum, totals.rating_count), (9, 2));
    assert_eq!(totals.star_distribution, BTreeMap::from([(1, 2), (3, 1)]));
    assert_eq!(stats.months[&(2026, 1)].newly_registered_volunteers, 1);
    assert_eq!(stats.months[&(2026, 2)].newly_registered_volunteers, 1);
    assert_eq!(stats.month_kinds[&((2026, 1), ActivityKindKey::of(GREEN))].projects_published, 1);
    assert_eq!(stats.month_kinds[&((2026, 2), ActivityKindKey::of(THEORY))].projects_published, 1);
    assert_eq!(stats.month_kinds[&((2026, 2), ActivityKindKey::of(GREEN))].sign_ups_accepted, 2);
    // Registered at the end of January: the one registered on 1 February (China time) is not yet.
    let january = aggregate(&facts, range("2026-01-01", "2026-01-31"));
    assert_eq!(january.totals.registered_volunteers, 2);
}

fn check(start: &str, end: &str, expected: Result<(&str, &str), &[&str]>) {
    let request = pb::GetStatsRequest { start_date: start.into(), end_date: end.into() };
    match (StatsRange::try_from(request), expected) {
        (Ok(range), Ok((start, end))) => assert_eq!(range, super::tests::range(start, end)),
        (Err(DomainError::Invalid(violations)), Err(fields)) => {
            let found: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
            assert_eq!(found, fields, "{start}..{end}");
        }
        (other, expected) => panic!("{start}..{end}: got {other:?}, expected {expected:?}"),
    }
}

#[test]
fn ranges_are_validated() {
    check("2026-01-01", "2026-01-31", Ok(("2026-01-01", "2026-01-31")));
    check("2026-01-01", "2026-01-01", Ok(("2026-01-01", "2026-01-01")));
    check("2021-01-01", "2025-12-31", Ok(("2021-01-01", "2025-12-31")));
    check("2021-01-01", "2026-01-01", Err(&["end_date"]));
    check("2026-02-01", "2026-01-31", Err(&["end_date"]));
    check("", "", Err(&["start_date", "end_date"]));
    check("2026-02-30", "26-01-01", Err(&["start_date", "end_date"]));
}

#[test]
fn the_wire_answer_carries_every_figure() {
    let facts = Facts {
        confirmed_service: vec![service("V1", GREEN, "2026-01-31T23:30:00+08:00", 1225)],
        star_levels: vec![2],
        ..Facts::default()
    };
    let answer = pb::GetStatsResponse::from(&aggregate(&facts, range("2026-01-01", "2026-01-31")));
    assert_eq!(answer.start_date, "2026-01-01");
    assert_eq!(answer.month_kinds.len(), 1);
    assert_eq!(answer.month_kinds[0].month, "2026-01");
    assert_eq!(answer.month_kinds[0].activity_kind, pb::ActivityKind::GreenLowCarbon as i32);
    let totals = answer.totals.unwrap();
    assert_eq!(totals.confirmed_hours_x100, 1225);
    assert_eq!(totals.star_distribution, vec![pb::StarCount { stars: 2, volunteers: 1 }]);
}
