//! Scenarios that several test files share: a node with a project, accepted volunteers and confirmed service.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::{
    project_service_client::ProjectServiceClient, service_record_service_client::ServiceRecordServiceClient,
    sign_up_service_client::SignUpServiceClient,
};
use tonic::service::interceptor::InterceptedService;

use crate::fixtures::adult;
use crate::{Authed, Bearer, NodeSpec, TestNode};

/// A county node with one team, one published project that started a moment ago, two volunteers accepted on
/// it, and their service two days ago: one confirmed record of 3.25 h, one recorded but unconfirmed.
pub struct Cast {
    pub node: TestNode,
    /// Volunteer with one confirmed record (09:00–12:15 two days ago: 3.25 h) and their account.
    pub served: String,
    pub served_token: String,
    /// Volunteer with a recorded, unconfirmed record only.
    pub unconfirmed: String,
    /// 00:00 China time two days ago.
    pub day: DateTime<Utc>,
}

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.timestamp(), nanos: 0 }
}

pub fn authed(node: &TestNode, token: &str) -> Authed {
    InterceptedService::new(node.channel.clone(), Bearer::new(token))
}

/// Builds the cast on a node configured with `extra_toml` (it must allow records of two days ago, e.g.
/// `[hours] window_tolerance_minutes = 10080`).
pub async fn served_cast(extra_toml: &str) -> Cast {
    let node = TestNode::start(NodeSpec { extra_toml: extra_toml.into(), ..NodeSpec::county("330106") })
        .await
        .expect("node starts");
    let staff = &node.tokens.staff;
    let mut volunteers = node.volunteers(staff);
    let served =
        volunteers.register_volunteer(adult(1)).await.unwrap().into_inner().volunteer.unwrap().volunteer_number;
    let unconfirmed =
        volunteers.register_volunteer(adult(2)).await.unwrap().into_inner().volunteer.unwrap().volunteer_number;
    let team_request = pb::CreateTeamRequest {
        name: "西湖护水队".into(),
        kind: pb::TeamKind::SocialOrganisation as i32,
        ..Default::default()
    };
    let team_id = node.teams(staff).create_team(team_request).await.unwrap().into_inner().team.unwrap().team_id;
    let account_request = pb::CreateAccountRequest {
        name: "志愿者账号".into(),
        department: pb::Department::YouthLeague as i32,
        roles: vec![pb::Role::Volunteer as i32],
        volunteer_number: served.clone(),
        ..Default::default()
    };
    let served_token =
        node.accounts(&node.tokens.operator).create_account(account_request).await.unwrap().into_inner().token;

    let mut projects = ProjectServiceClient::new(authed(&node, staff));
    let start = Utc::now() + Duration::seconds(2);
    let project_request = pb::CreateProjectRequest {
        title: "西溪湿地清洁".into(),
        activity_kind: pb::ActivityKind::GreenLowCarbon as i32,
        organising_team_id: team_id,
        start_at: Some(timestamp(start)),
        end_at: Some(timestamp(start + Duration::days(1))),
        capacity: 10,
        ..Default::default()
    };
    let project_id = projects.create_project(project_request).await.unwrap().into_inner().project.unwrap().project_id;
    projects.publish_project(pb::PublishProjectRequest { project_id: project_id.clone() }).await.unwrap();
    for (index, number) in [&served, &unconfirmed].into_iter().enumerate() {
        let request = pb::SignUpRequest {
            project_id: project_id.clone(),
            volunteer_number: number.clone(),
            idempotency_key: format!("signup-{index}"),
        };
        SignUpServiceClient::new(authed(&node, staff)).sign_up(request).await.unwrap();
    }
    let wait = (start - Utc::now()).num_milliseconds().max(0) as u64 + 200;
    tokio::time::sleep(StdDuration::from_millis(wait)).await;

    let china = ecovol_node::wire::china();
    let two_days_ago = (Utc::now() - Duration::days(2)).with_timezone(&china).date_naive();
    let day = china.from_local_datetime(&two_days_ago.and_time(NaiveTime::MIN)).unwrap().with_timezone(&Utc);
    let mut hours = ServiceRecordServiceClient::new(authed(&node, staff));
    for (number, minutes, key) in [(&served, 195, "served"), (&unconfirmed, 60, "unconfirmed")] {
        let request = pb::RecordServiceRequest {
            project_id: project_id.clone(),
            volunteer_number: number.clone(),
            method: pb::RecordingMethod::CheckInOut as i32,
            start_time: Some(timestamp(day + Duration::hours(9))),
            end_time: Some(timestamp(day + Duration::hours(9) + Duration::minutes(minutes))),
            content: "湿地垃圾清理 <b>".into(),
            walk_in: false,
            idempotency_key: key.into(),
        };
        let record = hours.record_service(request).await.unwrap().into_inner().record.unwrap();
        if number == &served {
            hours
                .confirm_service_record(pb::ConfirmServiceRecordRequest { record_id: record.record_id })
                .await
                .unwrap();
        }
    }
    Cast { node, served, served_token, unconfirmed, day }
}

pub fn china_date(time: DateTime<Utc>) -> String {
    time.with_timezone(&ecovol_node::wire::china()).date_naive().to_string()
}

/// Creates a social-organisation team named `name` as staff; returns its id.
pub async fn team(node: &TestNode, name: &str) -> String {
    let request = pb::CreateTeamRequest {
        name: name.into(),
        kind: pb::TeamKind::SocialOrganisation as i32,
        ..Default::default()
    };
    node.teams(&node.tokens.staff).create_team(request).await.unwrap().into_inner().team.unwrap().team_id
}

/// Creates an account with one role (and its team or volunteer, as the role needs) as the operator; returns
/// its token.
pub async fn account(node: &TestNode, role: pb::Role, team_id: &str, volunteer_number: &str) -> String {
    let request = pb::CreateAccountRequest {
        name: format!("账号 {team_id}{volunteer_number}"),
        department: pb::Department::YouthLeague as i32,
        roles: vec![role as i32],
        team_id: team_id.into(),
        volunteer_number: volunteer_number.into(),
        ..Default::default()
    };
    node.accounts(&node.tokens.operator).create_account(request).await.unwrap().into_inner().token
}
