//! The rush (CAP-1): 2,000 volunteers sign up at once for a 50-seat project from 32 clients over real gRPC.
//! Exactly 50 are accepted, the other 1,950 are waitlisted with positions 1..=1950 in order of arrival; retries
//! with the same idempotency keys get the first answers; cancelling accepted seats promotes exactly the first
//! waitlisted volunteers, in order.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use ecovol_proto::v1 as pb;
use ecovol_tests::fixtures::adult;
use ecovol_tests::{Authed, Bearer, NodeSpec, TestNode};
use pb::project_service_client::ProjectServiceClient;
use pb::sign_up_service_client::SignUpServiceClient;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

const VOLUNTEERS: usize = 2_000;
const SEATS: u32 = 50;
const CLIENTS: usize = 32;
const REGISTERING_TASKS: usize = 16;

fn sign_ups(channel: &Channel, token: &str) -> SignUpServiceClient<Authed> {
    SignUpServiceClient::new(InterceptedService::new(channel.clone(), Bearer::new(token)))
}

fn projects(channel: &Channel, token: &str) -> ProjectServiceClient<Authed> {
    ProjectServiceClient::new(InterceptedService::new(channel.clone(), Bearer::new(token)))
}

/// Registers `VOLUNTEERS` synthetic adults with `REGISTERING_TASKS` concurrent tasks; numbers in index order.
async fn register_volunteers(node: &TestNode) -> anyhow::Result<Vec<String>> {
    let mut tasks = Vec::new();
    for task in 0..REGISTERING_TASKS {
        let mut client = node.volunteers(&node.tokens.staff);
        tasks.push(tokio::spawn(async move {
            let mut numbers = Vec::new();
            for index in (task..VOLUNTEERS).step_by(REGISTERING_TASKS) {
                let registered = client.register_volunteer(adult(index as u32)).await?.into_inner();
                let number = registered.volunteer.map(|volunteer| volunteer.volunteer_number).unwrap_or_default();
                numbers.push((index, number));
            }
            anyhow::Ok(numbers)
        }));
    }
    let mut numbers = vec![String::new(); VOLUNTEERS];
    for task in tasks {
        for (index, number) in task.await?? {
            numbers[index] = number;
        }
    }
    anyhow::ensure!(numbers.iter().all(|number| !number.is_empty()), "every volunteer has a number");
    Ok(numbers)
}

async fn published_project(node: &TestNode, team_id: &str) -> anyhow::Result<String> {
    let mut client = projects(&node.channel, &node.tokens.staff);
    let start = Utc::now() + chrono::Duration::days(7);
    let created = client
        .create_project(pb::CreateProjectRequest {
            title: "西湖净滩行动".into(),
            description: "清理西湖沿岸垃圾".into(),
            activity_kind: pb::ActivityKind::GreenLowCarbon as i32,
            organising_team_id: team_id.into(),
            start_at: Some(ecovol_node::wire::timestamp(start)),
            end_at: Some(ecovol_node::wire::timestamp(start + chrono::Duration::hours(4))),
            capacity: SEATS,
            ..Default::default()
        })
        .await?
        .into_inner()
        .project
        .ok_or_else(|| anyhow::anyhow!("no project"))?;
    client.publish_project(pb::PublishProjectRequest { project_id: created.project_id.clone() }).await?;
    Ok(created.project_id)
}

/// Every waitlisted sign-up of the project, in waitlist order, page after page.
async fn waitlist(client: &mut SignUpServiceClient<Authed>, project_id: &str) -> anyhow::Result<Vec<pb::SignUp>> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_sign_ups(pb::ListSignUpsRequest {
                project_id: project_id.into(),
                status: pb::SignUpStatus::Waitlisted as i32,
                page_size: 300,
                page_token: token,
                ..Default::default()
            })
            .await?
            .into_inner();
        all.extend(page.sign_ups);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        token = page.next_page_token;
    }
}

/// Sends one sign-up per volunteer at once, spread over the clients; the answers by volunteer index.
async fn rush(
    channels: &[Channel],
    token: &str,
    project_id: &str,
    numbers: &[String],
) -> anyhow::Result<Vec<pb::SignUpResponse>> {
    let mut tasks = Vec::new();
    for (index, number) in numbers.iter().enumerate() {
        let mut client = sign_ups(&channels[index % channels.len()], token);
        let request = pb::SignUpRequest {
            project_id: project_id.into(),
            volunteer_number: number.clone(),
            idempotency_key: format!("rush-{index}"),
        };
        tasks.push(tokio::spawn(async move { client.sign_up(request).await.map(tonic::Response::into_inner) }));
    }
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await??);
    }
    Ok(answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_thousand_concurrent_sign_ups_fill_fifty_seats_and_waitlist_the_rest_in_arrival_order() -> anyhow::Result<()>
{
    let node = TestNode::start(NodeSpec::county("330106")).await?;
    let staff = node.tokens.staff.clone();
    let team = node
        .teams(&staff)
        .create_team(pb::CreateTeamRequest {
            name: "西湖环保志愿队".into(),
            kind: pb::TeamKind::SocialOrganisation as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .team
        .ok_or_else(|| anyhow::anyhow!("no team"))?;
    let numbers = register_volunteers(&node).await?;
    let project_id = published_project(&node, &team.team_id).await?;
    let mut channels = Vec::new();
    for _ in 0..CLIENTS {
        channels.push(Endpoint::from_shared(format!("http://{}", node.address))?.connect().await?);
    }

    let rush_started = Instant::now();
    let answers = rush(&channels, &staff, &project_id, &numbers).await?;
    let rush_took = rush_started.elapsed();

    let signed: Vec<pb::SignUp> = answers.iter().map(|answer| answer.sign_up.clone().unwrap_or_default()).collect();
    assert!(answers.iter().all(|answer| !answer.already), "no first answer is a replay");
    let accepted: Vec<&pb::SignUp> = signed.iter().filter(|s| s.status == pb::SignUpStatus::Accepted as i32).collect();
    let mut waitlisted: Vec<&pb::SignUp> =
        signed.iter().filter(|s| s.status == pb::SignUpStatus::Waitlisted as i32).collect();
    assert_eq!(accepted.len(), SEATS as usize, "exactly the seats are accepted (CAP-1)");
    assert_eq!(waitlisted.len(), VOLUNTEERS - SEATS as usize);
    // Arrival order: every accepted sign-up arrived before every waitlisted one, and the waitlist positions are
    // 1..=1950, each once, in order of arrival.
    let last_accepted = accepted.iter().map(|s| s.arrival_sequence).max().unwrap_or_default();
    waitlisted.sort_by_key(|s| s.arrival_sequence);
    assert!(waitlisted[0].arrival_sequence > last_accepted);
    let positions: Vec<u32> = waitlisted.iter().map(|s| s.waitlist_position).collect();
    assert_eq!(positions, (1..=(VOLUNTEERS as u32 - SEATS)).collect::<Vec<_>>());

    // The node agrees: the counters and the listed waitlist say the same.
    let mut client = sign_ups(&node.channel, &staff);
    let listed = waitlist(&mut client, &project_id).await?;
    let listed_order: Vec<(&str, u32)> =
        listed.iter().map(|s| (s.volunteer_number.as_str(), s.waitlist_position)).collect();
    let answered_order: Vec<(&str, u32)> =
        waitlisted.iter().map(|s| (s.volunteer_number.as_str(), s.waitlist_position)).collect();
    assert_eq!(listed_order, answered_order);
    let project = projects(&node.channel, &staff)
        .get_project(pb::GetProjectRequest { project_id: project_id.clone() })
        .await?
        .into_inner()
        .project
        .unwrap_or_default();
    assert_eq!((project.accepted_count, project.waitlisted_count), (SEATS, VOLUNTEERS as u32 - SEATS));

    // Retries with the same keys, all at once again: the first answers, marked as replays.
    let retried = rush(&channels, &staff, &project_id, &numbers).await?;
    for (first, again) in answers.iter().zip(&retried) {
        assert!(again.already);
        assert_eq!(again.sign_up, first.sign_up);
    }
    // The same key for another volunteer is a client bug, named as such.
    let reused = client
        .sign_up(pb::SignUpRequest {
            project_id: project_id.clone(),
            volunteer_number: numbers[1].clone(),
            idempotency_key: "rush-0".into(),
        })
        .await
        .expect_err("a key names one request");
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(ecovol_tests::violated_fields(&reused), ["idempotency_key"]);
    // Without a key, a second sign-up is refused: one seat or place per volunteer.
    let twice = client
        .sign_up(pb::SignUpRequest {
            project_id: project_id.clone(),
            volunteer_number: numbers[0].clone(),
            idempotency_key: String::new(),
        })
        .await
        .expect_err("one sign-up per volunteer");
    assert_eq!(twice.code(), Code::AlreadyExists);

    // Ten accepted seats are given up: the first ten waitlisted move up, in order, one per cancellation.
    let by_number: HashMap<&str, usize> =
        numbers.iter().enumerate().map(|(index, number)| (number.as_str(), index)).collect();
    let mut promoted = Vec::new();
    for seat in accepted.iter().take(10) {
        let answer = client
            .cancel_sign_up(pb::CancelSignUpRequest {
                project_id: project_id.clone(),
                volunteer_number: seat.volunteer_number.clone(),
            })
            .await?
            .into_inner();
        assert_eq!(answer.sign_up.map(|s| s.status), Some(pb::SignUpStatus::Cancelled as i32));
        promoted.push(answer.promoted_volunteer_number);
    }
    let first_ten: Vec<String> = waitlisted.iter().take(10).map(|s| s.volunteer_number.clone()).collect();
    assert_eq!(promoted, first_ten);
    assert!(promoted.iter().all(|number| by_number.contains_key(number.as_str())));
    let listed = waitlist(&mut client, &project_id).await?;
    assert_eq!(listed.len(), VOLUNTEERS - SEATS as usize - 10);
    assert_eq!(listed[0].volunteer_number, waitlisted[10].volunteer_number);
    assert!(listed.iter().enumerate().all(|(index, s)| s.waitlist_position == index as u32 + 1));
    let project = projects(&node.channel, &staff)
        .get_project(pb::GetProjectRequest { project_id: project_id.clone() })
        .await?
        .into_inner()
        .project
        .unwrap_or_default();
    assert_eq!((project.accepted_count, project.waitlisted_count), (SEATS, VOLUNTEERS as u32 - SEATS - 10));

    println!("rush: {VOLUNTEERS} sign-ups from {CLIENTS} clients on {SEATS} seats in {} ms", rush_took.as_millis());
    assert!(rush_took < Duration::from_secs(60), "the rush took {rush_took:?}");
    Ok(())
}
