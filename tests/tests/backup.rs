//! Backup and restore: a consistent snapshot of a running node while writes go on, restored into a new folder
//! and served again; the checksum, node and key checks of a restore; and counties, cities and provinces of a
//! federation restored from backups, after which every level is exact again (docs/OPERATIONS.md, "Restoring a
//! node of a federation").

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ecovol_node::config::Config;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::node_service_client::NodeServiceClient;
use ecovol_proto::v1::recognition_service_client::RecognitionServiceClient;
use ecovol_proto::v1::volunteer_service_client::VolunteerServiceClient;
use ecovol_tests::cluster::Cluster;
use ecovol_tests::federation_load::{comparable_own, comparable_region, load_county, own_stats, region_stats};
use ecovol_tests::fixtures::adult;
use ecovol_tests::{Authed, Bearer, NodeSpec, TestNode, write_node_files};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use ecovol_tests::run_ecovol as ecovol;

/// A node served from an existing folder (a restored one).
struct Served {
    channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Served {
    async fn start(config_path: &Path) -> Served {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let config = Config::load_with_env(Some(config_path), std::iter::empty()).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(ecovol_node::server::run(config, listener, async move {
            let _ = stopped.await;
        }));
        let channel = Endpoint::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
        Served { channel, stop: Some(stop), task }
    }

    fn authed(&self, token: &str) -> Authed {
        InterceptedService::new(self.channel.clone(), Bearer::new(token))
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

/// A folder for a node restored from a backup of `spec`'s node: its config, and the node key copied from `from`.
fn restore_folder(spec: &NodeSpec, key_from: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(key_from.join("node.key"), dir.path().join("node.key")).unwrap();
    let config = write_node_files(dir.path(), spec, "127.0.0.1:7070").unwrap();
    (dir, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_node_is_backed_up_while_writes_go_on_and_a_restored_copy_serves_every_acknowledged_record() {
    let spec = NodeSpec::county("330106");
    let node = TestNode::start(spec.clone()).await.unwrap();
    let staff = node.tokens.staff.clone();
    let mut registry = node.volunteers(&staff);
    let mut before = Vec::new();
    for index in 0..150 {
        let answer = registry.register_volunteer(adult(index)).await.unwrap().into_inner();
        before.push(answer.volunteer.unwrap().volunteer_number);
    }

    // Writers keep registering while the backup is taken; each remembers what was acknowledged and when.
    let running = Arc::new(AtomicBool::new(true));
    let writers: Vec<_> = (0..4u32)
        .map(|writer| {
            let mut registry = node.volunteers(&staff);
            let running = running.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut index = 1000 + writer * 10_000;
                while running.load(Ordering::Relaxed) {
                    let answer = registry.register_volunteer(adult(index)).await.unwrap().into_inner();
                    acknowledged.push((Instant::now(), answer.volunteer.unwrap().volunteer_number));
                    index += 1;
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;

    let refused = node.node(&staff).create_backup(pb::CreateBackupRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "staff may not take backups: {refused:?}");
    let started = Instant::now();
    let backup = node.node(&node.tokens.operator).create_backup(pb::CreateBackupRequest {}).await.unwrap().into_inner();
    tokio::time::sleep(Duration::from_millis(150)).await;
    running.store(false, Ordering::Relaxed);
    let mut acknowledged_before = before.clone();
    let mut acknowledged_during = 0;
    for writer in writers {
        for (when, number) in writer.await.unwrap() {
            if when < started {
                acknowledged_before.push(number);
            } else {
                acknowledged_during += 1;
            }
        }
    }
    assert!(acknowledged_during > 0, "writes went on around the backup");
    let path = PathBuf::from(&backup.path);
    assert!(path.starts_with(node.dir.path().join("backups")), "in store.backup_dir beside the config: {path:?}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), backup.bytes);
    assert!(backup.entries > 1000 && backup.sha256.len() == 64, "{backup:?}");

    // The backup is audited, with who took it and what it holds.
    let trail = node
        .audit(&node.tokens.auditor)
        .list_audit_entries(pb::ListAuditEntriesRequest { page_size: 500, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let audited: Vec<_> = trail.iter().filter(|entry| entry.operation.contains("CreateBackup")).collect();
    assert_eq!(audited.len(), 2, "the refusal and the backup: {audited:?}");
    assert!(audited.iter().any(|entry| entry.target == backup.path && entry.detail.contains(&backup.sha256)));

    // Restored into a new folder (with the node key kept with the backup) and served, it answers for every
    // volunteer acknowledged before the backup started, with the same tokens.
    let (restored_dir, restored_config) = restore_folder(&spec, node.dir.path());
    let (code, out, err) = ecovol(&[
        "-o",
        "json",
        "admin",
        "restore",
        "--config",
        restored_config.to_str().unwrap(),
        "--from",
        &backup.path,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let restored: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(restored["entries"], backup.entries);
    assert_eq!(restored["sha256"], backup.sha256);
    let copy = Served::start(&restored_config).await;
    let mut registry = VolunteerServiceClient::new(copy.authed(&staff));
    for number in &acknowledged_before {
        let volunteer = registry
            .get_volunteer(pb::GetVolunteerRequest { volunteer_number: number.clone() })
            .await
            .unwrap_or_else(|status| panic!("{number} acknowledged before the backup is missing: {status:?}"))
            .into_inner()
            .volunteer
            .unwrap();
        assert_eq!(&volunteer.volunteer_number, number);
    }
    // The restored node keeps working where the backup left it: new numbers follow the restored sequence.
    let next = registry.register_volunteer(adult(99_999)).await.unwrap().into_inner().volunteer.unwrap();
    assert!(!acknowledged_before.contains(&next.volunteer_number));
    copy.stop().await;
    drop(restored_dir);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_refuses_a_tampered_file_another_node_or_key_and_a_folder_in_use() {
    let spec = NodeSpec::county("330106");
    let node = TestNode::start(spec.clone()).await.unwrap();
    let mut registry = node.volunteers(&node.tokens.staff);
    for index in 0..20 {
        registry.register_volunteer(adult(index)).await.unwrap();
    }
    // The command line takes the backup over the network too.
    let address = format!("http://{}", node.address);
    let (code, out, err) =
        ecovol(&["--node", &address, "--token", &node.tokens.operator, "-o", "json", "admin", "backup"]).await;
    assert_eq!(code, 0, "{err}");
    let taken: serde_json::Value = serde_json::from_str(&out).unwrap();
    let backup = PathBuf::from(taken["path"].as_str().unwrap());
    let original = std::fs::read(&backup).unwrap();

    let (dir, config) = restore_folder(&spec, node.dir.path());
    let restore = |from: PathBuf, config: PathBuf, force: bool| async move {
        let mut args = vec![
            "admin".to_string(),
            "restore".into(),
            "--config".into(),
            config.display().to_string(),
            "--from".into(),
        ];
        args.push(from.display().to_string());
        if force {
            args.push("--force".into());
        }
        ecovol(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
    };

    // One changed byte in the middle of the entries: refused, and nothing is written.
    let tampered = dir.path().join("tampered.ecovol-backup");
    let mut bytes = original.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&tampered, &bytes).unwrap();
    let (code, _, err) = restore(tampered.clone(), config.clone(), false).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("checksum does not match"), "{err}");
    assert!(!dir.path().join("data").exists(), "a refused restore writes nothing");
    // A truncated copy too.
    std::fs::write(&tampered, &original[..original.len() - 100]).unwrap();
    let (code, _, err) = restore(tampered, config.clone(), false).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a usable backup"), "{err}");

    // Another node's configuration, or another key.
    let other = tempfile::tempdir().unwrap();
    std::fs::copy(node.dir.path().join("node.key"), other.path().join("node.key")).unwrap();
    let other_config = write_node_files(other.path(), &NodeSpec::county("330108"), "127.0.0.1:7070").unwrap();
    let (code, _, err) = restore(backup.clone(), other_config, false).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a backup of node 330106, but the configuration is node 330108"), "{err}");
    let stranger = tempfile::tempdir().unwrap();
    let stranger_config = write_node_files(stranger.path(), &spec, "127.0.0.1:7070").unwrap();
    let (code, _, err) = restore(backup.clone(), stranger_config, false).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not the key this backup was made with"), "{err}");

    // Restored once; a second restore into the same, now full, folder needs --force and moves it aside.
    assert_eq!(restore(backup.clone(), config.clone(), false).await.0, 0);
    let (code, _, err) = restore(backup.clone(), config.clone(), false).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not empty"), "{err}");
    let (code, out, err) = restore(backup.clone(), config.clone(), true).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("before-restore-"), "{out}");

    // A stopped node is backed up offline; the file holds the same store (plus what the node wrote since: the
    // backup's audit entry and the shutdown).
    let stopped = node.stop().await.unwrap();
    let offline_config = stopped.path().join("node.toml");
    let out = stopped.path().join("offline.ecovol-backup");
    let (code, text, err) = ecovol(&[
        "-o",
        "json",
        "admin",
        "backup",
        "--config",
        offline_config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let offline: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(offline["entries"].as_u64().unwrap() >= taken["entries"].as_u64().unwrap());
    let (header, _) = ecovol_node::backup::verify(&out).unwrap();
    assert_eq!(header.node_code, "330106");
    drop(dir);
}

const HOURS_WINDOW: &str = "[hours]\nwindow_tolerance_minutes = 10080\n";
const TOPOLOGY: [(&str, &str, Option<&str>); 3] =
    [("320000", "province", None), ("320100", "city", Some("320000")), ("320102", "county", Some("320100"))];
const DELIVERY: Duration = Duration::from_secs(60);

async fn take_backup(cluster: &Cluster, code: &str) -> PathBuf {
    let node = cluster.node(code);
    let mut client = NodeServiceClient::new(node.authed(&node.tokens.operator));
    PathBuf::from(client.create_backup(pb::CreateBackupRequest {}).await.unwrap().into_inner().path)
}

async fn restore_node(cluster: &mut Cluster, code: &str, backup: &Path) {
    cluster.stop(code).await.unwrap();
    let config = Config::load_with_env(Some(&cluster.node(code).config_path), std::iter::empty()).unwrap();
    ecovol_node::backup::restore(&config, backup, true).unwrap();
    cluster.start_again(code).await.unwrap();
}

async fn registered(cluster: &Cluster, above: &str, county: &str) -> u64 {
    region_stats(cluster.node(above), county).await.unwrap().totals.unwrap().registered_volunteers
}

/// The case a restore is safe in: everything the county did after the backup is lost (at the county and above,
/// consistently), entries the backup holds that the city received meanwhile are resent and ignored, and the
/// roll-ups equal the county's own figures again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_restored_from_a_backup_newer_than_anything_its_city_holds_converges_without_double_counting() {
    let mut cluster = Cluster::start(&TOPOLOGY, HOURS_WINDOW).await.unwrap();
    load_county(cluster.node("320102"), 1, 0, 6).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    // The city is away: the county keeps working and its outbox holds the changes; the backup holds them too.
    cluster.stop("320100").await.unwrap();
    load_county(cluster.node("320102"), 2, 100, 5).await.unwrap();
    let backup = take_backup(&cluster, "320102").await;
    let pending = cluster.status("320102").await.unwrap().uplink.unwrap().backlog;
    assert!(pending > 0);
    // The city comes back and takes those entries; then the county is restored from the backup, whose outbox
    // still holds them: they are sent again and ignored by position.
    cluster.start_again("320100").await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    restore_node(&mut cluster, "320102", &backup).await;
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let own = comparable_own(&own_stats(cluster.node("320102")).await.unwrap());
    for above in ["320100", "320000"] {
        let rolled = comparable_region(&region_stats(cluster.node(above), "320102").await.unwrap());
        assert_eq!(rolled, own, "{above} counts the restored county exactly once");
    }
    assert_eq!(registered(&cluster, "320000", "320102").await, 11);
    // It keeps working after the restore, and its new changes arrive.
    load_county(cluster.node("320102"), 3, 200, 2).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let own = comparable_own(&own_stats(cluster.node("320102")).await.unwrap());
    assert_eq!(comparable_region(&region_stats(cluster.node("320000"), "320102").await.unwrap()), own);
    assert_eq!(registered(&cluster, "320000", "320102").await, 13);
    cluster.shutdown().await.unwrap();
}

/// Waits until `check` holds (a resync runs after the restored node's or its children's next position check),
/// or fails with the last difference it saw.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + DELIVERY;
    loop {
        match check().await {
            Ok(()) => return,
            Err(difference) if Instant::now() > deadline => panic!("{what}: {difference}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// ROL-1 for one county: its own figures equal its roll-up at every node in `above`.
async fn county_exact(cluster: &Cluster, county: &str, above: &[&str]) -> Result<(), String> {
    let own = comparable_own(&own_stats(cluster.node(county)).await.map_err(|e| e.to_string())?);
    for node in above {
        let rolled = comparable_region(&region_stats(cluster.node(node), county).await.map_err(|e| e.to_string())?);
        if rolled != own {
            return Err(format!("{node} counts {county} as {:?}, its own figures are {:?}", rolled.2, own.2));
        }
    }
    Ok(())
}

/// Every volunteer's confirmed minutes across the federation (answered by the province) equal their minutes at
/// the county that registered them: nothing of the county is counted twice or kept from before a restore.
async fn minutes_exact(cluster: &Cluster, county: &str, volunteers: &[String]) -> Result<(), String> {
    let mut client = RecognitionServiceClient::new(cluster.node(county).staff());
    for number in volunteers {
        let request = pb::GetFederationMinutesRequest { volunteer_number: number.clone() };
        let answer = client.get_federation_minutes(request).await.map_err(|e| e.to_string())?.into_inner();
        if answer.answered_by != "320000" || answer.federation_minutes != answer.local_minutes {
            return Err(format!("{number}: {answer:?}"));
        }
    }
    Ok(())
}

/// A county restored from a backup older than its last delivery (its newer changes reached the city and the
/// province): it starts a new epoch and announces its whole state, and the city and province replace what they
/// held of it. Every level is exact (ROL-1), and new changes flow. Restored a second time from the same backup,
/// this time while its city is down, it is exact again once the city is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_restored_from_a_backup_older_than_its_last_delivery_resyncs_and_every_level_is_exact() {
    let mut cluster = Cluster::start(&TOPOLOGY, HOURS_WINDOW).await.unwrap();
    let first = load_county(cluster.node("320102"), 1, 0, 6).await.unwrap();
    let kept: Vec<String> = first.volunteers.iter().map(|(number, _)| number.clone()).collect();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let backup = take_backup(&cluster, "320102").await;
    load_county(cluster.node("320102"), 2, 100, 4).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    assert_eq!(registered(&cluster, "320000", "320102").await, 10);

    restore_node(&mut cluster, "320102", &backup).await;
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let own = own_stats(cluster.node("320102")).await.unwrap().totals.unwrap().registered_volunteers;
    assert_eq!(own, 6, "the county is back at its backup");
    county_exact(&cluster, "320102", &["320100", "320000"]).await.unwrap();
    assert_eq!(registered(&cluster, "320000", "320102").await, 6, "the 4 lost registrations are gone above too");
    minutes_exact(&cluster, "320102", &kept).await.unwrap();

    // New changes flow and are counted once.
    load_county(cluster.node("320102"), 3, 200, 3).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    county_exact(&cluster, "320102", &["320100", "320000"]).await.unwrap();
    assert_eq!(registered(&cluster, "320000", "320102").await, 9);

    // Restored again from the same backup, while its city is down: the county works on, and once the city is
    // back the new epoch replaces the one before.
    cluster.stop("320100").await.unwrap();
    restore_node(&mut cluster, "320102", &backup).await;
    load_county(cluster.node("320102"), 4, 300, 2).await.unwrap();
    cluster.start_again("320100").await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    county_exact(&cluster, "320102", &["320100", "320000"]).await.unwrap();
    assert_eq!(registered(&cluster, "320000", "320102").await, 8);
    minutes_exact(&cluster, "320102", &kept).await.unwrap();
    cluster.shutdown().await.unwrap();
}

/// Backup and restore speed on a store of `ECOVOL_BACKUP_VOLUNTEERS` (default 20,000) volunteers:
/// `cargo test --release -p ecovol-tests --test backup -- --ignored --nocapture backup_speed`
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, minutes long"]
async fn backup_speed() {
    let volunteers: u32 = std::env::var("ECOVOL_BACKUP_VOLUNTEERS").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let spec = NodeSpec::county("330106");
    let node = TestNode::start(spec.clone()).await.unwrap();
    let loading = Instant::now();
    let tasks: Vec<_> = (0..64u32)
        .map(|task| {
            let mut registry = node.volunteers(&node.tokens.staff);
            tokio::spawn(async move {
                for index in (task..volunteers).step_by(64) {
                    registry.register_volunteer(adult(index)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    eprintln!("loaded {volunteers} volunteers in {:.1} s", loading.elapsed().as_secs_f64());
    let backup = node.node(&node.tokens.operator).create_backup(pb::CreateBackupRequest {}).await.unwrap().into_inner();
    let seconds = backup.duration_ms as f64 / 1000.0;
    eprintln!(
        "online backup: {} entries, {:.1} MB in {seconds:.2} s = {:.0} entries/s, {:.1} MB/s (writes held meanwhile)",
        backup.entries,
        backup.bytes as f64 / 1e6,
        backup.entries as f64 / seconds,
        backup.bytes as f64 / 1e6 / seconds
    );
    let (dir, config) = restore_folder(&spec, node.dir.path());
    let config = Config::load_with_env(Some(&config), std::iter::empty()).unwrap();
    let restoring = Instant::now();
    ecovol_node::backup::restore(&config, Path::new(&backup.path), false).unwrap();
    let seconds = restoring.elapsed().as_secs_f64();
    eprintln!(
        "restore (verify pass + write pass + flush): {seconds:.2} s = {:.0} entries/s, {:.1} MB/s",
        backup.entries as f64 / seconds,
        backup.bytes as f64 / 1e6 / seconds
    );
    drop(dir);
    node.stop().await.unwrap();
}

/// A parent restored from a backup older than the acknowledgements it gave: a city restored while its county's
/// later entries are acknowledged and gone from the county's outbox. The county's position check tells the city
/// it lost them; the county starts a new epoch and announces its whole state; the city and the province (through
/// the city) replace what they held of it, and the city's own figures are announced again too. Then the province
/// itself is restored from an old backup: it asks the city for its own state and, through the city, the county.
/// Every level ends exact, nothing counted twice, and new changes flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_or_province_restored_from_a_backup_older_than_its_acknowledgements_resyncs_its_subtree() {
    let mut cluster = Cluster::start(&TOPOLOGY, HOURS_WINDOW).await.unwrap();
    let first = load_county(cluster.node("320102"), 1, 0, 4).await.unwrap();
    let kept: Vec<String> = first.volunteers.iter().map(|(number, _)| number.clone()).collect();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let city_backup = take_backup(&cluster, "320100").await;
    let province_backup = take_backup(&cluster, "320000").await;
    load_county(cluster.node("320102"), 2, 100, 3).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    assert_eq!(registered(&cluster, "320000", "320102").await, 7);

    restore_node(&mut cluster, "320100", &city_backup).await;
    eventually("the city and province count the county exactly after its resync", || {
        county_exact(&cluster, "320102", &["320100", "320000"])
    })
    .await;
    cluster.wait_delivered(DELIVERY).await.unwrap();
    county_exact(&cluster, "320102", &["320100", "320000"]).await.unwrap();
    assert_eq!(registered(&cluster, "320100", "320102").await, 7, "the county's changes since the backup are back");
    assert_eq!(registered(&cluster, "320000", "320102").await, 7, "and counted once at the province");
    minutes_exact(&cluster, "320102", &kept).await.unwrap();
    load_county(cluster.node("320102"), 3, 200, 2).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    county_exact(&cluster, "320102", &["320100", "320000"]).await.unwrap();
    assert_eq!(registered(&cluster, "320000", "320102").await, 9);

    // The province restored from a backup older than everything after the first load.
    restore_node(&mut cluster, "320000", &province_backup).await;
    eventually("the province counts the county exactly after the resync passed down through the city", || {
        county_exact(&cluster, "320102", &["320100", "320000"])
    })
    .await;
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let city = comparable_region(&region_stats(cluster.node("320100"), "").await.unwrap());
    let province = comparable_region(&region_stats(cluster.node("320000"), "320100").await.unwrap());
    assert_eq!(province, city, "the province's view of the city equals the city's own roll-up (ROL-1)");
    assert_eq!(registered(&cluster, "320000", "320102").await, 9);
    minutes_exact(&cluster, "320102", &kept).await.unwrap();
    load_county(cluster.node("320102"), 4, 300, 1).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    county_exact(&cluster, "320102", &["320100", "320000"]).await.unwrap();
    assert_eq!(registered(&cluster, "320000", "320102").await, 10);
    cluster.shutdown().await.unwrap();
}
