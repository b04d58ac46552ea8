//! PRIV-1 and the logs, over a whole federation of real `ecovol` processes: after synthetic office work in two
//! counties (registrations, updates, hours, a reveal, refusals, a federation-wide question), no node other than
//! the registering one holds a volunteer's name, identity number or phone, in its sled files (raw bytes) or in
//! its live keys and values (read back through the store); and no log line of any node, at any level of the
//! hierarchy, logging JSON at debug level (trace for ecovol's own crates), carries an identity number, a phone
//! number or a bearer token.
//!
//! privacy.rs proves the same for one county's own folder and logs; federation.rs scans the raw files of the
//! cities and the province after a larger in-process run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ecovol_node::store::{SledStore, Store};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::node_service_client::NodeServiceClient;
use ecovol_proto::v1::volunteer_service_client::VolunteerServiceClient;
use ecovol_tests::cluster::{Cluster, ClusterNode};
use ecovol_tests::federation_load::{load_county, volunteer};
use ecovol_tests::needles_found_under;

/// A province, two cities, one county under each (GB/T 2260 codes of Jiangsu).
const TOPOLOGY: [(&str, &str, Option<&str>); 5] = [
    ("320000", "province", None),
    ("320100", "city", Some("320000")),
    ("320200", "city", Some("320000")),
    ("320102", "county", Some("320100")),
    ("320205", "county", Some("320200")),
];
const COUNTIES: [&str; 2] = ["320102", "320205"];
const HOURS_WINDOW: &str = "[hours]\nwindow_tolerance_minutes = 10080\n";
/// Everything at debug, ecovol's own crates at trace.
const LOG_FILTER: &str = "debug,ecovol_node=trace,ecovol_coordinator=trace";

/// A node serving as its own process, logging JSON into `log`.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `ecovol serve --log-json` on a stopped cluster node's folder and config (same ports), and gives the
/// cluster node an office channel to it.
async fn serve(node: &mut ClusterNode) -> Running {
    let log = node.dir.join("node.log");
    let child = Command::new(ecovol_tests::ecovol_binary!())
        .args(["serve", "--log-json", "--config"])
        .arg(&node.config_path)
        .env("RUST_LOG", LOG_FILTER)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A file, not a pipe: debug logging would fill a pipe's buffer and block the node.
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut running = Running { child, log };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            panic!("{} exited during start-up: {status}", node.code);
        }
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", node.office)).unwrap();
        if let Ok(channel) = endpoint.connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            if health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.is_ok() {
                node.channel = Some(channel);
                return running;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{} not serving within 30 s", node.code);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until no node below the top has an unacknowledged entry (counties asked before cities).
async fn wait_delivered(cluster: &Cluster) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let order = ["320102", "320205", "320100", "320200"];
    loop {
        let mut pending = Vec::new();
        for code in order {
            let mut client = NodeServiceClient::new(cluster.node(code).staff());
            let status = client.get_federation_status(pb::GetFederationStatusRequest {}).await.unwrap().into_inner();
            let uplink = status.uplink.unwrap_or_default();
            if uplink.backlog > 0 {
                pending.push(format!("{code}: {uplink:?}"));
            }
        }
        if pending.is_empty() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "not delivered: {pending:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Needles found in the live keys and values of a stopped node's store, read through the store.
fn needles_in_store(data: &Path, needles: &[&[u8]]) -> Vec<(String, String)> {
    let store = SledStore::open(data, 8 << 20).unwrap();
    let mut found = Vec::new();
    store
        .scan(b"", None, &mut |key, value| {
            for needle in needles {
                let within = |bytes: &[u8]| bytes.windows(needle.len()).any(|window| window == *needle);
                if within(key) || within(value) {
                    found.push((
                        String::from_utf8_lossy(needle).into_owned(),
                        String::from_utf8_lossy(key).into_owned(),
                    ));
                }
            }
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_above_its_county_and_none_in_any_log_line_at_any_level() {
    // The cluster makes the folders, certificates, configs and accounts; its in-process nodes are then stopped
    // and every node runs again as a real process on the same folder and ports.
    let mut cluster = Cluster::start(&TOPOLOGY, HOURS_WINDOW).await.unwrap();
    let codes: Vec<String> = cluster.nodes.keys().cloned().collect();
    for code in codes.iter().rev() {
        cluster.stop(code).await.unwrap();
    }
    let mut processes = BTreeMap::new();
    for code in &codes {
        let running = serve(cluster.nodes.get_mut(code).unwrap()).await;
        processes.insert(code.clone(), running);
    }

    // Office work in both counties, through every path that touches a person.
    let mut people: BTreeMap<&str, Vec<pb::RegisterVolunteerRequest>> = BTreeMap::new();
    for (index, county) in COUNTIES.into_iter().enumerate() {
        let loaded =
            load_county(cluster.node(county), 20261203 + index as u64, 100 * (index as u32 + 1), 6).await.unwrap();
        people.entry(county).or_default().extend(loaded.volunteers.iter().map(|(_, request)| request.clone()));
        let node = cluster.node(county);
        let mut registry = VolunteerServiceClient::new(node.staff());
        let first = loaded.volunteers[0].0.clone();
        // A new phone (new sealed value, new index), a duplicate and an invalid registration (refusals are
        // logged), the operator's audited reveal (the one answer that carries an identity number).
        let new_phone = format!("137{:08}", 20_000_000 + index);
        registry
            .update_volunteer(pb::UpdateVolunteerRequest {
                volunteer_number: first.clone(),
                phone: Some(new_phone.clone()),
                reason: "换号".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let renumbered = pb::RegisterVolunteerRequest { phone: new_phone, ..loaded.volunteers[0].1.clone() };
        people.get_mut(county).unwrap().push(renumbered);
        let duplicate = registry.register_volunteer(loaded.volunteers[1].1.clone()).await.unwrap_err();
        assert_eq!(duplicate.code(), tonic::Code::AlreadyExists);
        let mut broken = volunteer(county, 900 + index as u32);
        broken.identity_number.replace_range(17.., if broken.identity_number.ends_with('0') { "1" } else { "0" });
        let invalid = registry.register_volunteer(broken.clone()).await.unwrap_err();
        assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
        people.get_mut(county).unwrap().push(broken);
        let mut operator = VolunteerServiceClient::new(node.authed(&node.tokens.operator));
        let revealed = operator
            .reveal_identity_number(pb::RevealIdentityNumberRequest {
                volunteer_number: first.clone(),
                reason: "核对身份".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(revealed.identity_number, loaded.volunteers[0].1.identity_number);
        // A federation-wide question travels up with the volunteer's key.
        let asked = pb::recognition_service_client::RecognitionServiceClient::new(node.staff())
            .get_federation_minutes(pb::GetFederationMinutesRequest { volunteer_number: first })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(asked.answered_by, "320000");
    }
    wait_delivered(&cluster).await;
    let province = ecovol_tests::federation_load::region_stats(cluster.node("320000"), "").await.unwrap();
    assert_eq!(province.totals.unwrap().registered_volunteers, 12, "the work reached the top");

    // Stop every node cleanly (SIGTERM), children first, so the logs and stores are complete.
    for code in codes.iter().rev() {
        cluster.nodes.get_mut(code).unwrap().channel = None;
        let running = processes.get_mut(code).unwrap();
        Command::new("kill").args(["-TERM", &running.child.id().to_string()]).status().unwrap();
        let status = running.child.wait().unwrap();
        assert!(status.success(), "{code} did not stop cleanly: {status}");
    }

    // Logs: every node logged (as JSON, at debug level), and no line carries an identity number, a phone number
    // or a bearer token.
    let mut secrets: Vec<String> = Vec::new();
    for person in people.values().flatten() {
        secrets.push(person.identity_number.clone());
        secrets.push(person.phone.clone());
    }
    for node in cluster.nodes.values() {
        secrets.extend([&node.tokens.operator, &node.tokens.staff, &node.tokens.auditor].map(|t| t.to_string()));
    }
    let mut lines_read = 0;
    for (code, running) in &processes {
        let logs = std::fs::read_to_string(&running.log).unwrap();
        let lines: Vec<&str> = logs.lines().collect();
        lines_read += lines.len();
        assert!(
            lines.iter().any(|line| line.contains("node serving") && line.contains(code.as_str())),
            "{code} logged its start"
        );
        assert!(lines.iter().any(|line| line.contains("\"level\":\"DEBUG\"")), "{code} logged at debug level");
        for (number, line) in lines.iter().enumerate() {
            assert!(line.starts_with('{'), "{code}: line {} is not JSON: {line}", number + 1);
            for secret in &secrets {
                assert!(!line.contains(secret.as_str()), "{code}: log line {} carries {secret}: {line}", number + 1);
            }
        }
    }
    for above in ["320100", "320200", "320000"] {
        let logs = std::fs::read_to_string(&processes[above].log).unwrap();
        assert!(logs.contains("applied entries from a child"), "{above}: its debug lines of the federation are in");
    }
    println!("log lines read: {lines_read}, secrets looked for: {}", secrets.len());

    // Stores: a volunteer's name, identity number and phone are held by the registering county only.
    let personal = |county: &str| -> Vec<String> {
        people[county]
            .iter()
            .flat_map(|p| [p.name.clone(), p.identity_number.clone(), p.phone.clone()])
            .filter(|value| !value.is_empty())
            .collect()
    };
    for county in COUNTIES {
        let own = personal(county);
        let names: Vec<&[u8]> = people[county].iter().map(|p| p.name.as_bytes()).collect();
        let at_home = needles_in_store(&cluster.node(county).data_dir(), &names);
        assert!(!at_home.is_empty(), "the scan finds the names where they are stored");
        let needles: Vec<&[u8]> = own.iter().map(|value| value.as_bytes()).collect();
        for node in cluster.nodes.values().filter(|node| node.code != county) {
            let raw = needles_found_under(&node.data_dir(), &needles);
            assert!(raw.is_empty(), "PRIV-1: {}'s files hold {county}'s personal data: {raw:?}", node.code);
            let live = needles_in_store(&node.data_dir(), &needles);
            assert!(live.is_empty(), "PRIV-1: {}'s store holds {county}'s personal data: {live:?}", node.code);
        }
    }
    drop(processes);
    drop(cluster);
}
