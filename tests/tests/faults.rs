//! Real processes, real faults (issue 7): kill -9 of a county or its city in the middle of a stream of writes,
//! partitions, a flapping and a slow link between real nodes (through `ecovol_tests::proxy`), a disk that fills
//! up under a running node, and the cost of the power-loss durability level.
//!
//! Knobs (all printed by the tests that read them, so a failure can be replayed):
//! - `ECOVOL_SEED`: the seed of kill moments, flap timings and loads.
//! - `ECOVOL_KILLS`: kills of the kill loop (default 4; the full run is `ECOVOL_KILLS=50`).
//! - `ECOVOL_FLAPS`: cuts of the flapping link (default 8).
//!
//! The disk-full test mounts a small tmpfs and needs root (`mount`); without it, it says so and skips that part.
//! The durability cost figures come from the ignored `durability_cost` test (see docs/RELIABILITY.md).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecovol_node::config::Config;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::node_service_client::NodeServiceClient;
use ecovol_proto::v1::stats_service_client::StatsServiceClient;
use ecovol_proto::v1::volunteer_service_client::VolunteerServiceClient;
use ecovol_tests::cluster::Cluster;
use ecovol_tests::federation_load::{comparable_own, comparable_region, load_county, volunteer, whole_months};
use ecovol_tests::process::{NodeProcess, free_address};
use ecovol_tests::proxy::{Proxy, route_uplink};
use ecovol_tests::{Authed, Bearer, NodeSpec, bootstrap_accounts, ecovol_binary, write_node_files};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;

/// A province, one city, two counties: the smallest federation with a city between a county and the top, and a
/// sibling county whose entries keep flowing while the other one suffers.
const TOPOLOGY: [(&str, &str, Option<&str>); 4] = [
    ("320000", "province", None),
    ("320100", "city", Some("320000")),
    ("320102", "county", Some("320100")),
    ("320104", "county", Some("320100")),
];
const COUNTIES: [&str; 2] = ["320102", "320104"];
/// Service hours of the last months may be recorded (the synthetic load spreads them over 75 days).
const HOURS_WINDOW: &str = "[hours]\nwindow_tolerance_minutes = 10080\n";
/// Liveness bound for a backlog to drain once the link is back (not a speed figure).
const DELIVERY: Duration = Duration::from_secs(60);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|text| text.parse().ok()).unwrap_or(default)
}

fn seed() -> u64 {
    env_number("ECOVOL_SEED", rand::random::<u32>() as u64)
}

/// A staff client of `code`'s office port, whether the node runs in this process or as its own process.
async fn office(cluster: &Cluster, code: &str) -> Authed {
    let node = cluster.node(code);
    office_at(node.office, &node.tokens.staff).await
}

async fn office_at(address: SocketAddr, token: &str) -> Authed {
    let channel = Endpoint::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    InterceptedService::new(channel, Bearer::new(token))
}

async fn uplink(cluster: &Cluster, code: &str) -> pb::UplinkStatus {
    let mut node = NodeServiceClient::new(office(cluster, code).await);
    node.get_federation_status(pb::GetFederationStatusRequest {}).await.unwrap().into_inner().uplink.unwrap()
}

/// Waits until no county and then no city holds an unacknowledged entry (in one sweep, counties first, so an entry
/// moving up during the sweep is seen at its next stop). Works for nodes running as processes too.
async fn wait_quiet(cluster: &Cluster) {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        let mut pending = Vec::new();
        for code in COUNTIES.into_iter().chain(["320100"]) {
            let status = uplink(cluster, code).await;
            if status.backlog > 0 {
                pending.push(format!("{code}: backlog {} ({})", status.backlog, status.last_error));
            }
        }
        if pending.is_empty() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "not delivered within {DELIVERY:?}: {pending:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn own_stats(cluster: &Cluster, code: &str) -> pb::GetStatsResponse {
    let (start_date, end_date) = whole_months();
    let mut stats = StatsServiceClient::new(office(cluster, code).await);
    stats.get_stats(pb::GetStatsRequest { start_date, end_date }).await.unwrap().into_inner()
}

async fn region_stats(cluster: &Cluster, at: &str, region: &str) -> pb::GetRegionStatsResponse {
    let (start_date, end_date) = whole_months();
    let mut stats = StatsServiceClient::new(office(cluster, at).await);
    let request = pb::GetRegionStatsRequest { region: region.into(), start_date, end_date };
    stats.get_region_stats(request).await.unwrap().into_inner()
}

/// REP-2 and ROL-1 at quiescence, exactly: each county's roll-up at the city and at the province equals the
/// county's own figures, and the province's total of registered volunteers is the sum of the counties' own (so
/// nothing is missing and nothing counted twice). Returns each county's registered volunteers.
async fn assert_converged(cluster: &Cluster, context: &str) -> Vec<u64> {
    let mut registered = Vec::new();
    for county in COUNTIES {
        let own = own_stats(cluster, county).await;
        registered.push(own.totals.as_ref().unwrap().registered_volunteers);
        let own = comparable_own(&own);
        for above in ["320100", "320000"] {
            let rolled = comparable_region(&region_stats(cluster, above, county).await);
            assert_eq!(rolled, own, "ROL-1 {context}: {above}'s roll-up of {county} equals the county's own figures");
        }
    }
    let province = region_stats(cluster, "320000", "").await;
    let total = province.totals.unwrap().registered_volunteers;
    assert_eq!(total, registered.iter().sum::<u64>(), "{context}: the province counts each registration once");
    registered
}

// ---------------------------------------------------------------------------------------------------------------
// kill -9

/// A registration the county acknowledged: (volunteer number, index of the synthetic volunteer).
type Acknowledged = Arc<Mutex<Vec<(String, u32)>>>;

/// Registers synthetic volunteers on `county`, each with the next index of `next_index` (dense, so identity
/// numbers never repeat), until `stop` is set or a call fails; returns the failure that stopped it.
fn spawn_writer(
    client: Authed,
    county: &'static str,
    next_index: Arc<AtomicU32>,
    acknowledged: Acknowledged,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Option<tonic::Status>> {
    tokio::spawn(async move {
        let mut registry = VolunteerServiceClient::new(client);
        while !stop.load(Ordering::Relaxed) {
            let index = next_index.fetch_add(1, Ordering::Relaxed);
            match registry.register_volunteer(volunteer(county, index)).await {
                Ok(reply) => {
                    let number = reply.into_inner().volunteer.unwrap().volunteer_number;
                    acknowledged.lock().unwrap().push((number, index));
                }
                Err(status) => return Some(status),
            }
        }
        None
    })
}

/// Every registration `county` acknowledged is there, under its number, once.
async fn assert_all_present(
    address: SocketAddr,
    token: &str,
    county: &str,
    acknowledged: &Acknowledged,
    context: &str,
) {
    let expected = acknowledged.lock().unwrap().clone();
    let mut numbers: Vec<&String> = expected.iter().map(|(number, _)| number).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), expected.len(), "{context}: a volunteer number was acknowledged twice");
    let mut registry = VolunteerServiceClient::new(office_at(address, token).await);
    for (number, index) in &expected {
        let found = registry
            .get_volunteer(pb::GetVolunteerRequest { volunteer_number: number.clone() })
            .await
            .unwrap_or_else(|status| panic!("{context}: acknowledged volunteer {number} lost: {status}"))
            .into_inner()
            .volunteer
            .unwrap();
        assert_eq!(found.name, volunteer(county, *index).name, "{context}: wrong record under {number}");
    }
}

/// The kill -9 loop, on real processes: the county 320102 and its city 320100 run as `ecovol serve`
/// processes; office clients register volunteers on both counties without pause; at a seeded random moment either
/// the county (mid-stream of its own acknowledged writes) or the city (mid-replication, its counties still
/// sending) is killed with SIGKILL and started again. After each restart: the store opened, every write the
/// county acknowledged is there, and once the links are quiet the province's roll-ups equal the counties' own
/// figures exactly (REP-1, REP-2, ROL-1; no entry counted twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_county_or_its_city_mid_stream_loses_nothing_and_counts_nothing_twice() {
    let seed = seed();
    let kills = env_number("ECOVOL_KILLS", 4);
    eprintln!("kill loop: seed {seed}, {kills} kills (replay with ECOVOL_SEED={seed} ECOVOL_KILLS={kills})");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cluster = Cluster::start(&TOPOLOGY, HOURS_WINDOW).await.unwrap();
    load_county(cluster.node("320102"), seed, 0, 3).await.unwrap();
    load_county(cluster.node("320104"), seed + 1, 0, 3).await.unwrap();
    // The county and the city become real processes on the same folders and ports.
    let mut processes = std::collections::BTreeMap::new();
    for code in ["320102", "320100"] {
        cluster.stop(code).await.unwrap();
        let node = cluster.node(code);
        processes.insert(code, NodeProcess::start(ecovol_binary!(), &node.config_path, node.office).await.unwrap());
    }
    let county = cluster.node("320102");
    let (county_office, county_token) = (county.office, county.tokens.staff.clone());
    let acknowledged: Acknowledged = Arc::default();
    let mut sibling_acknowledged = 0usize;
    let county_index = Arc::new(AtomicU32::new(1_000));
    let sibling_index = Arc::new(AtomicU32::new(1_000));
    let (mut county_kills, mut city_kills) = (0, 0);
    for kill in 0..kills {
        let round_start = acknowledged.lock().unwrap().len();
        let stop = Arc::new(AtomicBool::new(false));
        let sibling: Acknowledged = Arc::default();
        let mut writers = Vec::new();
        for _ in 0..3 {
            let client = office(&cluster, "320102").await;
            writers.push(spawn_writer(client, "320102", county_index.clone(), acknowledged.clone(), stop.clone()));
        }
        let client = office(&cluster, "320104").await;
        let sibling_writer = spawn_writer(client, "320104", sibling_index.clone(), sibling.clone(), stop.clone());
        tokio::time::sleep(Duration::from_millis(rng.random_range(30..300))).await;
        let victim = if rng.random_bool(0.5) { "320102" } else { "320100" };
        processes.remove(victim).unwrap().kill_hard().unwrap();
        let node = cluster.node(victim);
        // The store opens after the crash (start fails loudly, with the node's own message, if it does not).
        let restarted = NodeProcess::start(ecovol_binary!(), &node.config_path, node.office)
            .await
            .unwrap_or_else(|error| panic!("kill {kill}: {victim} does not start again: {error:#} (seed {seed})"));
        processes.insert(victim, restarted);
        if victim == "320102" {
            county_kills += 1;
        } else {
            city_kills += 1;
            // The counties kept sending while the city was away; let them go on a little against the new city.
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..100))).await;
        }
        stop.store(true, Ordering::Relaxed);
        // Only the killed county's writers may stop on an error, and only on one of the crash.
        for writer in writers {
            if let Some(status) = writer.await.unwrap() {
                assert_eq!(victim, "320102", "kill {kill}: a write to the county failed: {status:?} (seed {seed})");
                let crash = [tonic::Code::Unavailable, tonic::Code::Unknown, tonic::Code::Cancelled];
                assert!(crash.contains(&status.code()), "kill {kill}: not a crash's failure: {status:?}");
            }
        }
        if let Some(status) = sibling_writer.await.unwrap() {
            panic!("kill {kill}: the sibling county refused a write: {status:?} (seed {seed})");
        }
        sibling_acknowledged += sibling.lock().unwrap().len();
        let context = format!("kill {kill} of {victim} (seed {seed})");
        assert_all_present(county_office, &county_token, "320102", &acknowledged, &context).await;
        wait_quiet(&cluster).await;
        let registered = assert_converged(&cluster, &context).await;
        let county_acknowledged = acknowledged.lock().unwrap().len() as u64 + 3;
        // A registration in flight at the kill may be stored without its answer: at least, never fewer.
        assert!(registered[0] >= county_acknowledged, "{context}: {registered:?} < {county_acknowledged}");
        assert_eq!(registered[1], sibling_acknowledged as u64 + 3, "{context}: the sibling county's writes, once each");
        eprintln!(
            "kill {kill}: {victim} killed, {} writes acknowledged by 320102 in the round; it holds {} ({} acknowledged)",
            acknowledged.lock().unwrap().len() - round_start,
            registered[0],
            county_acknowledged
        );
    }
    eprintln!(
        "kill loop done: {county_kills} county kills, {city_kills} city kills, {} registrations acknowledged by \
         320102 and {sibling_acknowledged} by 320104, all present and counted once at the province",
        acknowledged.lock().unwrap().len()
    );
    for (_, process) in processes {
        process.terminate().unwrap();
    }
    cluster.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------------------
// Partitions between real nodes

/// A federation whose county 320102 reaches its city only through a fault-injecting proxy.
async fn cluster_behind_proxy() -> (Cluster, Proxy) {
    let mut cluster = Cluster::start(&TOPOLOGY, HOURS_WINDOW).await.unwrap();
    let proxy = Proxy::start(cluster.node("320100").federation).await.unwrap();
    route_uplink(&mut cluster, "320102", proxy.address()).await.unwrap();
    (cluster, proxy)
}

async fn register(cluster: &Cluster, county: &str, indexes: std::ops::Range<u32>) {
    let mut registry = VolunteerServiceClient::new(office(cluster, county).await);
    for index in indexes {
        registry.register_volunteer(volunteer(county, index)).await.unwrap();
    }
}

/// A county cut off from its city by the network (the city keeps running, the sibling county keeps delivering)
/// goes on taking writes, queues them, says why, and once the link heals the province converges exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_partitioned_from_its_city_keeps_working_and_converges_exactly_after_healing() {
    let seed = seed();
    eprintln!("partition: seed {seed}");
    let (cluster, proxy) = cluster_behind_proxy().await;
    load_county(cluster.node("320102"), seed, 0, 4).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    assert!(proxy.connections() > 0, "the county's uplink goes through the proxy");
    let before = region_stats(&cluster, "320000", "320102").await.totals.unwrap().registered_volunteers;

    proxy.cut();
    register(&cluster, "320102", 100..130).await;
    load_county(cluster.node("320102"), seed + 1, 200, 3).await.unwrap();
    register(&cluster, "320104", 300..310).await;
    // The county notices: its uplink reports the failure and holds the backlog.
    let deadline = tokio::time::Instant::now() + DELIVERY;
    let status = loop {
        let status = uplink(&cluster, "320102").await;
        if !status.last_error.is_empty() {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "the cut never shows in the county's status: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.backlog > 0, "the county queues its changes while cut off: {status:?}");
    let during = region_stats(&cluster, "320000", "320102").await.totals.unwrap().registered_volunteers;
    assert_eq!(during, before, "nothing crossed the cut");
    // The sibling county is not held back by the partition.
    wait_sibling_delivered(&cluster).await;

    proxy.heal();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let registered = assert_converged(&cluster, &format!("after healing (seed {seed})")).await;
    assert_eq!(registered, [4 + 30 + 3, 10], "every acknowledged registration arrived once (seed {seed})");
    cluster.shutdown().await.unwrap();
}

async fn wait_sibling_delivered(cluster: &Cluster) {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    while uplink(cluster, "320104").await.backlog > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the sibling county is held back by another's partition");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A link that goes down and up again and again (seeded timings, cut mid-batch as often as not) while the county
/// writes: after it settles, every entry has arrived once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_link_delivers_everything_exactly_once() {
    let seed = seed();
    let flaps = env_number("ECOVOL_FLAPS", 8);
    eprintln!("flapping link: seed {seed}, {flaps} cuts (replay with ECOVOL_SEED={seed} ECOVOL_FLAPS={flaps})");
    let (cluster, proxy) = cluster_behind_proxy().await;
    let proxy = Arc::new(proxy);
    let flapping = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            for _ in 0..flaps {
                tokio::time::sleep(Duration::from_millis(rng.random_range(10..150))).await;
                proxy.cut();
                tokio::time::sleep(Duration::from_millis(rng.random_range(10..250))).await;
                proxy.heal();
            }
        })
    };
    let mut written = 0u64;
    let mut index = 0u32;
    while !flapping.is_finished() {
        register(&cluster, "320102", index..index + 5).await;
        index += 5;
        written += 5;
    }
    flapping.await.unwrap();
    load_county(cluster.node("320102"), seed, 10_000, 3).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let registered = assert_converged(&cluster, &format!("after {flaps} cuts (seed {seed})")).await;
    assert_eq!(registered[0], written + 3, "every acknowledged registration arrived once (seed {seed})");
    assert!(proxy.connections() > 1, "the uplink reconnected through the flaps");
    cluster.shutdown().await.unwrap();
}

/// 50 ms each way on the county's link: the uplink still drains a backlog written by concurrent office clients,
/// and the figures arrive exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_keeps_up_and_its_backlog_drains() {
    let seed = seed();
    eprintln!("slow link: seed {seed}");
    let (cluster, proxy) = cluster_behind_proxy().await;
    proxy.set_latency(Duration::from_millis(50));
    let mut writers = Vec::new();
    for writer in 0..4u32 {
        let client = office(&cluster, "320102").await;
        writers.push(tokio::spawn(async move {
            let mut registry = VolunteerServiceClient::new(client);
            for index in writer * 1000..writer * 1000 + 40 {
                registry.register_volunteer(volunteer("320102", index)).await.unwrap();
            }
        }));
    }
    load_county(cluster.node("320102"), seed, 10_000, 3).await.unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let registered = assert_converged(&cluster, &format!("over a slow link (seed {seed})")).await;
    assert_eq!(registered[0], 4 * 40 + 3, "every acknowledged registration arrived once (seed {seed})");
    cluster.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------------------
// Disk full

/// A small tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size_mb` MiB, or says why it cannot (not root, no mount in this container).
    fn mount(size_mb: u32) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|error| format!("cannot run mount: {error}"))?;
        if !output.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(SmallDisk { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills the disk to the last byte with a filler file.
    fn fill(&self) {
        use std::io::Write as _;
        let mut filler = std::fs::File::create(self.path().join("filler")).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            while filler.write_all(&vec![0u8; chunk]).is_ok() {}
        }
        let _ = filler.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// A node whose disk fills up refuses writes with Unavailable and says why, keeps serving reads, and takes
/// writes again, without a restart, once space is back; nothing it acknowledged is lost and nothing it refused
/// appears, then or after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_unavailable_serves_reads_and_recovers_when_space_returns() {
    let disk = match SmallDisk::mount(24) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED disk-full test: {why} (it needs root and a kernel that lets it mount tmpfs)");
            return;
        }
    };
    let address = free_address().unwrap();
    let config_path = write_node_files(disk.path(), &NodeSpec::county("330106"), &address.to_string()).unwrap();
    let config = Config::load_with_env(Some(&config_path), std::iter::empty()).unwrap();
    let tokens = bootstrap_accounts(&config).await.unwrap();
    let node = NodeProcess::start(ecovol_binary!(), &config_path, address).await.unwrap();
    let mut registry = VolunteerServiceClient::new(office_at(address, &tokens.staff).await);
    let mut acknowledged = Vec::new();
    for index in 0..20 {
        let reply = registry.register_volunteer(volunteer("330106", index)).await.unwrap();
        acknowledged.push((reply.into_inner().volunteer.unwrap().volunteer_number, index));
    }

    disk.fill();
    // Writes go on until sled needs a byte more than the page it is filling: then every one is refused.
    let mut refusal = None;
    for index in 20..2_000 {
        match registry.register_volunteer(volunteer("330106", index)).await {
            Ok(reply) => acknowledged.push((reply.into_inner().volunteer.unwrap().volunteer_number, index)),
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    let refusal = refusal.expect("a full disk never refused a write");
    eprintln!("full disk: {} acknowledged, then {:?}: {}", acknowledged.len(), refusal.code(), refusal.message());
    assert_eq!(refusal.code(), tonic::Code::Unavailable, "{refusal:?}");
    assert!(refusal.message().contains("the disk is full"), "the refusal says why: {}", refusal.message());
    let again = registry.register_volunteer(volunteer("330106", 5_000)).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::Unavailable, "still refused while the disk is full: {again:?}");
    // Reads are served, with one known exception (docs/RELIABILITY.md, "Weaknesses found"): when sled's own
    // background writer met the full disk first, sled 0.34 fails every operation of that handle, reads too, until
    // the store is reopened. Such a read must then be Unavailable and say that the disk is full; a read that
    // answers must answer the acknowledged record.
    let mut reads_refused = 0;
    for (number, index) in &acknowledged {
        match registry.get_volunteer(pb::GetVolunteerRequest { volunteer_number: number.clone() }).await {
            Ok(found) => {
                assert_eq!(found.into_inner().volunteer.unwrap().name, volunteer("330106", *index).name);
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                assert!(status.message().contains("No space left on device"), "the refusal says why: {status:?}");
                reads_refused += 1;
            }
        }
    }
    eprintln!("full disk: {reads_refused} of {} reads refused", acknowledged.len());

    disk.free();
    // The committer retries its flush with the next group, whose writes it still refuses: a write after space
    // came back reopens the store, the next ones are taken. Usually the second write is taken; under load it has
    // taken more than three (seen 2026-12-03), so the test allows 50 attempts 100 ms apart and prints the count.
    let mut taken = None;
    for attempt in 0..50 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match registry.register_volunteer(volunteer("330106", 6_000)).await {
            Ok(reply) => {
                eprintln!("full disk: the write {attempt} after freeing space was taken");
                taken = Some(reply.into_inner().volunteer.unwrap().volunteer_number);
                break;
            }
            Err(status) => eprintln!("write {attempt} after freeing space: {:?}: {}", status.code(), status.message()),
        }
    }
    let number = taken.expect("writes are not taken again once space is back (50 attempts in 5 s)");
    acknowledged.push((number, 6_000));
    let counted = registered_at(address, &tokens.staff).await;
    assert_eq!(counted, acknowledged.len() as u64, "nothing acknowledged lost, nothing refused kept");
    drop(registry);
    assert!(node.terminate().unwrap().success());

    // And so it stays after a restart.
    let node = NodeProcess::start(ecovol_binary!(), &config_path, address).await.unwrap();
    let mut registry = VolunteerServiceClient::new(office_at(address, &tokens.staff).await);
    for (number, _) in &acknowledged {
        registry
            .get_volunteer(pb::GetVolunteerRequest { volunteer_number: number.clone() })
            .await
            .unwrap_or_else(|status| panic!("acknowledged volunteer {number} lost after the restart: {status}"));
    }
    assert_eq!(registered_at(address, &tokens.staff).await, acknowledged.len() as u64);
    drop(registry);
    assert!(node.terminate().unwrap().success());
}

async fn registered_at(address: SocketAddr, token: &str) -> u64 {
    let (start_date, end_date) = whole_months();
    let mut stats = StatsServiceClient::new(office_at(address, token).await);
    let answer = stats.get_stats(pb::GetStatsRequest { start_date, end_date }).await.unwrap().into_inner();
    answer.totals.unwrap().registered_volunteers
}

// ---------------------------------------------------------------------------------------------------------------
// Durability level cost

/// The cost of `[store] durability`: 16 writers, each committing small records through the node's group
/// committer for a few seconds, once per level, on the disk of `ECOVOL_BENCH_DIR` (default: the temp folder).
/// Not a test (figures, no assertion on speed):
/// `cargo nextest run --release -p ecovol-tests --test faults --run-ignored only durability_cost --no-capture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it on purpose (see the doc comment)"]
async fn durability_cost() {
    use ecovol_node::commit::Committer;
    use ecovol_node::store::{Durability, SledStore, Store};
    let seconds = env_number("ECOVOL_BENCH_SECONDS", 5);
    let base = std::env::var("ECOVOL_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    for durability in [Durability::ProcessCrash, Durability::PowerLoss] {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SledStore::open_with(&dir.path().join("db"), 64 << 20, durability).unwrap());
        let committer = Arc::new(Committer::start(store, 8192, 1024));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        let mut writers = Vec::new();
        for writer in 0..16u64 {
            let committer = committer.clone();
            writers.push(tokio::spawn(async move {
                let mut written = 0u64;
                while tokio::time::Instant::now() < deadline {
                    let key = format!("bench/{writer:02}/{written:012}");
                    committer
                        .write_unaudited(move |txn| {
                            txn.put(key, vec![b'x'; 300]);
                            Ok(())
                        })
                        .await
                        .unwrap();
                    written += 1;
                }
                written
            }));
        }
        let mut written = 0;
        for writer in writers {
            written += writer.await.unwrap();
        }
        let stats = committer.stats();
        let flushes = stats.flushes.load(Ordering::Relaxed).max(1);
        let flush_micros = stats.flush_micros.load(Ordering::Relaxed);
        eprintln!(
            "durability {durability:?}: {} records/s from 16 writers, {} flushes/s, {:.1} records per flush, \
             mean flush {} µs",
            written / seconds,
            flushes / seconds,
            written as f64 / flushes as f64,
            flush_micros / flushes
        );
        committer.stop().await;
    }
}
