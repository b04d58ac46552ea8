//! Joint work plans across departments and levels (PLAN-1): drafted and countersigned at the province, issued,
//! adopted and cascaded by the cities, adopted by the counties (one of them offline at issue time), progress
//! measured from the roll-ups and reported by task owners, closed with an evaluation — on seven real nodes.

use std::time::Duration;

use chrono::{Datelike, Duration as Span, NaiveDate};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::plan_service_client::PlanServiceClient;
use ecovol_tests::cluster::{Cluster, ClusterNode, JIANGSU};
use ecovol_tests::federation_load::{load_county, volunteer};
use tonic::Code;

const DELIVERY: Duration = Duration::from_secs(60);
const HOURS_WINDOW: &str = "[hours]\nwindow_tolerance_minutes = 10080\n";

fn plans(node: &ClusterNode, token: &str) -> PlanServiceClient<ecovol_tests::Authed> {
    PlanServiceClient::new(node.authed(token))
}

/// From the first day of two months ago to the last day of next month (China calendar).
fn period() -> (String, String) {
    let today = ecovol_node::wire::today_china();
    let back = today - Span::days(62);
    let start = NaiveDate::from_ymd_opt(back.year(), back.month(), 1).unwrap();
    let ahead = today + Span::days(40);
    let end = NaiveDate::from_ymd_opt(ahead.year(), ahead.month(), 28).unwrap();
    (start.to_string(), end.to_string())
}

fn department(d: pb::Department) -> i32 {
    d as i32
}

fn region(code: &str, value: u64) -> pb::RegionValue {
    pb::RegionValue { region: code.into(), value }
}

fn task(id: &str, owner: pb::Department) -> pb::PlanTask {
    let due = (ecovol_node::wire::today_china() + Span::days(20)).to_string();
    pb::PlanTask {
        task_id: id.into(),
        title: format!("任务 {id}"),
        owner: owner as i32,
        due_date: due,
        ..Default::default()
    }
}

/// Waits until `node` holds plan `id` in `state`.
async fn eventually_state(node: &ClusterNode, id: &str, state: pb::PlanState) -> pb::Plan {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        let listed = plans(node, &node.tokens.staff).list_plans(pb::ListPlansRequest {}).await.unwrap().into_inner();
        if let Some(plan) = listed.plans.iter().find(|p| p.plan_id == id && p.state == state as i32) {
            return plan.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{} never held {id} as {state:?}: {listed:?}", node.code);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn draft_request() -> pb::DraftPlanRequest {
    let (period_start, period_end) = period();
    pb::DraftPlanRequest {
        title: "2026年生态环境志愿服务联合工作计划".into(),
        period_start,
        period_end,
        lead_departments: vec![department(pb::Department::EcologyBureau)],
        participating_departments: vec![
            department(pb::Department::EcologyBureau),
            department(pb::Department::CivilAffairs),
        ],
        areas: vec![pb::CooperationArea::ProjectCultivation as i32, pb::CooperationArea::TeamBuilding as i32],
        metrics: vec![
            pb::MetricTarget {
                target_id: "new-volunteers".into(),
                metric: pb::PlanMetric::NewVolunteers as i32,
                per_region: vec![region("320100", 10), region("320200", 100)],
            },
            pb::MetricTarget {
                target_id: "hours".into(),
                metric: pb::PlanMetric::ConfirmedHours as i32,
                per_region: vec![region("320100", 5)],
            },
        ],
        tasks: vec![task("platform", pb::Department::CivilAffairs)],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_reaches_every_county_once_and_progress_comes_back_to_the_issuer() {
    let mut cluster = Cluster::start(&JIANGSU, HOURS_WINDOW).await.unwrap();
    for (i, county) in ["320102", "320104", "320205"].into_iter().enumerate() {
        load_county(cluster.node(county), 7 + i as u64, 1000 * i as u32, 6).await.unwrap();
    }
    // Huishan is offline when the plan is issued.
    cluster.stop("320206").await.unwrap();
    let province = cluster.node("320000");
    let (ecology, civil) = (province.tokens.staff.clone(), province.tokens.staff_civil_affairs.clone());

    // Draft → countersigning → returned with a comment → redrafted → signed by both → issued.
    let drafted = plans(province, &ecology).draft_plan(draft_request()).await.unwrap().into_inner().plan.unwrap();
    let id = drafted.plan_id.clone();
    assert_eq!((id.as_str(), drafted.state), ("320000-PL0001", pb::PlanState::Draft as i32));
    plans(province, &ecology).submit_plan(pb::PlanRequest { plan_id: id.clone() }).await.unwrap();
    let returned = plans(province, &civil)
        .return_plan(pb::ReturnPlanRequest { plan_id: id.clone(), comment: "请补充团队建设任务".into() })
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(returned.state, pb::PlanState::Draft as i32);
    assert_eq!(returned.returns[0].comment, "请补充团队建设任务");
    let mut redraft = draft_request();
    redraft.plan_id = id.clone();
    redraft.tasks.push(task("teams", pb::Department::EcologyBureau));
    plans(province, &ecology).draft_plan(redraft).await.unwrap();
    plans(province, &ecology).submit_plan(pb::PlanRequest { plan_id: id.clone() }).await.unwrap();
    plans(province, &ecology).sign_plan(pb::PlanRequest { plan_id: id.clone() }).await.unwrap();
    let early = plans(province, &ecology).issue_plan(pb::PlanRequest { plan_id: id.clone() }).await.unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition, "civil affairs has not signed: {early:?}");
    plans(province, &civil).sign_plan(pb::PlanRequest { plan_id: id.clone() }).await.unwrap();
    let issued = plans(province, &ecology).issue_plan(pb::PlanRequest { plan_id: id.clone() }).await.unwrap();
    assert_eq!(issued.into_inner().plan.unwrap().state, pb::PlanState::Issued as i32);

    // The cities receive it, adopt it with their own task, and split the volunteers target among their counties.
    for (city, counties) in [("320100", ["320102", "320104"]), ("320200", ["320205", "320206"])] {
        let node = cluster.node(city);
        let received = eventually_state(node, &id, pb::PlanState::Received).await;
        assert_eq!(received.received_from, "320000");
        let adopt = pb::AdoptPlanRequest {
            plan_id: id.clone(),
            tasks: vec![task(&format!("city-{city}"), pb::Department::EcologyBureau)],
            splits: vec![pb::MetricTarget {
                target_id: "new-volunteers".into(),
                metric: pb::PlanMetric::NewVolunteers as i32,
                per_region: counties.iter().map(|c| region(c, 5)).collect(),
            }],
        };
        plans(node, &node.tokens.staff).adopt_plan(adopt).await.unwrap();
    }
    // Each county present receives it once the city adopted it, adopts it and reports on its own task.
    for county in ["320102", "320104", "320205"] {
        let node = cluster.node(county);
        eventually_state(node, &id, pb::PlanState::Received).await;
        let adopt = pb::AdoptPlanRequest {
            plan_id: id.clone(),
            tasks: vec![task(&format!("county-{county}"), pb::Department::EcologyBureau)],
            splits: vec![],
        };
        plans(node, &node.tokens.staff).adopt_plan(adopt).await.unwrap();
        let report = pb::ReportTaskRequest {
            plan_id: id.clone(),
            task_id: format!("county-{county}"),
            percent: 50,
            note: "已完成一半".into(),
        };
        plans(node, &node.tokens.staff).report_task(report).await.unwrap();
    }
    // Huishan comes back and receives the plan it missed.
    cluster.start_again("320206").await.unwrap();
    let huishan = cluster.node("320206");
    eventually_state(huishan, &id, pb::PlanState::Received).await;
    plans(huishan, &huishan.tokens.staff)
        .adopt_plan(pb::AdoptPlanRequest { plan_id: id.clone(), ..Default::default() })
        .await
        .unwrap();
    // Restarts deliver nothing twice: each node still holds one copy, adopted.
    cluster.restart("320100").await.unwrap();
    cluster.restart("320102").await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let province = cluster.node("320000");
    for county in ["320102", "320104", "320205", "320206"] {
        let node = cluster.node(county);
        let listed = plans(node, &node.tokens.staff).list_plans(pb::ListPlansRequest {}).await.unwrap().into_inner();
        let copies: Vec<&pb::Plan> = listed.plans.iter().filter(|p| p.plan_id == id).collect();
        assert_eq!(copies.len(), 1, "{county}: exactly one copy");
        assert_eq!(copies[0].state, pb::PlanState::Adopted as i32, "{county}: still adopted after restarts");
    }

    // At the issuer: every adoption, every county's task report, and measured progress equal to the roll-up.
    let view = plans(province, &ecology).get_plan(pb::PlanRequest { plan_id: id.clone() }).await.unwrap().into_inner();
    let adopted: Vec<&str> = view.adoptions.iter().map(|a| a.region.as_str()).collect();
    assert_eq!(adopted, ["320100", "320102", "320104", "320200", "320205", "320206"]);
    let reports: Vec<(&str, &str, u32)> = view
        .tasks
        .iter()
        .filter(|t| t.percent > 0)
        .map(|t| (t.region.as_str(), t.task_id.as_str(), t.percent))
        .collect();
    assert_eq!(
        reports,
        [("320102", "county-320102", 50), ("320104", "county-320104", 50), ("320205", "county-320205", 50)]
    );
    let (start_date, end_date) = period();
    for progress in &view.targets {
        let stats = pb::stats_service_client::StatsServiceClient::new(province.staff())
            .get_region_stats(pb::GetRegionStatsRequest {
                region: progress.region.clone(),
                start_date: start_date.clone(),
                end_date: end_date.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let totals = stats.totals.unwrap();
        let measured = if progress.metric == pb::PlanMetric::NewVolunteers as i32 {
            totals.newly_registered_volunteers
        } else {
            totals.confirmed_hours_x100 / 100
        };
        assert_eq!(progress.actual, measured, "{progress:?}");
        assert!(progress.freshness.is_some_and(|f| !f.stale), "{progress:?}");
    }
    let nanjing = view.targets.iter().find(|t| t.target_id == "new-volunteers" && t.region == "320100").unwrap();
    assert_eq!((nanjing.actual, nanjing.status), (12, pb::TargetStatus::Done as i32));
    let wuxi = view.targets.iter().find(|t| t.target_id == "new-volunteers" && t.region == "320200").unwrap();
    assert_eq!(wuxi.actual, 6);
    assert_ne!(wuxi.status, pb::TargetStatus::Done as i32, "6 of 100");
    // The province's compliance checks are shown with the plan.
    assert!(!view.compliance.is_empty() && view.compliance.iter().all(|c| !c.satisfied), "{:?}", view.compliance);

    // New volunteers move the measured figure.
    let mut registry =
        ecovol_proto::v1::volunteer_service_client::VolunteerServiceClient::new(cluster.node("320205").staff());
    registry.register_volunteer(volunteer("320205", 9000)).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let view = plans(province, &ecology).get_plan(pb::PlanRequest { plan_id: id.clone() }).await.unwrap().into_inner();
    let wuxi = view.targets.iter().find(|t| t.target_id == "new-volunteers" && t.region == "320200").unwrap();
    assert_eq!(wuxi.actual, 7);

    // Closing at the province closes every copy below.
    plans(province, &ecology)
        .close_plan(pb::ClosePlanRequest { plan_id: id.clone(), evaluation: "总体完成，南京超额".into() })
        .await
        .unwrap();
    for code in ["320100", "320200", "320102", "320104", "320205", "320206"] {
        let closed = eventually_state(cluster.node(code), &id, pb::PlanState::Closed).await;
        assert_eq!(closed.evaluation, "总体完成，南京超额");
    }
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_legal_transitions_by_the_right_departments() {
    let cluster = Cluster::start(&JIANGSU[..2], "").await.unwrap();
    let province = cluster.node("320000");
    let (ecology, civil) = (province.tokens.staff.clone(), province.tokens.staff_civil_affairs.clone());
    // Only a lead department drafts.
    let denied = plans(province, &civil).draft_plan(draft_request()).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    // A broken draft names every broken field.
    let broken = pb::DraftPlanRequest {
        period_end: "2020-01-01".into(),
        lead_departments: vec![department(pb::Department::CivilAffairs)],
        metrics: vec![pb::MetricTarget { target_id: "x y".into(), metric: 0, per_region: vec![region("330100", 1)] }],
        ..draft_request()
    };
    let refused = plans(province, &ecology).draft_plan(broken).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields = ecovol_tests::violated_fields(&refused);
    for field in [
        "period_end",
        "lead_departments",
        "metrics[0].target_id",
        "metrics[0].metric",
        "metrics[0].per_region[0].region",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field} missing in {fields:?}");
    }
    let id = plans(province, &ecology).draft_plan(draft_request()).await.unwrap().into_inner().plan.unwrap().plan_id;
    let request = || pb::PlanRequest { plan_id: id.clone() };
    // Not in countersigning yet: nobody signs, nothing is issued.
    assert_eq!(plans(province, &civil).sign_plan(request()).await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(plans(province, &ecology).issue_plan(request()).await.unwrap_err().code(), Code::FailedPrecondition);
    plans(province, &ecology).submit_plan(request()).await.unwrap();
    // Editing is for drafts only; a return needs a comment; signing twice is refused.
    let mut edit = draft_request();
    edit.plan_id = id.clone();
    assert_eq!(plans(province, &ecology).draft_plan(edit).await.unwrap_err().code(), Code::FailedPrecondition);
    let empty = pb::ReturnPlanRequest { plan_id: id.clone(), comment: " ".into() };
    assert_eq!(plans(province, &civil).return_plan(empty).await.unwrap_err().code(), Code::FailedPrecondition);
    plans(province, &civil).sign_plan(request()).await.unwrap();
    assert_eq!(plans(province, &civil).sign_plan(request()).await.unwrap_err().code(), Code::FailedPrecondition);
    plans(province, &ecology).sign_plan(request()).await.unwrap();
    // Issuing and closing are the lead department's.
    assert_eq!(plans(province, &civil).issue_plan(request()).await.unwrap_err().code(), Code::PermissionDenied);
    plans(province, &ecology).issue_plan(request()).await.unwrap();
    // The issuer does not adopt its own plan; a task is reported by its owner department only.
    let adopt = pb::AdoptPlanRequest { plan_id: id.clone(), ..Default::default() };
    assert_eq!(plans(province, &ecology).adopt_plan(adopt).await.unwrap_err().code(), Code::FailedPrecondition);
    let report = |percent| pb::ReportTaskRequest {
        plan_id: id.clone(),
        task_id: "platform".into(),
        percent,
        note: String::new(),
    };
    assert_eq!(plans(province, &ecology).report_task(report(30)).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(plans(province, &civil).report_task(report(130)).await.unwrap_err().code(), Code::InvalidArgument);
    plans(province, &civil).report_task(report(30)).await.unwrap();
    // The city cannot close the province's plan; once closed, nothing more happens to it.
    let city = cluster.node("320100");
    eventually_state(city, &id, pb::PlanState::Received).await;
    let close = || pb::ClosePlanRequest { plan_id: id.clone(), evaluation: "完成".into() };
    assert_eq!(plans(city, &city.tokens.staff).close_plan(close()).await.unwrap_err().code(), Code::FailedPrecondition);
    plans(province, &ecology).close_plan(close()).await.unwrap();
    assert_eq!(plans(province, &ecology).close_plan(close()).await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(plans(province, &civil).report_task(report(40)).await.unwrap_err().code(), Code::FailedPrecondition);
    // Every transition is in the audit trail with its account.
    let trail =
        ecovol_proto::v1::audit_service_client::AuditServiceClient::new(province.authed(&province.tokens.auditor))
            .list_audit_entries(pb::ListAuditEntriesRequest { page_size: 200, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
    let operations: Vec<&str> = trail.entries.iter().filter(|e| e.target == id).map(|e| e.operation.as_str()).collect();
    for operation in [
        "PlanService/DraftPlan",
        "PlanService/SubmitPlan",
        "PlanService/SignPlan",
        "PlanService/IssuePlan",
        "PlanService/ClosePlan",
    ] {
        assert!(operations.contains(&operation), "{operation} not audited: {operations:?}");
    }
    cluster.shutdown().await.unwrap();
}
