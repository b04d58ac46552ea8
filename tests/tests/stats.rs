//! Statistics over real gRPC against a real node: the figures equal what the test created; roles and bad ranges.

use chrono::{Duration, Utc};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::{
    recognition_service_client::RecognitionServiceClient, service_record_service_client::ServiceRecordServiceClient,
    stats_service_client::StatsServiceClient,
};
use ecovol_tests::scenario::{Cast, authed, china_date, served_cast};
use ecovol_tests::{Authed, Bearer, NodeSpec, TestNode, violated_fields};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;

/// Hours configuration of the test node: a week's window tolerance, so intervals of two days ago lie within the
/// window of a project that started a moment ago (see tests/tests/hours.rs).
const HOURS_TOML: &str = "[hours]\nwindow_tolerance_minutes = 10080\n\n[stars]\nthresholds_hours = [1, 3]\n\
                          certifying_levels = [\"county\", \"county\"]\n";

async fn cast() -> Cast {
    served_cast(HOURS_TOML).await
}

fn stats(node: &TestNode, token: &str) -> StatsServiceClient<Authed> {
    StatsServiceClient::new(authed(node, token))
}

#[tokio::test]
async fn the_figures_equal_what_was_created() {
    let cast = cast().await;
    let node = &cast.node;
    let request = pb::GetStatsRequest {
        start_date: china_date(cast.day - Duration::days(1)),
        end_date: china_date(Utc::now() + Duration::days(2)),
    };
    let answer = stats(node, &node.tokens.auditor).get_stats(request.clone()).await.unwrap().into_inner();
    let totals = answer.totals.unwrap();
    assert_eq!(totals.registered_volunteers, 2);
    assert_eq!(totals.newly_registered_volunteers, 2);
    assert_eq!(totals.teams, 1);
    assert_eq!(totals.projects_published, 1);
    assert_eq!(totals.sign_ups_accepted, 2);
    assert_eq!(totals.confirmed_hours_x100, 325, "only confirmed hours count");
    assert_eq!(totals.active_volunteers, 1);
    let green: Vec<_> =
        answer.month_kinds.iter().filter(|row| row.activity_kind == pb::ActivityKind::GreenLowCarbon as i32).collect();
    assert_eq!(green.iter().map(|row| row.confirmed_hours_x100).sum::<u64>(), 325);
    assert_eq!(green.iter().map(|row| row.projects_published).sum::<u64>(), 1);
    assert_eq!(answer.months.iter().map(|row| row.newly_registered_volunteers).sum::<u64>(), 2);
    assert!(answer.month_kinds.iter().all(|row| row.activity_kind == pb::ActivityKind::GreenLowCarbon as i32));
    // Staff see the same; a range before everything is empty but still counts nothing registered.
    let same = stats(node, &node.tokens.staff).get_stats(request).await.unwrap().into_inner();
    assert_eq!(same.totals.unwrap().confirmed_hours_x100, 325);
    let before = pb::GetStatsRequest { start_date: "2020-01-01".into(), end_date: "2020-12-31".into() };
    let before = stats(node, &node.tokens.staff).get_stats(before).await.unwrap().into_inner();
    assert_eq!(before.totals.unwrap().registered_volunteers, 0);
    assert!(before.month_kinds.is_empty());
    let _ = &cast.served_token;
}

#[tokio::test]
async fn trainings_ratings_and_stars_are_counted_from_their_records() {
    let cast = cast().await;
    let node = &cast.node;
    let mut recognition = RecognitionServiceClient::new(authed(node, &node.tokens.staff));
    let training = pb::CreateTrainingRequest {
        title: "垃圾分类岗前培训".into(),
        tier: pb::TrainingTier::PreJobBasic as i32,
        audiences: vec![pb::TrainingAudience::Volunteers as i32],
        date: china_date(cast.day),
        organiser: "区生态环境局".into(),
    };
    let training_id = recognition.create_training(training).await.unwrap().into_inner().training.unwrap().training_id;
    let attendance = pb::AddTrainingAttendanceRequest {
        training_id,
        volunteer_numbers: vec![cast.served.clone(), cast.unconfirmed.clone()],
    };
    recognition.add_training_attendance(attendance).await.unwrap();
    let project_id = ServiceRecordServiceClient::new(authed(node, &node.tokens.staff))
        .list_service_records(pb::ListServiceRecordsRequest {
            volunteer_number: cast.served.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records[0]
        .project_id
        .clone();
    let rating = pb::RateVolunteerRequest {
        project_id,
        volunteer_number: cast.served.clone(),
        rating: 4,
        comment: String::new(),
    };
    recognition.rate_volunteer(rating).await.unwrap();

    let request = pb::GetStatsRequest {
        start_date: china_date(cast.day - Duration::days(1)),
        end_date: china_date(Utc::now() + Duration::days(2)),
    };
    let answer = stats(node, &node.tokens.staff).get_stats(request).await.unwrap().into_inner();
    let totals = answer.totals.unwrap();
    assert_eq!((totals.trainings, totals.trainees), (1, 2));
    assert_eq!((totals.rating_sum, totals.rating_count), (4, 1));
    // 3.25 confirmed hours against thresholds of 1 and 3 hours: star 2.
    assert_eq!(totals.star_distribution, vec![pb::StarCount { stars: 2, volunteers: 1 }]);
    let month = china_date(cast.day)[..7].to_string();
    let row = answer.months.iter().find(|row| row.month == month).unwrap();
    assert_eq!((row.trainings, row.trainees), (1, 2));
}

#[tokio::test]
async fn statistics_are_for_staff_and_auditors_over_valid_ranges() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let range = pb::GetStatsRequest { start_date: "2026-01-01".into(), end_date: "2026-12-31".into() };
    let denied = stats(&node, &node.tokens.operator).get_stats(range.clone()).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let anonymous = StatsServiceClient::new(InterceptedService::new(node.channel.clone(), Bearer::none()))
        .get_stats(range)
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let mut staff = stats(&node, &node.tokens.staff);
    for (start, end, fields) in [
        ("", "", vec!["start_date", "end_date"]),
        ("2026-02-01", "2026-01-31", vec!["end_date"]),
        ("2020-01-01", "2026-01-01", vec!["end_date"]),
        ("2026/01/01", "2026-01-32", vec!["start_date", "end_date"]),
    ] {
        let request = pb::GetStatsRequest { start_date: start.into(), end_date: end.into() };
        let error = staff.get_stats(request).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{start}..{end}");
        assert_eq!(violated_fields(&error), fields, "{start}..{end}");
    }
}

async fn ecovol_on(node: &TestNode, token: &str, args: &[&str]) -> (i32, String, String) {
    ecovol_tests::run_ecovol_on(node.address, token, args).await
}

#[tokio::test]
async fn the_command_line_prints_a_month_by_kind_table_and_json() {
    let cast = cast().await;
    let node = &cast.node;
    let from = china_date(cast.day - Duration::days(1));
    let to = china_date(Utc::now() + Duration::days(2));
    let (code, out, err) = ecovol_on(node, &node.tokens.staff, &["stats", "--from", &from, "--to", &to]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("green-low-carbon") && out.contains("3.25"), "{out}");
    assert!(out.contains("MONTH") && out.contains("CONFIRMED_HOURS"), "{out}");
    let (code, out, err) =
        ecovol_on(node, &node.tokens.auditor, &["--output", "json", "stats", "--from", &from, "--to", &to]).await;
    assert_eq!(code, 0, "{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["totals"]["confirmed_hours"], "3.25");
    assert_eq!(answer["totals"]["registered_volunteers"], 2);
    let (code, _, err) = ecovol_on(node, &node.tokens.staff, &["stats", "--from", "2026-13-01", "--to", &to]).await;
    assert_eq!(code, 2, "a bad date is a usage error: {err}");
}
