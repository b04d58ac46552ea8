//! Federation scenarios over the in-process cluster (`crate::cluster`: real nodes, real mutual TLS between
//! them, real sled): the province's `GetRegionStats` latency as records grow, roll-up freshness under a steady
//! load spread over many counties, catch-up of a county cut off from its city, and the bytes per record on the
//! county→city link (counted by a TCP relay the county dials instead of its city).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::service_record_service_client::ServiceRecordServiceClient;
use ecovol_proto::v1::stats_service_client::StatsServiceClient;
use ecovol_proto::v1::volunteer_service_client::VolunteerServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::ingest::service_row;
use super::{Figure, Latencies, Report, Size, drive};
use crate::cluster::{Cluster, ClusterNode};
use crate::federation_load::{volunteer, whole_months};

/// A province over `cities` cities of `counties` counties each (Zhejiang codes: 330000, 3301xx … 3310xx).
fn topology(cities: usize, counties: usize) -> Vec<(String, &'static str, Option<String>)> {
    let mut nodes = vec![("330000".to_string(), "province", None)];
    for city in 1..=cities {
        let city_code = format!("33{city:02}00");
        nodes.push((city_code.clone(), "city", Some("330000".to_string())));
        for county in 1..=counties {
            nodes.push((format!("33{city:02}{county:02}"), "county", Some(city_code.clone())));
        }
    }
    nodes
}

/// Threads of this process (`Threads` of `/proc/self/status`).
fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("Threads:"))?.to_string();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Bytes under `dir` (a node's sled folder).
fn size_on_disk(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => size_on_disk(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A positive number from the environment.
fn env_count(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|value| value.replace(['_', ','], "").parse().ok()).filter(|n| *n > 0)
}

async fn start(nodes: &[(String, &'static str, Option<String>)], extra_toml: &str) -> anyhow::Result<Cluster> {
    let refs: Vec<(&str, &'static str, Option<&str>)> =
        nodes.iter().map(|(code, level, parent)| (code.as_str(), *level, parent.as_deref())).collect();
    Cluster::start(&refs, extra_toml).await
}

/// The province's roll-up of its whole territory over `whole_months`.
async fn province_totals(node: &ClusterNode) -> anyhow::Result<pb::RegionTotals> {
    let (start_date, end_date) = whole_months();
    let request = pb::GetRegionStatsRequest { region: String::new(), start_date, end_date };
    Ok(StatsServiceClient::new(node.staff()).get_region_stats(request).await?.into_inner().totals.unwrap_or_default())
}

/// A county's own confirmed hours over `whole_months` (its own statistics, not a roll-up).
async fn own_confirmed_hours_x100(node: &ClusterNode) -> anyhow::Result<u64> {
    let (start_date, end_date) = whole_months();
    let stats = StatsServiceClient::new(node.staff())
        .get_stats(pb::GetStatsRequest { start_date, end_date })
        .await?
        .into_inner();
    Ok(stats.totals.unwrap_or_default().confirmed_hours_x100)
}

/// A project on a county with registered volunteers, ready to take confirmed service.
struct Workplace {
    project_id: String,
    volunteers: Vec<String>,
    base: chrono::DateTime<Utc>,
}

impl Workplace {
    async fn open(node: &ClusterNode, volunteers: usize, first_index: u32) -> anyhow::Result<Workplace> {
        let staff = node.staff();
        // Inside `whole_months` (about 100 days back), so the county's own statistics count every record.
        let base = Utc::now() - chrono::Duration::days(70);
        let project = pb::CreateProjectRequest {
            title: "河道巡护".into(),
            activity_kind: pb::ActivityKind::SocialSupervision as i32,
            start_at: Some(ecovol_node::wire::timestamp(base)),
            end_at: Some(ecovol_node::wire::timestamp(Utc::now() - chrono::Duration::hours(1))),
            capacity: 50,
            ..Default::default()
        };
        let project_id = super::published_project(staff.clone(), &format!("护水队{}", node.code), project).await?;
        let clients = vec![VolunteerServiceClient::new(staff); 16];
        let numbers = Arc::new(std::sync::Mutex::new(vec![String::new(); volunteers]));
        let code = node.code.clone();
        let load = {
            let numbers = numbers.clone();
            drive(clients, volunteers, move |mut client: VolunteerServiceClient<crate::Authed>, index| {
                let (numbers, request) = (numbers.clone(), volunteer(&code, first_index + index as u32));
                async move {
                    let answer = client.register_volunteer(request).await?.into_inner();
                    let number = answer.volunteer.unwrap_or_default().volunteer_number;
                    numbers.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[index] = number;
                    anyhow::Ok(())
                }
            })
            .await
        };
        anyhow::ensure!(load.failures == 0, "registering volunteers failed: {:?}", load.first_failure);
        let volunteers = numbers.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        Ok(Workplace { project_id, volunteers, base })
    }

    /// Records rows `from..to` in rosters of 1,000 and confirms each record (64 confirmers): confirmed hours are
    /// what the federation rolls up.
    async fn confirmed_service(&self, node: &ClusterNode, from: usize, to: usize) -> anyhow::Result<()> {
        let mut hours = ServiceRecordServiceClient::new(node.staff());
        let mut record_ids = Vec::with_capacity(to - from);
        for start in (from..to).step_by(1_000) {
            let rows =
                (start..(start + 1_000).min(to)).map(|i| service_row(&self.volunteers, self.base, i, "fed")).collect();
            let request = pb::RecordServiceBulkRequest { project_id: self.project_id.clone(), rows };
            let answer = hours.record_service_bulk(request).await?.into_inner();
            record_ids.extend(answer.records.into_iter().map(|record| record.record_id));
        }
        let record_ids = Arc::new(record_ids);
        let load = drive(
            vec![hours; 64],
            record_ids.len(),
            move |mut client: ServiceRecordServiceClient<crate::Authed>, index| {
                let record_id = record_ids[index].clone();
                async move {
                    client.confirm_service_record(pb::ConfirmServiceRecordRequest { record_id }).await?;
                    anyhow::Ok(())
                }
            },
        )
        .await;
        anyhow::ensure!(load.failures == 0, "confirming failed: {:?}", load.first_failure);
        Ok(())
    }
}

/// Province `GetRegionStats` for a year, by month, kind and child, at growing record counts.
pub async fn query(report: &mut Report, size: Size) -> anyhow::Result<()> {
    let steps: Vec<usize> = match size {
        Size::Short => vec![50, 200],
        Size::Full => match env_count("ECOVOL_BENCH_QUERY_RECORDS_MAX") {
            Some(max) => [10_000usize, 100_000, 1_000_000, 10_000_000].into_iter().filter(|n| *n <= max).collect(),
            None => vec![10_000, 100_000],
        },
    };
    let cluster = start(&topology(1, 1), "").await?;
    let (province, county) = (cluster.node("330000"), cluster.node("330101"));
    // Enough volunteers that the largest step fits the project's 70 days at twelve one-hour slots a day
    // (700 records each at most): 1,000 up to 10^5, 1,429 at 10^6.
    let volunteers = steps.last().map_or(1_000, |records| records.div_ceil(700).max(1_000));
    let workplace = Workplace::open(county, size.pick(20, volunteers), 0).await?;
    let today = ecovol_node::wire::today_china();
    let request = pb::GetRegionStatsRequest {
        region: String::new(),
        start_date: (today - chrono::Duration::days(364)).to_string(),
        end_date: today.to_string(),
    };
    let mut loaded = 0;
    for records in steps {
        workplace.confirmed_service(county, loaded, records).await?;
        loaded = records;
        cluster.wait_delivered(Duration::from_secs(600)).await?;
        let own = own_confirmed_hours_x100(county).await?;
        let rolled = province_totals(province).await?.confirmed_hours_x100;
        anyhow::ensure!(own == rolled, "the province has {rolled} confirmed hours x100, the county {own}");
        let mut stats = StatsServiceClient::new(province.staff());
        let mut samples = Vec::new();
        for _ in 0..size.pick(20, 500) {
            let begun = Instant::now();
            let answer = stats.get_region_stats(request.clone()).await?.into_inner();
            samples.push(begun.elapsed());
            anyhow::ensure!(!answer.months.is_empty(), "the province answers by month");
        }
        let latencies = Latencies::new(samples);
        let rss = super::footprint::resident_mib(std::process::id()).unwrap_or(0.0);
        let mib = |node: &ClusterNode| size_on_disk(&node.data_dir()) as f64 / (1024.0 * 1024.0);
        report.push(
            Figure::new(
                "query",
                format!("province stats p99 at {records} confirmed records"),
                latencies.quantile_ms(0.99),
                "ms",
            )
            .target("≤ 10 ms, flat")
            .note(format!(
                "p50 {:.2} ms; a year by month, kind and child; stores on disk: province {:.1} MiB, county {:.1} \
                 MiB; bench process RSS {rss:.0} MiB (3 nodes, sled cache 16 MiB each, and the load clients)",
                latencies.quantile_ms(0.5),
                mib(province),
                mib(county)
            )),
        );
        report.check(format!("query records {records} rolled up"), u64::from(own == rolled));
    }
    cluster.shutdown().await
}

/// Time from a county's acknowledged registration to its effect in the province's figures, at a steady rate
/// spread over every county.
pub async fn freshness(report: &mut Report, size: Size) -> anyhow::Result<()> {
    let (cities, counties) = match size {
        Size::Short => (1, 2),
        Size::Full => {
            let cities = std::env::var("ECOVOL_BENCH_CITIES").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
            (cities, 10)
        }
    };
    let rate = size.pick(50.0, env_count("ECOVOL_BENCH_FRESHNESS_RATE").unwrap_or(1_000) as f64);
    let seconds = size.pick(1.0, 20.0);
    let started_cluster = Instant::now();
    let nodes = topology(cities, counties);
    // The nodes pull their parents' messages at the product's default pace (`[federation] poll_interval_ms`,
    // 1 s), not the test harness's 50 ms: roll-ups do not wait for it (a commit wakes the uplink), and 110 children
    // asking 20 times a second would be load of the harness's own making.
    let cluster = start(&nodes, "poll_interval_ms = 1000\n").await?;
    let (started_threads, started_rss) = (threads(), super::footprint::resident_mib(std::process::id()).unwrap_or(0.0));
    println!(
        "  {} nodes started in {:.1} s: {started_threads} threads, RSS {started_rss:.0} MiB",
        nodes.len(),
        started_cluster.elapsed().as_secs_f64()
    );
    let county_nodes: Vec<&ClusterNode> =
        nodes.iter().filter(|n| n.1 == "county").map(|n| cluster.node(&n.0)).collect();
    let province = cluster.node("330000");
    let before = province_totals(province).await?.registered_volunteers;
    let total = (rate * seconds) as usize;
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total)));
    let done = Arc::new(AtomicU64::new(0));
    let poller = {
        let client = StatsServiceClient::new(province.staff());
        let done = done.clone();
        tokio::spawn(async move {
            let mut client = client;
            let mut seen: Vec<(Instant, u64)> = Vec::new();
            let (start_date, end_date) = whole_months();
            let request = pb::GetRegionStatsRequest { region: String::new(), start_date, end_date };
            let deadline = Instant::now() + Duration::from_secs(3_600);
            let mut done_at: Option<Instant> = None;
            while Instant::now() < deadline {
                if let Ok(answer) = client.get_region_stats(request.clone()).await {
                    let count = answer.into_inner().totals.unwrap_or_default().registered_volunteers - before;
                    seen.push((Instant::now(), count));
                    // `done` holds 1 + the writes acknowledged once every writer has finished: a write that failed
                    // never shows, so the poll ends at the acknowledged count (or a minute after the last write).
                    let finished = done.load(Ordering::Relaxed);
                    if finished > 0 {
                        let since = *done_at.get_or_insert_with(Instant::now);
                        if count >= finished - 1 || since.elapsed() > Duration::from_secs(60) {
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    let clients: Vec<_> =
        county_nodes.iter().map(|node| (VolunteerServiceClient::new(node.staff()), node.code.clone())).collect();
    let started = Instant::now();
    let mut writers = Vec::with_capacity(total);
    for index in 0..total {
        let due = started + Duration::from_secs_f64(index as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (mut client, code) = clients[index % clients.len()].clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            let answer = client.register_volunteer(volunteer(&code, 1_000_000 + index as u32)).await;
            if answer.is_ok()
                && let Ok(mut acknowledged) = acknowledged.lock()
            {
                acknowledged.push(Instant::now());
            }
        }));
    }
    for writer in writers {
        writer.await?;
    }
    let offered = total as f64 / started.elapsed().as_secs_f64();
    let acknowledged_count = acknowledged.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.len() as u64;
    done.store(1 + acknowledged_count, Ordering::Relaxed);
    let seen = poller.await?;
    let mut acknowledged = acknowledged.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    acknowledged.sort();
    // The k-th acknowledged write is taken as visible at the first poll that shows at least k.
    let mut lags = Vec::with_capacity(acknowledged.len());
    let mut poll = 0;
    for (k, acked) in acknowledged.iter().enumerate() {
        while poll < seen.len() && seen[poll].1 < (k + 1) as u64 {
            poll += 1;
        }
        let Some((visible, _)) = seen.get(poll) else { break };
        lags.push(visible.saturating_duration_since(*acked));
    }
    let visible = lags.len();
    let latencies = Latencies::new(lags);
    report.push(
        Figure::new(
            "freshness",
            format!("province {cities} cities {} counties: p50", cities * counties),
            latencies.quantile_ms(0.5),
            "ms",
        )
        .target("≤ 200 ms")
        .note(format!("{offered:.0} writes/s offered over {:.0} s", seconds)),
    );
    report.push(Figure::new("freshness", "p99", latencies.quantile_ms(0.99), "ms").target("≤ 1,000 ms"));
    let rss = super::footprint::resident_mib(std::process::id()).unwrap_or(0.0);
    report.push(Figure::new("freshness", format!("bench process RSS, {} nodes", nodes.len()), rss, "MiB").note(
        format!(
            "{started_threads} threads and {started_rss:.0} MiB once started (before the load); sled cache 16 MiB \
             per node"
        ),
    ));
    report.check("freshness writes acknowledged", acknowledged.len() as u64);
    report.check("freshness writes visible", visible as u64);
    report.check("freshness writes sent", total as u64);
    cluster.shutdown().await
}

/// What one cut-off-and-heal run measured.
struct CatchUp {
    records: usize,
    written: Duration,
    took: Duration,
    /// county→city and city→county bytes per record while catching up (TLS included).
    up_per_record: f64,
    down_per_record: f64,
    exact: bool,
}

/// A county cut off from its city while `records` confirmed records were written, then the city back, with the
/// link compressed as `compression` says (`federation.compression`). The county dials a relay that counts the
/// bytes each way.
async fn cut_off_and_heal(size: Size, records: usize, compression: &str) -> anyhow::Result<CatchUp> {
    // `ECOVOL_BENCH_BATCH_ENTRIES` tries another `[federation] batch_entries_max` (default 500).
    let batch =
        env_count("ECOVOL_BENCH_BATCH_ENTRIES").map(|n| format!("batch_entries_max = {n}\n")).unwrap_or_default();
    let mut cluster = start(&topology(1, 1), &format!("compression = \"{compression}\"\n{batch}")).await?;
    let relay = Relay::start(cluster.node("330100").federation).await?;
    // The county dials the relay: its config names the relay instead of the city's federation port.
    cluster.stop("330101").await?;
    let config_path = cluster.node("330101").config_path.clone();
    let city_address = cluster.node("330100").federation.to_string();
    let text = std::fs::read_to_string(&config_path)?.replace(&city_address, &relay.address.to_string());
    std::fs::write(&config_path, text)?;
    cluster.start_again("330101").await?;
    let workplace = Workplace::open(cluster.node("330101"), size.pick(20, 500), 0).await?;
    cluster.wait_delivered(Duration::from_secs(120)).await?;

    cluster.stop("330100").await?;
    let written = Instant::now();
    workplace.confirmed_service(cluster.node("330101"), 0, records).await?;
    let written = written.elapsed();
    println!("  {records} confirmed records written while cut off in {:.1} s", written.as_secs_f64());
    let (sent_before, received_before) = relay.bytes();
    cluster.start_again("330100").await?;
    let healed = Instant::now();
    cluster.wait_delivered(Duration::from_secs(3_600)).await?;
    let took = healed.elapsed();
    let own = own_confirmed_hours_x100(cluster.node("330101")).await?;
    let rolled = province_totals(cluster.node("330000")).await?.confirmed_hours_x100;
    anyhow::ensure!(own == rolled, "the province has {rolled} confirmed hours x100, the county {own}");
    let (sent, received) = relay.bytes();
    cluster.shutdown().await?;
    Ok(CatchUp {
        records,
        written,
        took,
        up_per_record: (sent - sent_before) as f64 / records as f64,
        down_per_record: (received - received_before) as f64 / records as f64,
        exact: own == rolled,
    })
}

/// Catch-up: a county cut off from its city while records are written (100,000 by default,
/// `ECOVOL_BENCH_CATCHUP_RECORDS` for more), then the city back: records per second through the healed link.
pub async fn catch_up(report: &mut Report, size: Size) -> anyhow::Result<()> {
    let records = match size {
        Size::Short => 200,
        Size::Full => env_count("ECOVOL_BENCH_CATCHUP_RECORDS").unwrap_or(100_000),
    };
    // `ECOVOL_BENCH_COMPRESSION` ("none", "gzip", "zstd") for another `[federation] compression` (default gzip).
    let compression = std::env::var("ECOVOL_BENCH_COMPRESSION").unwrap_or_else(|_| "gzip".into());
    let run = cut_off_and_heal(size, records, &compression).await?;
    report.push(
        Figure::new(
            "catchup",
            format!("{} records through the healed link", run.records),
            run.records as f64 / run.took.as_secs_f64(),
            "records/s",
        )
        .target("≥ 20,000/s")
        .note(format!(
            "province exact after {:.1} s (includes the city's restart and the link's back-off); written while cut \
             off in {:.1} s; {compression}: {:.0} B/record county→city",
            run.took.as_secs_f64(),
            run.written.as_secs_f64(),
            run.up_per_record
        )),
    );
    report.check("catchup records", run.records as u64);
    report.check("catchup province exact", u64::from(run.exact));
    Ok(())
}

/// Bytes per record on the county→city link while catching up, with `federation.compression` off and on
/// (20,000 records each).
pub async fn wire(report: &mut Report, size: Size) -> anyhow::Result<()> {
    let records = size.pick(200, 20_000);
    for compression in ["none", "gzip", "zstd"] {
        let run = cut_off_and_heal(size, records, compression).await?;
        report.push(
            Figure::new(
                "wire",
                format!("county→city bytes per record, compression {compression}"),
                run.up_per_record,
                "B",
            )
            .note(format!(
                "city→county {:.0} B/record; TLS included; {records} records caught up at {:.0}/s",
                run.down_per_record,
                records as f64 / run.took.as_secs_f64()
            )),
        );
        report.check(format!("wire {compression} province exact"), u64::from(run.exact));
    }
    Ok(())
}

/// A TCP relay to `target` counting the bytes each way.
struct Relay {
    address: std::net::SocketAddr,
    to_target: Arc<AtomicU64>,
    from_target: Arc<AtomicU64>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> anyhow::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (to_target, from_target) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (up, down) = (to_target.clone(), from_target.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else { continue };
                let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::spawn(pump(in_read, out_write, up.clone()));
                tokio::spawn(pump(out_read, in_write, down.clone()));
            }
        });
        Ok(Relay { address, to_target, from_target })
    }

    /// (bytes sent to the target, bytes received from it) so far.
    fn bytes(&self) -> (u64, u64) {
        (self.to_target.load(Ordering::Relaxed), self.from_target.load(Ordering::Relaxed))
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Arc<AtomicU64>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(read) = from.read(&mut buffer).await {
        if read == 0 || to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
        count.fetch_add(read as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}
