//! Footprint: resident memory of a real `ecovol serve` process (this bench binary re-run as `serve`), idle and
//! after a load of volunteers and service records, with the sled cache size the node was given.

use std::time::Duration;

use chrono::Utc;
use ecovol_node::config::Config;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::service_record_service_client::ServiceRecordServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;

use super::{Figure, Report, Size};
use crate::process::{NodeProcess, free_address};
use crate::{Bearer, NodeSpec, bootstrap_accounts, write_node_files};

/// The sled page cache the footprint node runs with, MiB (`[store] cache_capacity_mb`).
const CACHE_MB: u64 = 64;

/// Resident set of process `pid`, MiB (`VmRSS` of `/proc/<pid>/status`).
pub fn resident_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub async fn run(report: &mut Report, size: Size) -> anyhow::Result<()> {
    let binary = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let address = free_address()?;
    let spec = NodeSpec::county("330106");
    let config_path = write_node_files(dir.path(), &spec, &address.to_string())?;
    // The harness writes cache_capacity_mb = 16; the footprint node runs with the default-sized cache.
    let text = std::fs::read_to_string(&config_path)?
        .replace("cache_capacity_mb = 16", &format!("cache_capacity_mb = {CACHE_MB}"));
    std::fs::write(&config_path, text)?;
    let config = Config::load_with_env(Some(&config_path), std::iter::empty())?;
    let tokens = bootstrap_accounts(&config).await?;
    let node = NodeProcess::start(&binary, &config_path, address).await?;
    tokio::time::sleep(Duration::from_millis(size.pick(200, 2_000))).await;
    let idle = resident_mib(node.child.id()).unwrap_or(0.0);
    report.push(
        Figure::new("footprint", "idle node process RSS", idle, "MiB")
            .target("≤ 100 MB")
            .note(format!("sled cache_capacity_mb = {CACHE_MB}")),
    );

    let channel = Endpoint::from_shared(format!("http://{address}"))?.connect().await?;
    let volunteers = size.pick(30, 20_000);
    let records_per_volunteer = size.pick(2, 10);
    let registry = pb::volunteer_service_client::VolunteerServiceClient::new(InterceptedService::new(
        channel.clone(),
        Bearer::new(&tokens.staff),
    ));
    let mut numbers = Vec::with_capacity(volunteers);
    let mut tasks = Vec::new();
    for task in 0..16usize {
        let mut registry = registry.clone();
        tasks.push(tokio::spawn(async move {
            let mut numbers = Vec::new();
            for index in (task..volunteers).step_by(16) {
                let answer = registry.register_volunteer(crate::fixtures::adult(index as u32)).await?.into_inner();
                numbers.push(answer.volunteer.unwrap_or_default().volunteer_number);
            }
            anyhow::Ok(numbers)
        }));
    }
    for task in tasks {
        numbers.extend(task.await??);
    }
    let staff = InterceptedService::new(channel.clone(), Bearer::new(&tokens.staff));
    let base = Utc::now() - chrono::Duration::days(60);
    let project = pb::CreateProjectRequest {
        title: "湿地巡护".into(),
        activity_kind: pb::ActivityKind::GreenLowCarbon as i32,
        start_at: Some(ecovol_node::wire::timestamp(base)),
        end_at: Some(ecovol_node::wire::timestamp(Utc::now() - chrono::Duration::hours(1))),
        capacity: 50,
        ..Default::default()
    };
    let project_id = super::published_project(staff.clone(), "测试队", project).await?;
    let mut hours = ServiceRecordServiceClient::new(staff);
    let total = numbers.len() * records_per_volunteer;
    for chunk in (0..total).collect::<Vec<_>>().chunks(1_000) {
        let rows = chunk
            .iter()
            .map(|&index| {
                let slot = (index / numbers.len()) as i64;
                let start = base + chrono::Duration::hours(1) + chrono::Duration::days(slot);
                pb::ServiceRow {
                    volunteer_number: numbers[index % numbers.len()].clone(),
                    method: pb::RecordingMethod::CheckInOut as i32,
                    start_time: Some(ecovol_node::wire::timestamp(start)),
                    end_time: Some(ecovol_node::wire::timestamp(start + chrono::Duration::hours(2))),
                    content: "湿地巡护".into(),
                    walk_in: true,
                    idempotency_key: format!("footprint-{index}"),
                }
            })
            .collect();
        hours.record_service_bulk(pb::RecordServiceBulkRequest { project_id: project_id.clone(), rows }).await?;
    }
    let loaded = resident_mib(node.child.id()).unwrap_or(0.0);
    report.push(
        Figure::new("footprint", format!("county RSS after {volunteers} volunteers, {total} records"), loaded, "MiB")
            .note(format!(
                "sled cache_capacity_mb = {CACHE_MB}; store {:.0} MiB on disk",
                dir_mib(&dir.path().join("data"))
            )),
    );
    report.check("footprint volunteers", numbers.len() as u64);
    report.check("footprint idle rss reported", u64::from(idle > 0.0));
    drop(node.terminate());
    Ok(())
}

fn dir_mib(dir: &std::path::Path) -> f64 {
    crate::files_under(dir).iter().filter_map(|path| path.metadata().ok()).map(|meta| meta.len() as f64).sum::<f64>()
        / (1024.0 * 1024.0)
}
