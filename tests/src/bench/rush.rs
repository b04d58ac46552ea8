//! The sign-up rush (CAP-1): every registered volunteer signs up at once for a project with few seats, over 64
//! mutual-TLS connections. Exactly the seats are accepted, every other sign-up is waitlisted, every call answered.

use chrono::Utc;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::sign_up_service_client::SignUpServiceClient;
use tonic::service::interceptor::InterceptedService;

use super::baseline::{self, CLIENTS, rush_at_once};
use super::ingest::{authed, register};
use super::tls::BenchTls;
use super::{Figure, Report, Size};
use crate::Bearer;

pub async fn run(report: &mut Report, tls: &BenchTls, size: Size) -> anyhow::Result<()> {
    let volunteers = size.pick(300, 10_000);
    let seats = size.pick(20u32, 200);
    let node = super::ingest::start_node(tls, "").await?;
    let staff = node.tokens.staff.clone();
    let numbers = register(&node, volunteers).await?;
    let start = Utc::now() + chrono::Duration::days(7);
    let project = pb::CreateProjectRequest {
        title: "西湖净滩行动".into(),
        activity_kind: pb::ActivityKind::GreenLowCarbon as i32,
        start_at: Some(ecovol_node::wire::timestamp(start)),
        end_at: Some(ecovol_node::wire::timestamp(start + chrono::Duration::hours(4))),
        capacity: seats,
        ..Default::default()
    };
    let project_id = super::published_project(authed(&node, &staff), "西湖环保志愿队", project).await?;
    let channels = tls.channels(node.address, CLIENTS).await?;

    let clients: Vec<_> = channels
        .into_iter()
        .map(|channel| SignUpServiceClient::new(InterceptedService::new(channel, Bearer::new(&staff))))
        .collect();
    let mut index = 0usize;
    let rush = rush_at_once(&clients, volunteers, |mut client| {
        let request = pb::SignUpRequest {
            project_id: project_id.clone(),
            volunteer_number: numbers[index].clone(),
            idempotency_key: format!("rush-{index}"),
        };
        index += 1;
        async move { client.sign_up(request).await.map(tonic::Response::into_inner) }
    })
    .await;
    let (mut accepted, mut waitlisted, mut failed) = (0u64, 0u64, Vec::new());
    for answer in rush.answers {
        match answer {
            Ok(answer) => match answer.sign_up.map(|sign_up| sign_up.status) {
                Some(status) if status == pb::SignUpStatus::Accepted as i32 => accepted += 1,
                Some(status) if status == pb::SignUpStatus::Waitlisted as i32 => waitlisted += 1,
                other => failed.push(format!("unexpected status {other:?}")),
            },
            Err(status) => failed.push(status.to_string()),
        }
    }
    let (elapsed, latencies) = (rush.elapsed, rush.latencies);
    let echo_rush = report.value("baseline", baseline::ECHO_RUSH);
    report.push(
        Figure::new(
            "rush",
            format!("{volunteers} sign-ups at once, {seats} seats: p99"),
            latencies.quantile_ms(0.99),
            "ms",
        )
        .limit(baseline::ECHO_RUSH, echo_rush)
        .target("≤ 100 ms, exactly the seats accepted")
        .note(format!(
            "{accepted} accepted, {waitlisted} waitlisted, {} failed; p50 {:.0} ms; all answered in {:.2} s",
            failed.len(),
            latencies.quantile_ms(0.5),
            elapsed.as_secs_f64()
        )),
    );
    report.push(Figure::new(
        "rush",
        "sign-ups answered per second",
        volunteers as f64 / elapsed.as_secs_f64(),
        "sign-ups/s",
    ));
    if let Some(first) = failed.first() {
        println!("  first failed sign-up: {first}");
    }
    report.check("rush seats", u64::from(seats));
    report.check("rush accepted", accepted);
    report.check("rush waitlisted", waitlisted);
    report.check("rush answered", accepted + waitlisted);
    report.check("rush sent", volunteers as u64);
    Ok(())
}
