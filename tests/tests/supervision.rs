//! Social supervision reports over real gRPC against a real node: the flow received → referred → closed, and the
//! reporter's confidentiality by role (Environmental Protection Law art. 57).

use chrono::{Duration, Utc};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::supervision_service_client::SupervisionServiceClient;
use ecovol_tests::fixtures::adult;
use ecovol_tests::scenario::account;
use ecovol_tests::{Authed, Bearer, NodeSpec, TestNode, violated_fields};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;

struct Cast {
    node: TestNode,
    reporter: String,
    reporter_token: String,
    other_volunteer_token: String,
    manager_token: String,
}

fn reports(node: &TestNode, token: &str) -> SupervisionServiceClient<Authed> {
    SupervisionServiceClient::new(InterceptedService::new(node.channel.clone(), Bearer::new(token)))
}

async fn cast() -> Cast {
    let node = TestNode::start(NodeSpec::county("330106")).await.expect("node starts");
    let mut volunteers = node.volunteers(&node.tokens.staff);
    let reporter =
        volunteers.register_volunteer(adult(1)).await.unwrap().into_inner().volunteer.unwrap().volunteer_number;
    let other = volunteers.register_volunteer(adult(2)).await.unwrap().into_inner().volunteer.unwrap().volunteer_number;
    let team_request = pb::CreateTeamRequest {
        name: "西湖护水队".into(),
        kind: pb::TeamKind::SocialOrganisation as i32,
        ..Default::default()
    };
    let team_id =
        node.teams(&node.tokens.staff).create_team(team_request).await.unwrap().into_inner().team.unwrap().team_id;
    let reporter_token = account(&node, pb::Role::Volunteer, "", &reporter).await;
    let other_volunteer_token = account(&node, pb::Role::Volunteer, "", &other).await;
    let manager_token = account(&node, pb::Role::TeamManager, &team_id, "").await;
    Cast { node, reporter, reporter_token, other_volunteer_token, manager_token }
}

fn submission(reporter: &str) -> pb::SubmitReportRequest {
    pb::SubmitReportRequest {
        place: "西溪湿地东侧排水口".into(),
        occurred_at: Some(prost_types::Timestamp { seconds: (Utc::now() - Duration::hours(3)).timestamp(), nanos: 0 }),
        description: "排水口有黑色污水流入河道，气味刺鼻".into(),
        category: pb::ReportCategory::Water as i32,
        reporter_volunteer_number: reporter.into(),
    }
}

#[tokio::test]
async fn a_report_moves_forward_and_its_reporter_is_seen_only_by_staff_and_themself() {
    let cast = cast().await;
    let node = &cast.node;
    let submitted =
        reports(node, &cast.reporter_token).submit_report(submission(&cast.reporter)).await.unwrap().into_inner();
    let report = submitted.report.unwrap();
    assert!(report.report_id.starts_with("330106-R"), "{}", report.report_id);
    assert_eq!(report.status, pb::ReportStatus::Received as i32);
    assert_eq!(report.reporter_volunteer_number, cast.reporter, "the reporter sees their own report");
    let id = report.report_id.clone();
    let get = |token: String| {
        let id = id.clone();
        let mut client = reports(node, &token);
        async move { client.get_report(pb::GetReportRequest { report_id: id }).await }
    };

    // Staff see the reporter, number and name.
    let seen = get(node.tokens.staff.clone()).await.unwrap().into_inner().report.unwrap();
    assert_eq!(
        (seen.reporter_volunteer_number.as_str(), seen.reporter_name.as_str()),
        (cast.reporter.as_str(), "志愿者1")
    );
    // Nobody else reads the report at all.
    assert_eq!(get(cast.manager_token.clone()).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(get(node.tokens.auditor.clone()).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(get(node.tokens.operator.clone()).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(get(cast.other_volunteer_token.clone()).await.unwrap_err().code(), Code::NotFound);
    let listed = reports(node, &cast.manager_token).list_reports(pb::ListReportsRequest::default()).await;
    assert_eq!(listed.unwrap_err().code(), Code::PermissionDenied);

    // Staff move it forward, each step with a note, never back.
    let mut staff = reports(node, &node.tokens.staff);
    let step = |status: pb::ReportStatus, note: &str| pb::AdvanceReportRequest {
        report_id: id.clone(),
        status: status as i32,
        note: note.into(),
    };
    let denied = reports(node, &cast.reporter_token).advance_report(step(pb::ReportStatus::Closed, "自行结案")).await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    let referred = staff.advance_report(step(pb::ReportStatus::Referred, "转交区执法大队")).await.unwrap().into_inner();
    assert_eq!(referred.report.unwrap().status, pb::ReportStatus::Referred as i32);
    let again = staff.advance_report(step(pb::ReportStatus::Referred, "再次转交")).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let closed = staff.advance_report(step(pb::ReportStatus::Closed, "已查处，责令整改")).await.unwrap().into_inner();
    let closed = closed.report.unwrap();
    assert_eq!(closed.status, pb::ReportStatus::Closed as i32);
    assert_eq!(closed.history.len(), 3);
    assert_eq!(closed.history[2].note, "已查处，责令整改");
    let back = staff.advance_report(step(pb::ReportStatus::Referred, "重新转交")).await.unwrap_err();
    assert_eq!(back.code(), Code::FailedPrecondition);
    let received =
        pb::AdvanceReportRequest { status: pb::ReportStatus::Received as i32, ..step(pb::ReportStatus::Received, "x") };
    assert_eq!(staff.advance_report(received).await.unwrap_err().code(), Code::InvalidArgument);

    // Staff list by status, with the reporter.
    let closed_list = staff
        .list_reports(pb::ListReportsRequest { status: pb::ReportStatus::Closed as i32, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(closed_list.reports.len(), 1);
    assert_eq!(closed_list.reports[0].reporter_volunteer_number, cast.reporter);
    let received_list = staff
        .list_reports(pb::ListReportsRequest { status: pb::ReportStatus::Received as i32, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(received_list.reports.is_empty());
    // The reporter still reads their own report.
    assert_eq!(get(cast.reporter_token.clone()).await.unwrap().into_inner().report.unwrap().status, closed.status);

    // The audit trail names the report, never the reporter, in target and detail.
    let trail = node.audit(&node.tokens.auditor).list_audit_entries(pb::ListAuditEntriesRequest::default()).await;
    let trail = trail.unwrap().into_inner().entries;
    let supervision: Vec<_> = trail.iter().filter(|entry| entry.operation.starts_with("SupervisionService/")).collect();
    assert!(!supervision.is_empty());
    for entry in supervision {
        assert!(!entry.target.contains(&cast.reporter) && !entry.detail.contains(&cast.reporter), "{entry:?}");
        assert!(!entry.detail.contains("志愿者1"), "{entry:?}");
    }
    assert!(trail.iter().any(|entry| entry.operation == "SupervisionService/SubmitReport" && entry.target == id));
    // Nor does the account that submitted it: a volunteer reporting as themself appears under a pseudonym only.
    let reporter_account = node.accounts(&cast.reporter_token).who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    let reporter_account = reporter_account.into_inner().account.unwrap();
    let submitted =
        trail.iter().find(|entry| entry.operation == "SupervisionService/SubmitReport" && entry.target == id);
    let submitted = submitted.unwrap();
    assert!(submitted.account_id.starts_with("reporter-"), "{submitted:?}");
    assert_eq!(submitted.account_name, "confidential reporter");
    for entry in &trail {
        if entry.operation.starts_with("SupervisionService/") {
            assert_ne!(entry.account_id, reporter_account.account_id, "{entry:?}");
            assert_ne!(entry.account_name, reporter_account.name, "{entry:?}");
        }
    }
}

#[tokio::test]
async fn submissions_are_refused_for_others_bad_input_and_unknown_reporters() {
    let cast = cast().await;
    let node = &cast.node;
    // A volunteer reports only as themself; staff may submit on a volunteer's behalf.
    let for_other = reports(node, &cast.other_volunteer_token).submit_report(submission(&cast.reporter)).await;
    assert_eq!(for_other.unwrap_err().code(), Code::PermissionDenied);
    let mut staff = reports(node, &node.tokens.staff);
    let on_behalf = staff.submit_report(submission(&cast.reporter)).await.unwrap().into_inner().report.unwrap();
    assert_eq!(on_behalf.reporter_volunteer_number, cast.reporter);
    let as_manager = reports(node, &cast.manager_token).submit_report(submission(&cast.reporter)).await;
    assert_eq!(as_manager.unwrap_err().code(), Code::PermissionDenied);
    let unknown = staff.submit_report(submission("330106-99999999")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let future = pb::SubmitReportRequest {
        place: "x".repeat(201),
        occurred_at: Some(prost_types::Timestamp { seconds: (Utc::now() + Duration::days(1)).timestamp(), nanos: 0 }),
        description: String::new(),
        category: pb::ReportCategory::Unspecified as i32,
        reporter_volunteer_number: "bad/number".into(),
    };
    let bad = staff.submit_report(future).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), ["place", "description", "occurred_at", "category", "reporter_volunteer_number"]);
}
