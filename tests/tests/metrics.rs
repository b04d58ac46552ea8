//! Monitoring and the certificate operations it watches: Prometheus metrics on their own port (calls by method
//! and code, latencies, committer, outbox, children, store, certificate expiry), the federation deny list, and
//! reloading certificates on SIGHUP without a restart.

use std::path::Path;
use std::time::Duration;

use ecovol_coordinator::region::DivisionCode;
use ecovol_node::federation::certs;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::node_service_client::NodeServiceClient;
use ecovol_tests::cluster::Cluster;
use ecovol_tests::federation_load::{load_county, region_stats};
use ecovol_tests::fixtures::adult;
use ecovol_tests::{NodeSpec, TestNode, free_port};

use ecovol_tests::run_ecovol as ecovol;

/// `GET path` on the metrics port; (status line, body).
async fn http_get(port: u16, path: &str) -> (String, String) {
    ecovol_tests::http_get(port, path).await.unwrap()
}

/// The value of the sample `series` (name with labels, exactly as exposed).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_port_counts_calls_by_method_and_code_and_reports_the_node() {
    let port = free_port();
    let extra = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let node = TestNode::start(NodeSpec { extra_toml: extra, ..NodeSpec::county("330106") }).await.unwrap();
    let staff = node.tokens.staff.clone();
    for _ in 0..3 {
        node.node(&staff).get_node_info(pb::GetNodeInfoRequest {}).await.unwrap();
    }
    let refused = node.node(&staff).create_backup(pb::CreateBackupRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    node.anonymous_volunteers()
        .get_volunteer(pb::GetVolunteerRequest { volunteer_number: "x".into() })
        .await
        .unwrap_err();
    node.volunteers(&staff).register_volunteer(adult(1)).await.unwrap();

    let (status, body) = http_get(port, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let info = "ecovol.v1.NodeService/GetNodeInfo";
    assert_eq!(sample(&body, &format!("ecovol_grpc_requests_total{{method=\"{info}\",code=\"Ok\"}}")), Some(3.0));
    assert_eq!(
        sample(
            &body,
            "ecovol_grpc_requests_total{method=\"ecovol.v1.NodeService/CreateBackup\",code=\"PermissionDenied\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "ecovol_grpc_requests_total{method=\"ecovol.v1.VolunteerService/GetVolunteer\",code=\"Unauthenticated\"}"
        ),
        Some(1.0)
    );
    assert_eq!(sample(&body, &format!("ecovol_grpc_request_duration_seconds_count{{method=\"{info}\"}}")), Some(3.0));
    assert_eq!(
        sample(&body, &format!("ecovol_grpc_request_duration_seconds_bucket{{method=\"{info}\",le=\"+Inf\"}}")),
        Some(3.0)
    );
    assert!(body.contains("# TYPE ecovol_grpc_request_duration_seconds histogram"));
    assert!(sample(&body, "ecovol_committer_jobs_total").unwrap() >= 2.0, "the registration and the refusal");
    assert!(sample(&body, "ecovol_committer_flushes_total").unwrap() >= 1.0);
    assert!(sample(&body, "ecovol_committer_flush_seconds_total").unwrap() > 0.0);
    // Flush latency as a histogram: every flush in one bucket series, cumulative up to +Inf = count.
    assert!(body.contains("# TYPE ecovol_committer_flush_duration_seconds histogram"), "{body}");
    let flushes = sample(&body, "ecovol_committer_flush_duration_seconds_count").unwrap();
    assert!(flushes >= 1.0);
    assert_eq!(sample(&body, "ecovol_committer_flush_duration_seconds_bucket{le=\"+Inf\"}"), Some(flushes));
    assert!(sample(&body, "ecovol_committer_flush_duration_seconds_sum").unwrap() > 0.0);
    let buckets: Vec<f64> = body
        .lines()
        .filter(|line| line.starts_with("ecovol_committer_flush_duration_seconds_bucket{"))
        .map(|line| line.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert!(buckets.len() > 2 && buckets.windows(2).all(|pair| pair[0] <= pair[1]), "cumulative: {buckets:?}");
    assert!(sample(&body, "ecovol_store_size_bytes").unwrap() > 0.0);
    assert_eq!(sample(&body, "ecovol_outbox_backlog_entries"), Some(0.0), "a stand-alone node queues nothing");
    assert_eq!(sample(&body, "ecovol_outbox_alarm"), Some(0.0));
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(&body, &format!("ecovol_node_info{{code=\"330106\",level=\"county\",version=\"{version}\"}}")),
        Some(1.0)
    );
    // Every sample line is `name{labels} value` or `name value` with a number.
    for line in body.lines().filter(|line| !line.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    // Counters move with the next calls.
    node.node(&staff).get_node_info(pb::GetNodeInfoRequest {}).await.unwrap();
    let (_, body) = http_get(port, "/metrics").await;
    assert_eq!(sample(&body, &format!("ecovol_grpc_requests_total{{method=\"{info}\",code=\"Ok\"}}")), Some(4.0));
    assert_eq!(http_get(port, "/other").await.0, "HTTP/1.1 404 Not Found");
    node.stop().await.unwrap();
}

/// Adds `text` right after the `[federation]` line of a node's config (or at the end), for the next start.
fn add_to_config(path: &Path, text: &str, federation: bool) {
    let config = std::fs::read_to_string(path).unwrap();
    let config = if federation {
        config.replacen("[federation]\n", &format!("[federation]\n{text}"), 1)
    } else {
        format!("{config}\n{text}")
    };
    std::fs::write(path, config).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_reports_its_children_and_its_certificate_and_refuses_denied_nodes() {
    let topology: [(&str, &str, Option<&str>); 4] = [
        ("320000", "province", None),
        ("320100", "city", Some("320000")),
        ("320102", "county", Some("320100")),
        ("320104", "county", Some("320100")),
    ];
    let mut cluster = Cluster::start(&topology, "").await.unwrap();
    load_county(cluster.node("320102"), 7, 0, 3).await.unwrap();
    cluster.wait_delivered(Duration::from_secs(60)).await.unwrap();

    // The city gets a metrics port, and denies 320104 by code and 320102's certificate by its SHA-256.
    let port = free_port();
    let city = cluster.node("320100").config_path.clone();
    add_to_config(&city, &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"), false);
    cluster.restart("320100").await.unwrap();
    // A child that has delivered nothing yet (320104) is known again once it pulls after the restart.
    let mut body = String::new();
    for _ in 0..100 {
        body = http_get(port, "/metrics").await.1;
        if body.contains("ecovol_child_stale{child=\"320104\"}") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for child in ["320102", "320104"] {
        assert_eq!(sample(&body, &format!("ecovol_child_stale{{child=\"{child}\"}}")), Some(0.0), "{body}");
        assert!(sample(&body, &format!("ecovol_child_last_contact_age_seconds{{child=\"{child}\"}}")).is_some());
    }
    assert!(sample(&body, "ecovol_child_entries_applied_total{child=\"320102\"}").unwrap() > 0.0);
    let days = sample(&body, "ecovol_certificate_days_left{certificate=\"federation\"}").unwrap();
    assert!((700.0..=732.0).contains(&days), "a new node certificate lasts two years: {days}");
    assert_eq!(sample(&body, "ecovol_uplink_error{parent=\"320000\"}"), Some(0.0));

    // `ecovol certs inspect` prints the SHA-256 a deny list names (`issue` and `init` are the other new names).
    let cert = cluster.node("320102").dir.join("node.pem");
    let (code, out, err) = ecovol(&["-o", "json", "certs", "inspect", cert.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    let inspected: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(inspected["certificate"]["division_code"], "320102");
    let sha = inspected["certificate"]["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);
    let (code, out, _) =
        ecovol(&["-o", "json", "certs", "inspect", cluster.files.dir.join("ca.pem").to_str().unwrap()]).await;
    assert_eq!(code, 0);
    assert!(out.contains("CA certificate"), "any certificate is inspected: {out}");
    let pki = cluster.root.path().join("pki");
    let pki = pki.to_str().unwrap();
    assert_eq!(ecovol(&["certs", "init", "--dir", pki]).await.0, 0);
    let (code, _, err) = ecovol(&["certs", "issue", "--dir", pki, "--code", "320102", "--level", "city"]).await;
    assert_eq!(code, 2, "the level must agree with the code: {err}");
    assert!(err.contains("--level city does not match --code 320102: it is a county code"), "{err}");
    assert_eq!(ecovol(&["certs", "issue", "--dir", pki, "--code", "320102", "--level", "county"]).await.0, 0);
    add_to_config(&city, &format!("denied = [\"320104\", \"{sha}\"]\n"), true);
    cluster.restart("320100").await.unwrap();
    for county in ["320102", "320104"] {
        let identity = std::fs::read_to_string(cluster.node(county).dir.join("node.pem")).unwrap();
        let key = std::fs::read_to_string(cluster.node(county).dir.join("node.key.pem")).unwrap();
        let mut client =
            cluster.federation_client("320100", &cluster.files.ca_pem, Some((identity, key))).await.unwrap();
        let refused = client.pull(pb::PullRequest { after_seq: 0, max: 10 }).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{county}: {refused:?}");
        assert!(refused.message().contains("federation.denied"), "{refused:?}");
    }
    // The denied county keeps its changes (nothing is dropped) and says why it cannot deliver.
    load_county(cluster.node("320102"), 8, 100, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let uplink = cluster.status("320102").await.unwrap().uplink.unwrap();
    assert!(uplink.backlog > 0 && uplink.last_error.contains("PermissionDenied"), "{uplink:?}");
    cluster.shutdown().await.unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_certificates_without_a_restart_and_loses_nothing() {
    let topology: [(&str, &str, Option<&str>); 3] =
        [("320000", "province", None), ("320100", "city", Some("320000")), ("320102", "county", Some("320100"))];
    let cluster = Cluster::start(&topology, "[hours]\nwindow_tolerance_minutes = 10080\n").await.unwrap();
    load_county(cluster.node("320102"), 11, 0, 3).await.unwrap();
    cluster.wait_delivered(Duration::from_secs(60)).await.unwrap();
    let hangup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .expect("kill is installed");
        assert!(status.success());
    };

    // 1. The county gets a new certificate of the same CA: after SIGHUP its links restart with it, and what it
    // records keeps arriving exactly once.
    let county = cluster.node("320102");
    let (cert, key) = cluster.files.node_identity("320102").unwrap();
    std::fs::write(county.dir.join("node.pem"), cert).unwrap();
    std::fs::write(county.dir.join("node.key.pem"), key).unwrap();
    hangup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    load_county(cluster.node("320102"), 12, 100, 2).await.unwrap();
    cluster.wait_delivered(Duration::from_secs(60)).await.unwrap();
    let province = region_stats(cluster.node("320000"), "320102").await.unwrap();
    assert_eq!(province.totals.unwrap().registered_volunteers, 5);

    // 2. The city's federation port serves a certificate from new files at once: a client that trusts only the
    // new certificate's CA is refused before SIGHUP and served after it, without the city restarting.
    let (ca2, ca2_key) = certs::generate_ca("rotated").unwrap();
    let (city_cert, city_key) =
        certs::issue_node_cert(&ca2, &ca2_key, DivisionCode::parse("320100").unwrap(), &["localhost".into()]).unwrap();
    let identity = std::fs::read_to_string(county.dir.join("node.pem")).unwrap();
    let identity_key = std::fs::read_to_string(county.dir.join("node.key.pem")).unwrap();
    let before = cluster.federation_client("320100", &ca2, Some((identity.clone(), identity_key.clone()))).await;
    let refused = match before {
        Err(_) => true,
        Ok(mut client) => client.pull(pb::PullRequest { after_seq: 0, max: 1 }).await.is_err(),
    };
    assert!(refused, "before the reload the city presents its old certificate");
    let city = cluster.node("320100");
    std::fs::write(city.dir.join("node.pem"), city_cert).unwrap();
    std::fs::write(city.dir.join("node.key.pem"), city_key).unwrap();
    let started = NodeServiceClient::new(city.staff())
        .get_node_info(pb::GetNodeInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .started_at;
    hangup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut client = cluster.federation_client("320100", &ca2, Some((identity, identity_key))).await.unwrap();
    client.pull(pb::PullRequest { after_seq: 0, max: 1 }).await.unwrap();
    let still = NodeServiceClient::new(city.staff())
        .get_node_info(pb::GetNodeInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .started_at;
    assert_eq!(started, still, "the city did not restart");
    cluster.shutdown().await.unwrap();
}
