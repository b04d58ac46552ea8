//! Service hours over real gRPC against a real node: recording and its refusals, idempotent retries, rosters
//! (all or nothing, errors per row), confirmation, corrections, amendments, revocation and the version history.
//!
//! Hours lie in the past and sign-ups close when a project starts, so the fixture publishes a project starting
//! two seconds from now, signs volunteers up, waits for the start, and records intervals of two days ago: the node
//! runs with `window_tolerance_minutes` of a week so they lie within the project's window.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::{
    project_service_client::ProjectServiceClient, service_record_service_client::ServiceRecordServiceClient,
    sign_up_service_client::SignUpServiceClient,
};
use ecovol_tests::fixtures::adult;
use ecovol_tests::scenario::{account, team, timestamp};
use ecovol_tests::{Authed, Bearer, NodeSpec, TestNode, violated_fields};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;

/// Hours configuration of the test node: a week's tolerance (see above), at most 8 hours a day.
const HOURS_TOML: &str = "[hours]\nwindow_tolerance_minutes = 10080\nday_hours_max = 8\n";

struct Cast {
    node: TestNode,
    /// Manager of the organising team.
    manager: String,
    /// Manager of another team.
    other_manager: String,
    /// The account of volunteer `accepted`.
    volunteer: String,
    /// Two volunteers with accepted sign-ups, one without.
    accepted: String,
    accepted_too: String,
    not_signed_up: String,
    project: String,
    draft: String,
    cancelled: String,
    /// 00:00 China time two days ago.
    day: DateTime<Utc>,
}

fn hours(node: &TestNode, token: &str) -> ServiceRecordServiceClient<Authed> {
    ServiceRecordServiceClient::new(InterceptedService::new(node.channel.clone(), Bearer::new(token)))
}

fn projects(node: &TestNode, token: &str) -> ProjectServiceClient<Authed> {
    ProjectServiceClient::new(InterceptedService::new(node.channel.clone(), Bearer::new(token)))
}

fn sign_ups(node: &TestNode, token: &str) -> SignUpServiceClient<Authed> {
    SignUpServiceClient::new(InterceptedService::new(node.channel.clone(), Bearer::new(token)))
}

async fn project(node: &TestNode, team_id: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let request = pb::CreateProjectRequest {
        title: "西溪湿地清洁".into(),
        activity_kind: pb::ActivityKind::GreenLowCarbon as i32,
        organising_team_id: team_id.into(),
        start_at: Some(timestamp(start)),
        end_at: Some(timestamp(end)),
        capacity: 10,
        ..Default::default()
    };
    projects(node, &node.tokens.staff).create_project(request).await.unwrap().into_inner().project.unwrap().project_id
}

async fn cast() -> Cast {
    let node = TestNode::start(NodeSpec { extra_toml: HOURS_TOML.into(), ..NodeSpec::county("330106") })
        .await
        .expect("node starts");
    let mut staff = node.volunteers(&node.tokens.staff);
    let mut register = async |index| {
        staff.register_volunteer(adult(index)).await.unwrap().into_inner().volunteer.unwrap().volunteer_number
    };
    let (accepted, accepted_too, not_signed_up) = (register(1).await, register(2).await, register(3).await);
    let organiser = team(&node, "西湖护水队").await;
    let other = team(&node, "滨江环保队").await;
    let manager = account(&node, pb::Role::TeamManager, &organiser, "").await;
    let other_manager = account(&node, pb::Role::TeamManager, &other, "").await;
    let volunteer = account(&node, pb::Role::Volunteer, "", &accepted).await;

    let start = Utc::now() + Duration::seconds(2);
    let project_id = project(&node, &organiser, start, start + Duration::days(1)).await;
    projects(&node, &node.tokens.staff)
        .publish_project(pb::PublishProjectRequest { project_id: project_id.clone() })
        .await
        .unwrap();
    for (index, number) in [&accepted, &accepted_too].into_iter().enumerate() {
        let request = pb::SignUpRequest {
            project_id: project_id.clone(),
            volunteer_number: number.clone(),
            idempotency_key: format!("signup-{index}"),
        };
        let answer = sign_ups(&node, &node.tokens.staff).sign_up(request).await.unwrap().into_inner();
        assert_eq!(answer.sign_up.unwrap().status, pb::SignUpStatus::Accepted as i32);
    }
    let past = Utc::now() - Duration::days(3);
    let draft = project(&node, &organiser, past, past + Duration::days(2)).await;
    let cancelled = project(&node, &organiser, past, past + Duration::days(2)).await;
    projects(&node, &node.tokens.staff)
        .cancel_project(pb::CancelProjectRequest { project_id: cancelled.clone(), reason: "天气".into() })
        .await
        .unwrap();
    // Hours are in the past: wait until the project has started.
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
        accepted,
        accepted_too,
        not_signed_up,
        project: project_id,
        draft,
        cancelled,
        day,
    }
}

impl Cast {
    /// A recording of `volunteer` from `from` to `to` hours after 00:00 China time two days ago.
    fn request(&self, volunteer: &str, from_minutes: i64, to_minutes: i64, key: &str) -> pb::RecordServiceRequest {
        pb::RecordServiceRequest {
            project_id: self.project.clone(),
            volunteer_number: volunteer.into(),
            method: pb::RecordingMethod::CheckInOut as i32,
            start_time: Some(timestamp(self.day + Duration::minutes(from_minutes))),
            end_time: Some(timestamp(self.day + Duration::minutes(to_minutes))),
            content: "湿地垃圾清理，服务游客".into(),
            walk_in: false,
            idempotency_key: key.into(),
        }
    }

    fn row(&self, volunteer: &str, from_minutes: i64, to_minutes: i64, key: &str) -> pb::ServiceRow {
        let request = self.request(volunteer, from_minutes, to_minutes, key);
        pb::ServiceRow {
            volunteer_number: request.volunteer_number,
            method: pb::RecordingMethod::Interval as i32,
            start_time: request.start_time,
            end_time: request.end_time,
            content: request.content,
            walk_in: false,
            idempotency_key: request.idempotency_key,
        }
    }

    async fn record(&self, token: &str, request: pb::RecordServiceRequest) -> Result<pb::ServiceRecord, tonic::Status> {
        hours(&self.node, token).record_service(request).await.map(|answer| answer.into_inner().record.unwrap())
    }
}

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn a_recording_is_rounded_and_a_retry_returns_the_same_record() {
    let cast = cast().await;
    // 09:00–11:07:30 → 127.5 minutes → 135 at the quarter hour, halves up.
    let mut request = cast.request(&cast.accepted, 9 * 60, 11 * 60 + 7, "first");
    request.end_time = Some(timestamp(cast.day + Duration::seconds((11 * 60 + 7) * 60 + 30)));
    let first = hours(&cast.node, &cast.manager).record_service(request.clone()).await.unwrap().into_inner();
    let record = first.record.unwrap();
    assert!(!first.replayed);
    assert_eq!(record.record_id, "330106-H00000001");
    assert_eq!((record.minutes_served, record.hours_x100), (135, 225));
    assert_eq!(record.state, pb::ServiceRecordState::Recorded as i32);
    assert_eq!(record.activity_kind, "green_low_carbon");

    // The same request again (a lost answer): the first record, never a second.
    let again = hours(&cast.node, &cast.manager).record_service(request.clone()).await.unwrap().into_inner();
    assert!(again.replayed);
    assert_eq!(again.record.unwrap().record_id, record.record_id);
    // The same key for another interval is refused on the key.
    let reused = cast.request(&cast.accepted, 13 * 60, 14 * 60, "first");
    let refused = cast.record(&cast.manager, reused).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["idempotency_key"]);
    let listed = hours(&cast.node, &cast.node.tokens.staff)
        .list_service_records(pb::ListServiceRecordsRequest { project_id: cast.project.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.records.len(), 1);
}

#[tokio::test]
async fn every_refusal_of_a_recording() {
    let cast = cast().await;
    let staff = cast.node.tokens.staff.clone();

    // Bad input: every broken field at once.
    let bad = pb::RecordServiceRequest {
        method: 0,
        content: String::new(),
        idempotency_key: String::new(),
        ..cast.request("", 10 * 60, 9 * 60, "")
    };
    let refused = cast.record(&staff, bad).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["volunteer_number", "method", "end_time", "content", "idempotency_key"]);
    // End not after start.
    let refused = cast.record(&staff, cast.request(&cast.accepted, 9 * 60, 9 * 60, "same")).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["end_time"]);
    // In the future.
    let future = pb::RecordServiceRequest {
        start_time: Some(timestamp(Utc::now() + Duration::hours(1))),
        end_time: Some(timestamp(Utc::now() + Duration::hours(2))),
        ..cast.request(&cast.accepted, 0, 1, "future")
    };
    let refused = cast.record(&staff, future).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["start_time", "end_time"]);
    // Outside the project's window and its tolerance (a week before the start).
    let early = cast.request(&cast.accepted, -7 * 24 * 60, -7 * 24 * 60 + 60, "early");
    let refused = cast.record(&staff, early).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["start_time"]);

    // Overlap with another record of the same volunteer.
    let kept = cast.record(&staff, cast.request(&cast.accepted, 9 * 60, 11 * 60, "kept")).await.unwrap();
    let refused = cast.record(&staff, cast.request(&cast.accepted, 10 * 60, 12 * 60, "overlap")).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains(&kept.record_id), "{}", refused.message());
    // More than 8 hours (this node's day_hours_max) in one China day: 2 h + 5 h + 2 h.
    cast.record(&staff, cast.request(&cast.accepted, 12 * 60, 17 * 60, "long")).await.unwrap();
    let refused = cast.record(&staff, cast.request(&cast.accepted, 18 * 60, 20 * 60, "tired")).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("8 hours"), "{}", refused.message());
    // 8 hours exactly are allowed; then crossing midnight counts into both days: 23:00–01:00 adds 1 h to the
    // full day.
    cast.record(&staff, cast.request(&cast.accepted, 17 * 60, 18 * 60, "last-hour")).await.unwrap();
    let refused = cast.record(&staff, cast.request(&cast.accepted, 23 * 60, 25 * 60, "night")).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("8 hours"), "{}", refused.message());

    // Not accepted on the project: refused, unless staff record a walk-in (marked).
    let stranger = cast.request(&cast.not_signed_up, 9 * 60, 10 * 60, "stranger");
    assert_eq!(code(cast.record(&cast.manager, stranger.clone()).await), Code::FailedPrecondition);
    let walk_in = pb::RecordServiceRequest { walk_in: true, ..stranger };
    assert_eq!(code(cast.record(&cast.manager, walk_in.clone()).await), Code::PermissionDenied);
    assert!(cast.record(&staff, walk_in).await.unwrap().walk_in);

    // Recorders: neither staff nor the organising team's manager.
    let theirs = cast.request(&cast.accepted_too, 9 * 60, 10 * 60, "theirs");
    assert_eq!(code(cast.record(&cast.other_manager, theirs.clone()).await), Code::PermissionDenied);
    assert_eq!(code(cast.record(&cast.volunteer, theirs.clone()).await), Code::PermissionDenied);
    assert_eq!(code(cast.record(&cast.node.tokens.auditor, theirs.clone()).await), Code::PermissionDenied);
    assert_eq!(code(cast.record(&cast.manager, theirs).await), Code::Ok);

    // Projects not taking records, unknown projects and volunteers.
    let on = |project_id: &str, key: &str| pb::RecordServiceRequest {
        project_id: project_id.into(),
        ..cast.request(&cast.accepted_too, 12 * 60, 13 * 60, key)
    };
    assert_eq!(code(cast.record(&staff, on(&cast.draft, "d")).await), Code::FailedPrecondition);
    assert_eq!(code(cast.record(&staff, on(&cast.cancelled, "c")).await), Code::FailedPrecondition);
    assert_eq!(code(cast.record(&staff, on("330106-P999999", "u")).await), Code::NotFound);
    let unknown = cast.request("330106-09999999", 9 * 60, 10 * 60, "nobody");
    assert_eq!(code(cast.record(&staff, unknown).await), Code::NotFound);
}

#[tokio::test]
async fn a_roster_is_all_or_nothing_with_errors_per_row() {
    let cast = cast().await;
    let mut client = hours(&cast.node, &cast.manager);
    let bulk = |rows: Vec<pb::ServiceRow>| pb::RecordServiceBulkRequest { project_id: cast.project.clone(), rows };
    let refused = client
        .record_service_bulk(bulk(vec![
            cast.row(&cast.accepted, 9 * 60, 10 * 60, "r0"),
            cast.row(&cast.accepted_too, 9 * 60, 10 * 60, "r1"),
            // Overlaps row 0.
            cast.row(&cast.accepted, 9 * 60 + 30, 10 * 60 + 30, "r2"),
            // End not after start.
            cast.row(&cast.accepted_too, 11 * 60, 11 * 60, "r3"),
            // No sign-up, and only staff record walk-ins.
            pb::ServiceRow { walk_in: true, ..cast.row(&cast.not_signed_up, 9 * 60, 10 * 60, "r4") },
        ]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["rows[3].end_time"]);
    let refused = client
        .record_service_bulk(bulk(vec![
            cast.row(&cast.accepted, 9 * 60, 10 * 60, "r0"),
            cast.row(&cast.accepted_too, 9 * 60, 10 * 60, "r1"),
            cast.row(&cast.accepted, 9 * 60 + 30, 10 * 60 + 30, "r2"),
            pb::ServiceRow { walk_in: true, ..cast.row(&cast.not_signed_up, 9 * 60, 10 * 60, "r4") },
        ]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["rows[2].start_time", "rows[3].walk_in"]);
    // Nothing was stored.
    let listed = hours(&cast.node, &cast.node.tokens.staff)
        .list_service_records(pb::ListServiceRecordsRequest { project_id: cast.project.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.records.is_empty());

    let roster = bulk(vec![
        cast.row(&cast.accepted, 9 * 60, 10 * 60, "r0"),
        cast.row(&cast.accepted_too, 9 * 60, 10 * 60, "r1"),
        cast.row(&cast.accepted, 10 * 60, 11 * 60, "r2"),
    ]);
    let stored = client.record_service_bulk(roster.clone()).await.unwrap().into_inner();
    let ids: Vec<String> = stored.records.iter().map(|record| record.record_id.clone()).collect();
    assert_eq!(ids, ["330106-H00000001", "330106-H00000002", "330106-H00000003"]);
    // The roster sent again: the same records.
    let again = client.record_service_bulk(roster).await.unwrap().into_inner();
    assert_eq!(again.replayed_count, 3);
    assert_eq!(again.records.iter().map(|record| record.record_id.clone()).collect::<Vec<_>>(), ids);
}

#[tokio::test]
async fn confirmation_correction_amendment_and_revocation_keep_every_version() {
    let cast = cast().await;
    let record_id =
        cast.record(&cast.manager, cast.request(&cast.accepted, 9 * 60, 11 * 60, "k")).await.unwrap().record_id;
    let target = || pb::ConfirmServiceRecordRequest { record_id: record_id.clone() };

    // Another team's manager may neither confirm nor read it.
    let other = hours(&cast.node, &cast.other_manager).confirm_service_record(target()).await;
    assert_eq!(code(other), Code::PermissionDenied);
    let read = hours(&cast.node, &cast.other_manager)
        .get_service_record(pb::GetServiceRecordRequest { record_id: record_id.clone() })
        .await;
    assert_eq!(code(read), Code::PermissionDenied);
    let confirmed = hours(&cast.node, &cast.manager).confirm_service_record(target()).await.unwrap().into_inner();
    assert_eq!(confirmed.record.unwrap().state, pb::ServiceRecordState::Confirmed as i32);

    // The volunteer reports an error; only their own account may.
    let correction = pb::RequestCorrectionRequest {
        record_id: record_id.clone(),
        reason: "实际服务到11:30".into(),
        proposed_start_time: Some(timestamp(cast.day + Duration::minutes(9 * 60))),
        proposed_end_time: Some(timestamp(cast.day + Duration::minutes(11 * 60 + 30))),
        proposed_content: String::new(),
    };
    let by_manager = hours(&cast.node, &cast.manager).request_correction(correction.clone()).await;
    assert_eq!(code(by_manager), Code::PermissionDenied);
    let requested =
        hours(&cast.node, &cast.volunteer).request_correction(correction).await.unwrap().into_inner().record.unwrap();
    assert!(requested.correction_requested);
    assert_eq!(requested.correction.unwrap().reason, "实际服务到11:30");

    // The team verifies and amends: a new version, still confirmed, the flag cleared.
    let amend = pb::AmendServiceRecordRequest {
        record_id: record_id.clone(),
        start_time: Some(timestamp(cast.day + Duration::minutes(9 * 60))),
        end_time: Some(timestamp(cast.day + Duration::minutes(11 * 60 + 30))),
        content: String::new(),
        reason: "签到表核实".into(),
        expected_version: 0,
    };
    // Naming a version the record is not at is refused; naming the current one works.
    let stale = pb::AmendServiceRecordRequest { expected_version: 1, ..amend.clone() };
    let refused = hours(&cast.node, &cast.manager).amend_service_record(stale).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let current = hours(&cast.node, &cast.manager)
        .get_service_record(pb::GetServiceRecordRequest { record_id: record_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap()
        .version;
    let amend = pb::AmendServiceRecordRequest { expected_version: current, ..amend };
    let amended =
        hours(&cast.node, &cast.manager).amend_service_record(amend).await.unwrap().into_inner().record.unwrap();
    assert_eq!(amended.state, pb::ServiceRecordState::Confirmed as i32);
    assert_eq!((amended.minutes_served, amended.hours_x100), (150, 250));
    assert!(!amended.correction_requested);

    let revoke = pb::RevokeServiceRecordRequest { record_id: record_id.clone(), reason: "重复记录".into() };
    let revoked =
        hours(&cast.node, &cast.manager).revoke_service_record(revoke.clone()).await.unwrap().into_inner().record;
    assert_eq!(revoked.unwrap().state, pb::ServiceRecordState::Revoked as i32);
    assert_eq!(code(hours(&cast.node, &cast.manager).revoke_service_record(revoke).await), Code::FailedPrecondition);
    assert_eq!(code(hours(&cast.node, &cast.manager).confirm_service_record(target()).await), Code::FailedPrecondition);

    // The volunteer sees every version, with who and why.
    let full = hours(&cast.node, &cast.volunteer)
        .get_service_record(pb::GetServiceRecordRequest { record_id: record_id.clone() })
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<i32> = full.versions.iter().map(|version| version.action).collect();
    use pb::ServiceRecordAction as Action;
    assert_eq!(
        actions,
        [Action::Recorded, Action::Confirmed, Action::CorrectionRequested, Action::Amended, Action::Revoked]
            .map(|action| action as i32)
    );
    assert_eq!(full.versions[3].reason, "签到表核实");
    assert_eq!(full.versions[0].minutes_served, 120);
    assert!(full.versions.iter().all(|version| !version.changed_by.is_empty()));

    // Lists by volunteer and state.
    let list = |state: pb::ServiceRecordState| pb::ListServiceRecordsRequest {
        volunteer_number: cast.accepted.clone(),
        state: state as i32,
        ..Default::default()
    };
    let mine = hours(&cast.node, &cast.volunteer).list_service_records(list(pb::ServiceRecordState::Revoked)).await;
    assert_eq!(mine.unwrap().into_inner().records.len(), 1);
    let confirmed =
        hours(&cast.node, &cast.volunteer).list_service_records(list(pb::ServiceRecordState::Confirmed)).await;
    assert!(confirmed.unwrap().into_inner().records.is_empty());
    let not_mine = pb::ListServiceRecordsRequest { volunteer_number: cast.accepted_too.clone(), ..Default::default() };
    assert_eq!(code(hours(&cast.node, &cast.volunteer).list_service_records(not_mine).await), Code::PermissionDenied);
}
