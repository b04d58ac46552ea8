//! Evaluation, training and star rating over real gRPC against a real node: rating refusals and re-rating as a
//! new version, project outcomes, training attendance on the volunteer's profile, stars reached at exactly the
//! threshold through real confirmed hours and lost on revocation, and who may read a profile.
//!
//! The fixture follows `hours.rs`: a project starting two seconds from now, sign-ups, a wait for the start, and
//! service recorded two days ago (the node allows a week's window tolerance). The node's star scale is
//! 1 / 2 / 3 / 4 / 5 hours, so a few hours of service cross several thresholds.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::{
    project_service_client::ProjectServiceClient, recognition_service_client::RecognitionServiceClient,
    service_record_service_client::ServiceRecordServiceClient, sign_up_service_client::SignUpServiceClient,
};
use ecovol_tests::fixtures::adult;
use ecovol_tests::scenario::{account, team, timestamp};
use ecovol_tests::{Authed, Bearer, NodeSpec, TestNode, violated_fields};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;

/// A week's window tolerance (hours are recorded two days before the project), and a star scale in hours.
const NODE_TOML: &str = "[hours]\nwindow_tolerance_minutes = 10080\n\n[stars]\nthresholds_hours = [1, 2, 3, 4, 5]\ncertifying_levels = [\"county\", \"county\", \"city\", \"city\", \"province\"]\n";

struct Cast {
    node: TestNode,
    manager: String,
    other_manager: String,
    /// The account of volunteer `accepted`, and of `accepted_too`.
    volunteer: String,
    volunteer_too: String,
    accepted: String,
    accepted_too: String,
    organiser: String,
    project: String,
    /// 00:00 China time two days ago.
    day: DateTime<Utc>,
}

fn authed(node: &TestNode, token: &str) -> Authed {
    InterceptedService::new(node.channel.clone(), Bearer::new(token))
}

fn recognition(node: &TestNode, token: &str) -> RecognitionServiceClient<Authed> {
    RecognitionServiceClient::new(authed(node, token))
}

fn hours(node: &TestNode, token: &str) -> ServiceRecordServiceClient<Authed> {
    ServiceRecordServiceClient::new(authed(node, token))
}

fn projects(node: &TestNode, token: &str) -> ProjectServiceClient<Authed> {
    ProjectServiceClient::new(authed(node, token))
}

async fn project(node: &TestNode, team_id: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let request = pb::CreateProjectRequest {
        title: "钱塘江护水行动".into(),
        activity_kind: pb::ActivityKind::SocialSupervision as i32,
        organising_team_id: team_id.into(),
        start_at: Some(timestamp(start)),
        end_at: Some(timestamp(end)),
        capacity: 10,
        ..Default::default()
    };
    let project_id = projects(node, &node.tokens.staff)
        .create_project(request)
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap()
        .project_id;
    projects(node, &node.tokens.staff)
        .publish_project(pb::PublishProjectRequest { project_id: project_id.clone() })
        .await
        .unwrap();
    project_id
}

async fn cast() -> Cast {
    let node = TestNode::start(NodeSpec { extra_toml: NODE_TOML.into(), ..NodeSpec::county("330106") })
        .await
        .expect("node starts");
    let mut staff = node.volunteers(&node.tokens.staff);
    let mut register = async |index| {
        staff.register_volunteer(adult(index)).await.unwrap().into_inner().volunteer.unwrap().volunteer_number
    };
    let (accepted, accepted_too) = (register(1).await, register(2).await);
    let organiser = team(&node, "钱塘护水队").await;
    let other = team(&node, "滨江环保队").await;
    let manager = account(&node, pb::Role::TeamManager, &organiser, "").await;
    let other_manager = account(&node, pb::Role::TeamManager, &other, "").await;
    let volunteer = account(&node, pb::Role::Volunteer, "", &accepted).await;
    let volunteer_too = account(&node, pb::Role::Volunteer, "", &accepted_too).await;

    let start = Utc::now() + Duration::seconds(2);
    let project_id = project(&node, &organiser, start, start + Duration::days(1)).await;
    for (index, number) in [&accepted, &accepted_too].into_iter().enumerate() {
        let request = pb::SignUpRequest {
            project_id: project_id.clone(),
            volunteer_number: number.clone(),
            idempotency_key: format!("signup-{index}"),
        };
        SignUpServiceClient::new(authed(&node, &node.tokens.staff)).sign_up(request).await.unwrap();
    }
    let wait = (start - Utc::now()).num_milliseconds().max(0) as u64 + 200;
    tokio::time::sleep(StdDuration::from_millis(wait)).await;

    let china = ecovol_node::wire::china();
    let two_days_ago = (Utc::now() - Duration::days(2)).with_timezone(&china).date_naive();
    let day = china.from_local_datetime(&two_days_ago.and_time(NaiveTime::MIN)).unwrap().with_timezone(&Utc);
    Cast {
        node,
        manager,
        other_manager,
        volunteer,
        volunteer_too,
        accepted,
        accepted_too,
        organiser,
        project: project_id,
        day,
    }
}

impl Cast {
    /// Records and confirms `volunteer`'s service from `from` to `to` minutes after 00:00 two days ago.
    async fn serve(&self, volunteer: &str, from_minutes: i64, to_minutes: i64) -> pb::ServiceRecord {
        let request = pb::RecordServiceRequest {
            project_id: self.project.clone(),
            volunteer_number: volunteer.into(),
            method: pb::RecordingMethod::Interval as i32,
            start_time: Some(timestamp(self.day + Duration::minutes(from_minutes))),
            end_time: Some(timestamp(self.day + Duration::minutes(to_minutes))),
            content: "江岸巡查，记录排污口".into(),
            walk_in: false,
            idempotency_key: format!("{volunteer}-{from_minutes}"),
        };
        let record =
            hours(&self.node, &self.manager).record_service(request).await.unwrap().into_inner().record.unwrap();
        let request = pb::ConfirmServiceRecordRequest { record_id: record.record_id.clone() };
        hours(&self.node, &self.manager).confirm_service_record(request).await.unwrap().into_inner().record.unwrap()
    }

    fn rating(&self, volunteer: &str, rating: u32, comment: &str) -> pb::RateVolunteerRequest {
        pb::RateVolunteerRequest {
            project_id: self.project.clone(),
            volunteer_number: volunteer.into(),
            rating,
            comment: comment.into(),
        }
    }

    async fn rate(&self, token: &str, request: pb::RateVolunteerRequest) -> Result<pb::Evaluation, tonic::Status> {
        recognition(&self.node, token)
            .rate_volunteer(request)
            .await
            .map(|answer| answer.into_inner().evaluation.unwrap())
    }

    async fn profile(&self, token: &str, volunteer: &str) -> Result<pb::GetVolunteerProfileResponse, tonic::Status> {
        let request = pb::GetVolunteerProfileRequest { volunteer_number: volunteer.into(), evaluations_max: 0 };
        recognition(&self.node, token).get_volunteer_profile(request).await.map(|answer| answer.into_inner())
    }
}

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn ratings_are_refused_precisely_and_a_re_rating_is_a_new_version() {
    let cast = cast().await;
    let staff = cast.node.tokens.staff.clone();
    // No confirmed service yet: nothing to rate.
    let refused = cast.rate(&cast.manager, cast.rating(&cast.accepted, 4, "")).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    cast.serve(&cast.accepted, 9 * 60, 11 * 60).await;

    // Every broken field at once.
    let bad = pb::RateVolunteerRequest { project_id: String::new(), ..cast.rating("", 0, &"评".repeat(501)) };
    let refused = cast.rate(&staff, bad).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["project_id", "volunteer_number", "rating", "comment"]);
    // Not the organising team, not a rater at all.
    assert_eq!(code(cast.rate(&cast.other_manager, cast.rating(&cast.accepted, 4, "")).await), Code::PermissionDenied);
    assert_eq!(code(cast.rate(&cast.volunteer, cast.rating(&cast.accepted, 5, "")).await), Code::PermissionDenied);
    // Unknown project, unknown volunteer; a volunteer without confirmed service on the project.
    let unknown_project =
        pb::RateVolunteerRequest { project_id: "330106-P999999".into(), ..cast.rating(&cast.accepted, 4, "") };
    assert_eq!(code(cast.rate(&staff, unknown_project).await), Code::NotFound);
    assert_eq!(code(cast.rate(&staff, cast.rating("330106-99999999", 4, "")).await), Code::NotFound);
    assert_eq!(code(cast.rate(&staff, cast.rating(&cast.accepted_too, 4, "")).await), Code::FailedPrecondition);

    // The team rates; staff re-rate: one evaluation, version 2.
    let first = cast.rate(&cast.manager, cast.rating(&cast.accepted, 4, "认真负责")).await.unwrap();
    assert_eq!((first.rating, first.version, first.organising_team_id.as_str()), (4, 1, cast.organiser.as_str()));
    let second = cast.rate(&staff, cast.rating(&cast.accepted, 5, "表现突出")).await.unwrap();
    assert_eq!((second.rating, second.version), (5, 2));
    let profile = cast.profile(&staff, &cast.accepted).await.unwrap();
    assert_eq!((profile.rating_sum, profile.rating_count, profile.rating_average.as_str()), (5, 1, "5.00"));
    assert_eq!(profile.evaluations.len(), 1);
    assert_eq!(profile.evaluations[0].comment, "表现突出");
    assert_eq!(
        (profile.confirmed_minutes, profile.confirmed_hours_x100, profile.confirmed_record_count),
        (120, 200, 1)
    );

    // The outcome: refused while the project runs, and for anyone but staff.
    let outcome = pb::RecordProjectOutcomeRequest {
        project_id: cast.project.clone(),
        participants: 2,
        people_reached: 300,
        score: 4,
        summary: "巡查江岸 12 公里，发现并上报排污口 3 处".into(),
    };
    let refused = recognition(&cast.node, &staff).record_project_outcome(outcome.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let refused = recognition(&cast.node, &cast.manager).record_project_outcome(outcome.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let bad = pb::RecordProjectOutcomeRequest { score: 6, summary: String::new(), ..outcome.clone() };
    let refused = recognition(&cast.node, &staff).record_project_outcome(bad).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["score", "summary"]);

    // A short project, past its end: recorded, and recorded again as version 2.
    let start = Utc::now() + Duration::seconds(1);
    let short = project(&cast.node, &cast.organiser, start, start + Duration::seconds(1)).await;
    tokio::time::sleep(StdDuration::from_millis(((start - Utc::now()).num_milliseconds().max(0) + 1300) as u64)).await;
    let request = pb::RecordProjectOutcomeRequest { project_id: short.clone(), ..outcome };
    let recorded = recognition(&cast.node, &staff).record_project_outcome(request.clone()).await.unwrap().into_inner();
    assert_eq!(recorded.outcome.unwrap().version, 1);
    let again = pb::RecordProjectOutcomeRequest { score: 5, ..request };
    recognition(&cast.node, &staff).record_project_outcome(again).await.unwrap();
    let read = recognition(&cast.node, &cast.manager)
        .get_project_outcome(pb::GetProjectOutcomeRequest { project_id: short.clone() })
        .await
        .unwrap()
        .into_inner();
    let read_outcome = read.outcome.unwrap();
    assert_eq!((read_outcome.score, read_outcome.version, read_outcome.people_reached), (5, 2, 300));
    let refused = recognition(&cast.node, &cast.other_manager)
        .get_project_outcome(pb::GetProjectOutcomeRequest { project_id: short })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let read = recognition(&cast.node, &staff)
        .get_project_outcome(pb::GetProjectOutcomeRequest { project_id: cast.project.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(read.outcome.is_none());
    assert_eq!(read.evaluations.len(), 1);
}

#[tokio::test]
async fn training_attendance_is_part_of_the_volunteers_profile() {
    let cast = cast().await;
    let staff = cast.node.tokens.staff.clone();
    let request = pb::CreateTrainingRequest {
        title: "生态环境志愿服务岗前培训".into(),
        tier: pb::TrainingTier::PreJobBasic as i32,
        audiences: vec![pb::TrainingAudience::Volunteers as i32, pb::TrainingAudience::VolunteerWorkers as i32],
        date: "2026-03-05".into(),
        organiser: "西湖区生态环境局".into(),
    };
    let refused = recognition(&cast.node, &cast.manager).create_training(request.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let bad = pb::CreateTrainingRequest { tier: 0, audiences: vec![], date: "2026-13-01".into(), ..request.clone() };
    let refused = recognition(&cast.node, &staff).create_training(bad).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["tier", "audiences", "date"]);
    let training =
        recognition(&cast.node, &staff).create_training(request).await.unwrap().into_inner().training.unwrap();
    assert_eq!(training.training_id, "330106-TR000001");
    assert_eq!(
        training.audiences,
        [pb::TrainingAudience::VolunteerWorkers as i32, pb::TrainingAudience::Volunteers as i32]
    );

    let attend = |numbers: &[&String]| pb::AddTrainingAttendanceRequest {
        training_id: training.training_id.clone(),
        volunteer_numbers: numbers.iter().map(|number| number.to_string()).collect(),
    };
    // An unknown volunteer: NotFound, and nobody is added.
    let unknown = "330106-99999999".to_string();
    let refused =
        recognition(&cast.node, &staff).add_training_attendance(attend(&[&cast.accepted, &unknown])).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    let refused =
        recognition(&cast.node, &cast.manager).add_training_attendance(attend(&[&cast.accepted])).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let added = recognition(&cast.node, &staff)
        .add_training_attendance(attend(&[&cast.accepted, &cast.accepted_too]))
        .await
        .unwrap();
    assert_eq!(added.into_inner().training.unwrap().attendee_count, 2);
    // Adding again changes nothing.
    let again = recognition(&cast.node, &staff).add_training_attendance(attend(&[&cast.accepted])).await.unwrap();
    assert_eq!(again.into_inner().training.unwrap().attendee_count, 2);

    let read = recognition(&cast.node, &cast.manager)
        .get_training(pb::GetTrainingRequest { training_id: training.training_id.clone() })
        .await
        .unwrap()
        .into_inner();
    let mut expected = vec![cast.accepted.clone(), cast.accepted_too.clone()];
    expected.sort();
    assert_eq!(read.attendee_volunteer_numbers, expected);
    let listed =
        recognition(&cast.node, &cast.manager).list_trainings(pb::ListTrainingsRequest::default()).await.unwrap();
    assert_eq!(listed.into_inner().trainings.len(), 1);
    let refused =
        recognition(&cast.node, &cast.volunteer).list_trainings(pb::ListTrainingsRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let profile = cast.profile(&cast.volunteer, &cast.accepted).await.unwrap();
    assert_eq!(profile.trainings.len(), 1);
    assert_eq!(profile.trainings[0].title, "生态环境志愿服务岗前培训");

    // Removing: once; the second time there is nothing to remove.
    let remove = pb::RemoveTrainingAttendanceRequest {
        training_id: training.training_id.clone(),
        volunteer_numbers: vec![cast.accepted_too.clone()],
    };
    let removed = recognition(&cast.node, &staff).remove_training_attendance(remove.clone()).await.unwrap();
    assert_eq!(removed.into_inner().training.unwrap().attendee_count, 1);
    let refused = recognition(&cast.node, &staff).remove_training_attendance(remove).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    assert!(cast.profile(&cast.volunteer_too, &cast.accepted_too).await.unwrap().trainings.is_empty());
}

/// (star, reached?, certified?) of each event.
fn star_events(profile: &pb::GetVolunteerProfileResponse) -> Vec<(u32, bool, bool)> {
    profile
        .star_events
        .iter()
        .map(|event| (event.star, event.direction == pb::StarDirection::Reached as i32, event.certified))
        .collect()
}

#[tokio::test]
async fn stars_follow_confirmed_hours_up_at_the_threshold_and_down_on_revocation() {
    let cast = cast().await;
    let staff = cast.node.tokens.staff.clone();
    // Recorded but not confirmed: no star.
    let request = pb::RecordServiceRequest {
        project_id: cast.project.clone(),
        volunteer_number: cast.accepted.clone(),
        method: pb::RecordingMethod::Interval as i32,
        start_time: Some(timestamp(cast.day + Duration::hours(7))),
        end_time: Some(timestamp(cast.day + Duration::hours(8))),
        content: "江岸巡查".into(),
        walk_in: false,
        idempotency_key: "unconfirmed".into(),
    };
    hours(&cast.node, &cast.manager).record_service(request).await.unwrap();
    assert_eq!(cast.profile(&staff, &cast.accepted).await.unwrap().star, 0);

    // Exactly 60 confirmed minutes: star 1, certified here (county).
    let first = cast.serve(&cast.accepted, 9 * 60, 10 * 60).await;
    let profile = cast.profile(&staff, &cast.accepted).await.unwrap();
    assert_eq!((profile.confirmed_minutes, profile.star), (60, 1));
    assert_eq!(star_events(&profile), [(1, true, true)]);
    assert!(profile.star_reached_at.is_some());
    assert_eq!(profile.star_events[0].certifying_level, pb::CertifyingLevel::County as i32);

    // Two more hours: stars 2 and 3 at once; star 3 awaits the city.
    let second = cast.serve(&cast.accepted, 11 * 60, 13 * 60).await;
    let profile = cast.profile(&staff, &cast.accepted).await.unwrap();
    assert_eq!((profile.confirmed_minutes, profile.star), (180, 3));
    assert_eq!(star_events(&profile), [(1, true, true), (2, true, true), (3, true, false)]);
    assert_eq!(profile.star_events[2].certifying_level, pb::CertifyingLevel::City as i32);

    // An amendment that keeps the star records nothing (its total passes below 3 h and back within one write).
    let amend = pb::AmendServiceRecordRequest {
        record_id: second.record_id.clone(),
        start_time: Some(timestamp(cast.day + Duration::minutes(11 * 60))),
        end_time: Some(timestamp(cast.day + Duration::minutes(13 * 60 + 15))),
        content: String::new(),
        reason: "签退时间记录有误".into(),
        ..Default::default()
    };
    hours(&cast.node, &cast.manager).amend_service_record(amend).await.unwrap();
    let profile = cast.profile(&staff, &cast.accepted).await.unwrap();
    assert_eq!((profile.confirmed_minutes, profile.star, profile.star_events.len()), (195, 3, 3));

    // Revoking the long record drops below 2 h: stars 3 and 2 are lost, the history stays.
    let revoke =
        |record_id: &str| pb::RevokeServiceRecordRequest { record_id: record_id.into(), reason: "重复记录".into() };
    hours(&cast.node, &cast.manager).revoke_service_record(revoke(&second.record_id)).await.unwrap();
    let profile = cast.profile(&staff, &cast.accepted).await.unwrap();
    assert_eq!((profile.confirmed_minutes, profile.star), (60, 1));
    assert_eq!(
        star_events(&profile),
        [(1, true, true), (2, true, true), (3, true, false), (3, false, false), (2, false, false)]
    );
    assert_eq!(profile.star_reached_at, profile.star_events[0].at);
    // And the last hour: no star.
    hours(&cast.node, &cast.manager).revoke_service_record(revoke(&first.record_id)).await.unwrap();
    let profile = cast.profile(&staff, &cast.accepted).await.unwrap();
    assert_eq!((profile.confirmed_minutes, profile.star, profile.star_events.len()), (0, 0, 6));
    assert!(profile.star_reached_at.is_none());
    let seqs: Vec<u64> = profile.star_events.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn a_profile_is_read_by_staff_the_volunteer_and_their_teams_managers_only() {
    let cast = cast().await;
    let staff = cast.node.tokens.staff.clone();
    assert_eq!(code(cast.profile(&staff, &cast.accepted).await), Code::Ok);
    assert_eq!(code(cast.profile(&cast.volunteer, &cast.accepted).await), Code::Ok);
    assert_eq!(code(cast.profile(&cast.volunteer_too, &cast.accepted).await), Code::PermissionDenied);
    // The organising team's manager reads members of their team only.
    assert_eq!(code(cast.profile(&cast.manager, &cast.accepted).await), Code::PermissionDenied);
    let member = pb::AddTeamMemberRequest {
        team_id: cast.organiser.clone(),
        volunteer_number: cast.accepted.clone(),
        role: pb::MemberRole::Member as i32,
    };
    cast.node.teams(&staff).add_team_member(member).await.unwrap();
    assert_eq!(code(cast.profile(&cast.manager, &cast.accepted).await), Code::Ok);
    assert_eq!(code(cast.profile(&cast.other_manager, &cast.accepted).await), Code::PermissionDenied);
    assert_eq!(code(cast.profile(&cast.node.tokens.auditor, &cast.accepted).await), Code::PermissionDenied);
    assert_eq!(code(cast.profile(&staff, "330106-99999999").await), Code::NotFound);
    let bad = pb::GetVolunteerProfileRequest { volunteer_number: "no/such".into(), evaluations_max: 101 };
    let refused = recognition(&cast.node, &staff).get_volunteer_profile(bad).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["volunteer_number", "evaluations_max"]);
    let empty = cast.profile(&staff, &cast.accepted_too).await.unwrap();
    assert_eq!((empty.star, empty.rating_count, empty.rating_average.as_str()), (0, 0, ""));
}
