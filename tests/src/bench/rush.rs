//! The sign-up rush (CAP-1): every registered volunteer signs up at once for a project with few seats, over 64
//! mutual-TLS connections. Exactly the seats are accepted, every other sign-up is waitlisted, every call answered.

use std::time::Instant;

use chrono::Utc;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::sign_up_service_client::SignUpServiceClient;
use tonic::service::interceptor::InterceptedService;

use super::baseline::CLIENTS;
use super::ingest::{authed, register};
use super::tls::BenchTls;
use super::{Figure, Latencies, Report, Size};
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

    let started = Instant::now();
    let tasks: Vec<_> = numbers
        .iter()
        .enumerate()
        .map(|(index, number)| {
            let channel = channels[index % channels.len()].clone();
            let mut client = SignUpServiceClient::new(InterceptedService::new(channel, Bearer::new(&staff)));
            let request = pb::SignUpRequest {
                project_id: project_id.clone(),
                volunteer_number: number.clone(),
                idempotency_key: format!("rush-{index}"),
            };
            tokio::spawn(async move {
                let begun = Instant::now();
                let answer = client.sign_up(request).await.map(tonic::Response::into_inner);
                (begun.elapsed(), answer)
            })
        })
        .collect();
    let (mut samples, mut accepted, mut waitlisted, mut failed) = (Vec::new(), 0u64, 0u64, Vec::new());
    for task in tasks {
        let (took, answer) = task.await?;
        samples.push(took);
        match answer {
            Ok(answer) => match answer.sign_up.map(|sign_up| sign_up.status) {
                Some(status) if status == pb::SignUpStatus::Accepted as i32 => accepted += 1,
                Some(status) if status == pb::SignUpStatus::Waitlisted as i32 => waitlisted += 1,
                other => failed.push(format!("unexpected status {other:?}")),
            },
            Err(status) => failed.push(status.to_string()),
        }
    }
    let elapsed = started.elapsed();
    let latencies = Latencies::new(samples);
    report.push(
        Figure::new(
            "rush",
            format!("{volunteers} sign-ups at once, {seats} seats: p99"),
            latencies.quantile_ms(0.99),
            "ms",
        )
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
