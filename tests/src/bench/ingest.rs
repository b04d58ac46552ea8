//! Durable ingest at a county node: unary `RecordService` from 64 concurrent clients over mutual TLS, and the
//! bulk `RecordServiceBulk`; every call is answered only once its records are durable (group commit). After the
//! load the records are counted back through `ListServiceRecords`: a benchmark that lost records measured
//! nothing.

use chrono::{DateTime, Duration, Utc};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::service_record_service_client::ServiceRecordServiceClient;
use tonic::service::interceptor::InterceptedService;

use super::baseline::{self, CLIENTS};
use super::tls::BenchTls;
use super::{CommitterProbe, Figure, Report, Size, drive};
use crate::fixtures::adult;
use crate::{Authed, Bearer, NodeSpec, TestNode, bootstrap_accounts, write_node_files};
use ecovol_node::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A county node serving mutual TLS, with a team, a published project covering the last 260 days, and
/// registered volunteers.
pub struct County {
    pub node: TestNode,
    pub project_id: String,
    pub volunteers: Vec<String>,
    /// Start of the project: service intervals are laid out from here.
    pub base: DateTime<Utc>,
    /// The node's metrics port (`CommitterProbe`).
    pub metrics_port: u16,
}

impl County {
    pub async fn start(tls: &BenchTls, volunteers: usize, extra_toml: &str) -> anyhow::Result<County> {
        let metrics_port = crate::free_port();
        let node = start_node(tls, &format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n{extra_toml}")).await?;
        let staff = node.tokens.staff.clone();
        let base = Utc::now() - Duration::days(260);
        let project = pb::CreateProjectRequest {
            title: "钱塘江护水行动".into(),
            activity_kind: pb::ActivityKind::SocialSupervision as i32,
            start_at: Some(ecovol_node::wire::timestamp(base)),
            end_at: Some(ecovol_node::wire::timestamp(Utc::now() - Duration::hours(1))),
            capacity: 50,
            ..Default::default()
        };
        let project_id = super::published_project(authed(&node, &staff), "西湖护水队", project).await?;
        let volunteers = register(&node, volunteers).await?;
        Ok(County { node, project_id, volunteers, base, metrics_port })
    }

    /// The `index`-th row of the load: volunteer `index % n`, in its own one-hour slot (twelve a day, two hours
    /// apart, so no interval overlaps another and no day passes 12 hours).
    pub fn row(&self, index: usize, key_prefix: &str) -> pb::ServiceRow {
        service_row(&self.volunteers, self.base, index, key_prefix)
    }

    /// Records of the project, counted page by page.
    pub async fn count_records(&self) -> anyhow::Result<u64> {
        let mut client = ServiceRecordServiceClient::new(authed(&self.node, &self.node.tokens.staff));
        let (mut count, mut token) = (0u64, String::new());
        loop {
            let page = client
                .list_service_records(pb::ListServiceRecordsRequest {
                    project_id: self.project_id.clone(),
                    page_size: 500,
                    page_token: token,
                    ..Default::default()
                })
                .await?
                .into_inner();
            count += page.records.len() as u64;
            if page.next_page_token.is_empty() {
                return Ok(count);
            }
            token = page.next_page_token;
        }
    }

    /// `count` load clients, each on its own mutual-TLS connection, as staff.
    pub async fn hours_clients(
        &self,
        tls: &BenchTls,
        count: usize,
    ) -> anyhow::Result<Vec<ServiceRecordServiceClient<Authed>>> {
        let channels = tls.channels(self.node.address, count).await?;
        Ok(channels
            .into_iter()
            .map(|channel| {
                ServiceRecordServiceClient::new(InterceptedService::new(channel, Bearer::new(&self.node.tokens.staff)))
            })
            .collect())
    }
}

/// The `index`-th row of a load: volunteer `index % n`, in its own one-hour slot after `base` (twelve a day, two
/// hours apart, so no interval overlaps another and no day passes 12 hours).
pub fn service_row(volunteers: &[String], base: DateTime<Utc>, index: usize, key_prefix: &str) -> pb::ServiceRow {
    let volunteer = index % volunteers.len();
    let slot = (index / volunteers.len()) as i64;
    let start = base + Duration::hours(1) + Duration::days(slot / 12) + Duration::hours(2 * (slot % 12));
    pb::ServiceRow {
        volunteer_number: volunteers[volunteer].clone(),
        method: pb::RecordingMethod::CheckInOut as i32,
        start_time: Some(ecovol_node::wire::timestamp(start)),
        end_time: Some(ecovol_node::wire::timestamp(start + Duration::hours(1))),
        content: "河道巡查与垃圾清理".into(),
        walk_in: true,
        idempotency_key: format!("{key_prefix}-{index}"),
    }
}

/// A county node serving the bench's mutual TLS on `127.0.0.1:0`, configured as the harness does except for the
/// sled cache, which keeps the node's default (`[store] cache_capacity_mb = 64`, not the harness's 16).
pub async fn start_node(tls: &BenchTls, extra_toml: &str) -> anyhow::Result<TestNode> {
    let (files, office_toml) = tls.office_files();
    let dir = tempfile::tempdir()?;
    for (name, contents) in &files {
        std::fs::write(dir.path().join(name), contents)?;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let spec = NodeSpec { extra_toml: format!("{office_toml}\n{extra_toml}"), ..NodeSpec::county("330106") };
    let config_path = write_node_files(dir.path(), &spec, &address.to_string())?;
    let text = std::fs::read_to_string(&config_path)?.replace("cache_capacity_mb = 16", "cache_capacity_mb = 64");
    std::fs::write(&config_path, text)?;
    let config = Config::load_with_env(Some(&config_path), std::iter::empty())?;
    let tokens = bootstrap_accounts(&config).await?;
    let (shutdown, stop) = oneshot::channel::<()>();
    let task = tokio::spawn(ecovol_node::server::run(config, listener, async move {
        let _ = stop.await;
    }));
    let channel = crate::tls_channel(address, tls.ca_pem.as_bytes(), None).await?;
    Ok(TestNode { address, dir, config_path, tokens, channel, shutdown: Some(shutdown), task: Some(task) })
}

pub fn authed(node: &TestNode, token: &str) -> Authed {
    InterceptedService::new(node.channel.clone(), Bearer::new(token))
}

/// Registers `count` synthetic volunteers from 16 concurrent callers; their numbers in index order.
pub async fn register(node: &TestNode, count: usize) -> anyhow::Result<Vec<String>> {
    const TASKS: usize = 16;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let mut client = node.volunteers(&node.tokens.staff);
        tasks.push(tokio::spawn(async move {
            let mut numbers = Vec::new();
            for index in (task..count).step_by(TASKS) {
                let answer = client.register_volunteer(adult(index as u32)).await?.into_inner();
                numbers.push((index, answer.volunteer.unwrap_or_default().volunteer_number));
            }
            anyhow::Ok(numbers)
        }));
    }
    let mut numbers = vec![String::new(); count];
    for task in tasks {
        for (index, number) in task.await?? {
            numbers[index] = number;
        }
    }
    anyhow::ensure!(numbers.iter().all(|number| !number.is_empty()), "every volunteer has a number");
    Ok(numbers)
}

/// Unary `RecordService` from `CLIENTS` clients, each call acknowledged once durable.
pub async fn durable(report: &mut Report, tls: &BenchTls, size: Size) -> anyhow::Result<()> {
    let county = std::sync::Arc::new(County::start(tls, size.pick(40, 2_000), "").await?);
    let metrics = county.metrics_port;
    let clients = county.hours_clients(tls, CLIENTS).await?;
    let total = size.pick(300, 60_000);
    let warm_up = size.pick(64, 4_000);
    let call = {
        let county = county.clone();
        move |mut client: ServiceRecordServiceClient<Authed>, index: usize| {
            let row = county.row(index, "unary");
            let project_id = county.project_id.clone();
            async move {
                client
                    .record_service(pb::RecordServiceRequest {
                        project_id,
                        volunteer_number: row.volunteer_number,
                        method: row.method,
                        start_time: row.start_time,
                        end_time: row.end_time,
                        content: row.content,
                        walk_in: row.walk_in,
                        idempotency_key: row.idempotency_key,
                    })
                    .await?;
                anyhow::Ok(())
            }
        }
    };
    // The warm-up records are the first `warm_up` rows; the measured load continues after them.
    let warm = drive(clients.clone(), warm_up, call.clone()).await;
    anyhow::ensure!(warm.failures == 0, "warm-up failed: {:?}", warm.first_failure);
    let measured = {
        let call = call.clone();
        move |client, index: usize| call(client, index + warm_up)
    };
    let before = CommitterProbe::read(metrics).await?;
    let load = drive(clients, total, measured).await;
    let committer = CommitterProbe::read(metrics).await?.since(&before);
    anyhow::ensure!(load.failures == 0, "{} of {} calls failed: {:?}", load.failures, load.calls, load.first_failure);
    let echo = report.value("baseline", baseline::ECHO);
    let postgres = report.value("baseline", baseline::POSTGRES_MANY);
    report.push(
        Figure::new("ingest", "durable RecordService, 64 clients", load.rate(), "records/s")
            .limit(baseline::ECHO, echo)
            .target("≥ 0.50 of echo, > PostgreSQL"),
    );
    if let Some(postgres) = postgres {
        report.push(
            Figure::new("ingest", "durable RecordService vs PostgreSQL", load.rate(), "records/s")
                .limit(baseline::POSTGRES_MANY, Some(postgres))
                .target("> 1.00"),
        );
    }
    report.push(Figure::new("ingest", "RecordService p50", load.latencies.quantile_ms(0.5), "ms").note(committer));
    report.push(Figure::new("ingest", "RecordService p99", load.latencies.quantile_ms(0.99), "ms").target("≤ 20 ms"));
    let present = county.count_records().await?;
    report.check("ingest records sent", (warm_up + total) as u64);
    report.check("ingest records present", present);
    Ok(())
}

/// `RecordServiceBulk` with rosters of 1,000 rows (the default `bulk_rows_max`) from 4 clients.
pub async fn bulk(report: &mut Report, tls: &BenchTls, size: Size) -> anyhow::Result<()> {
    let county = std::sync::Arc::new(County::start(tls, size.pick(40, 2_000), "").await?);
    let metrics = county.metrics_port;
    let clients = county.hours_clients(tls, 4).await?;
    let rows = size.pick(100, 1_000);
    let requests = size.pick(2, 240);
    let call = {
        let county = county.clone();
        move |mut client: ServiceRecordServiceClient<Authed>, request: usize| {
            let rows: Vec<pb::ServiceRow> =
                (request * rows..(request + 1) * rows).map(|i| county.row(i, "bulk")).collect();
            let project_id = county.project_id.clone();
            async move {
                let answer = client.record_service_bulk(pb::RecordServiceBulkRequest { project_id, rows }).await?;
                anyhow::ensure!(answer.into_inner().replayed_count == 0, "no row is a replay");
                anyhow::Ok(())
            }
        }
    };
    let before = CommitterProbe::read(metrics).await?;
    let load = drive(clients, requests, call).await;
    let committer = CommitterProbe::read(metrics).await?.since(&before);
    anyhow::ensure!(load.failures == 0, "{} of {} calls failed: {:?}", load.failures, load.calls, load.first_failure);
    let rate = load.rate() * rows as f64;
    let sled_batch = report.value("baseline", baseline::SLED_BATCH);
    report.push(
        Figure::new("bulk", format!("durable RecordServiceBulk, {rows} rows × 4 clients"), rate, "records/s")
            .limit(baseline::SLED_BATCH, sled_batch)
            .target("≥ 50,000/s")
            .note(format!("p99 per roster {:.0} ms; {committer}", load.latencies.quantile_ms(0.99))),
    );
    let present = county.count_records().await?;
    report.check("bulk records sent", (rows * requests) as u64);
    report.check("bulk records present", present);
    Ok(())
}
