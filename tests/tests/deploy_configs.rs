//! The deployment files of deploy/ hold together: every node.toml there loads with the node's own config loader,
//! the compose topology's configs federate when run as real `ecovol` processes, and deploy/compose/make-certs.sh
//! makes every file those configs name. (scripts/validate-deploy checks the manifests against their schemas.)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecovol_coordinator::region::DivisionCode;
use ecovol_node::config::Config;
use ecovol_node::federation::certs;
use ecovol_proto::v1 as pb;
use ecovol_tests::federation_load::{volunteer, whole_months};
use ecovol_tests::process::{NodeProcess, free_address};
use ecovol_tests::{Bearer, bootstrap_accounts, ecovol_binary};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// The compose federation: (code, compose service, parent code), parents first.
const COMPOSE_NODES: [(&str, &str, Option<&str>); 7] = [
    ("320000", "province-320000", None),
    ("320100", "city-320100", Some("320000")),
    ("320200", "city-320200", Some("320000")),
    ("320102", "county-320102", Some("320100")),
    ("320104", "county-320104", Some("320100")),
    ("320205", "county-320205", Some("320200")),
    ("320206", "county-320206", Some("320200")),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compose_dir() -> PathBuf {
    repo().join("deploy/compose")
}

/// Every node config below `dir`: `node.toml` and `node.example.toml` (other TOML files, such as example plans,
/// are not node configs).
fn node_configs(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            node_configs(&path, found);
        } else if path.file_name().is_some_and(|name| name == "node.toml" || name == "node.example.toml") {
            found.push(path);
        }
    }
}

fn load(path: &Path, env: &[(String, String)]) -> Config {
    Config::load_with_env(Some(path), env.iter().cloned())
        .unwrap_or_else(|error| panic!("{} does not load: {error}", path.display()))
}

#[test]
fn every_node_config_under_deploy_loads() {
    let mut files = Vec::new();
    node_configs(&repo().join("deploy"), &mut files);
    files.sort();
    // The documented example, 7 compose nodes, the systemd county, 3 Kubernetes templates and 7 example nodes.
    assert!(files.len() >= 19, "only {} node configs under deploy/: {files:?}", files.len());
    for path in &files {
        let config = load(path, &[]);
        let shown = path.strip_prefix(repo()).unwrap_or(path).display().to_string();
        let code = config.node.code.clone();
        // A node serving beyond loopback has office TLS (the loader insists), and every node in a federation
        // names its own certificate and key, by its own code, in the layout the manifests mount.
        if let Some(federation) = &config.federation
            && shown != "deploy/node.example.toml"
        {
            for (key, file) in [("cert_file", &federation.cert_file), ("key_file", &federation.key_file)] {
                let name = file.file_name().unwrap().to_string_lossy().to_string();
                assert!(name.starts_with(&code), "{shown}: federation.{key} {name} is not this node's ({code})");
            }
            assert_eq!(
                federation.parent.is_empty(),
                config.node.level == ecovol_node::config::Level::Province,
                "{shown}: only the province has no parent"
            );
        }
        if shown.starts_with("deploy/compose/") || shown.starts_with("deploy/kubernetes/") {
            assert_eq!(config.store.path, Path::new("/var/lib/ecovol/data"), "{shown}: the image's data volume");
            assert!(config.office.tls.is_some(), "{shown}: a container's office port needs TLS");
        }
    }
}

#[test]
fn the_compose_file_mounts_each_node_config_and_its_files() {
    let compose = std::fs::read_to_string(compose_dir().join("compose.yaml")).unwrap();
    for (code, service, parent) in COMPOSE_NODES {
        assert!(compose.contains(&format!("\n  {service}:\n")), "compose.yaml has no service {service}");
        for mount in [
            format!("./{code}/node.toml:/etc/ecovol/node.toml:ro"),
            format!("./certs/{code}:/etc/ecovol/certs:ro"),
            format!("./certs/keys/{code}:/etc/ecovol/keys:ro"),
            format!("{service}-data:/var/lib/ecovol"),
        ] {
            assert!(compose.contains(&mount), "compose.yaml: {service} does not mount {mount}");
        }
        let config = load(&compose_dir().join(code).join("node.toml"), &[]);
        assert_eq!(config.node.code, code);
        let federation = config.federation.as_ref().expect("a compose node is federated");
        match parent {
            Some(parent) => {
                let parent_service = COMPOSE_NODES.iter().find(|(c, _, _)| *c == parent).unwrap().1;
                assert_eq!(federation.parent, format!("https://{parent_service}:7401"), "{code}: its parent's service");
            }
            None => assert!(federation.parent.is_empty()),
        }
        let has_children = COMPOSE_NODES.iter().any(|(_, _, p)| *p == Some(code));
        assert_eq!(federation.listen, if has_children { "0.0.0.0:7401" } else { "" }, "{code}: federation.listen");
    }
}

/// Runs deploy/compose/make-certs.sh (with the binary under test) and checks that every file a compose config
/// names exists where the compose file mounts it, and that each node certificate names its node and service.
#[test]
fn make_certs_makes_every_file_the_compose_configs_name() {
    let out = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        // Twice: a second run keeps what exists.
        let status = Command::new("bash")
            .arg(compose_dir().join("make-certs.sh"))
            .arg(out.path())
            .env("ECOVOL", ecovol_binary!())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "make-certs.sh failed: {status}");
    }
    for (code, service, _) in COMPOSE_NODES {
        // The container's /etc/ecovol, as compose.yaml mounts it.
        let etc = tempfile::tempdir().unwrap();
        std::fs::copy(compose_dir().join(code).join("node.toml"), etc.path().join("node.toml")).unwrap();
        std::os::unix::fs::symlink(out.path().join(code), etc.path().join("certs")).unwrap();
        std::os::unix::fs::symlink(out.path().join("keys").join(code), etc.path().join("keys")).unwrap();
        let config = load(&etc.path().join("node.toml"), &[]);
        let federation = config.federation.as_ref().unwrap();
        let tls = config.office.tls.as_ref().unwrap();
        for file in [
            &config.store.key_file,
            &tls.cert_file,
            &tls.key_file,
            &federation.ca_file,
            &federation.cert_file,
            &federation.key_file,
            &federation.volunteer_key_file,
        ] {
            assert!(file.is_file(), "{code}: {} is missing", file.display());
        }
        let certificate = certs::read_node_cert(&std::fs::read_to_string(&federation.cert_file).unwrap()).unwrap();
        assert_eq!(certificate.identity.code.to_string(), code);
        for host in [service, "localhost", "127.0.0.1"] {
            assert!(certificate.hosts.iter().any(|h| h == host), "{code}: certificate lacks host {host}");
        }
        let shared = |file: &str| std::fs::read(out.path().join(code).join(file)).unwrap();
        assert_eq!(shared("federation.key"), std::fs::read(out.path().join("federation.key")).unwrap());
        assert_eq!(shared("ca.pem"), std::fs::read(out.path().join("ca/ca.pem")).unwrap());
        assert!(!out.path().join(code).join("ca.key").exists(), "{code}: the CA key must not be mounted");
    }
}

/// One node of the compose topology run as a local process.
struct Running {
    process: NodeProcess,
    etc: PathBuf,
    env: Vec<(String, String)>,
}

/// `ecovol health` as the image's HEALTHCHECK runs it (ECOVOL_NODE, ECOVOL_CA), until it passes.
fn wait_healthy(node: &mut Running, office: SocketAddr, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = node.process.child.try_wait().unwrap() {
            panic!("{} exited during start-up: {status}", node.etc.display());
        }
        let healthy = Command::new(ecovol_binary!())
            .arg("health")
            .env("ECOVOL_NODE", format!("https://localhost:{}", office.port()))
            .env("ECOVOL_CA", node.etc.join("certs/ca.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        if healthy {
            return;
        }
        assert!(Instant::now() < deadline, "{} did not become healthy within {within:?}", node.etc.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn office_channel(office: SocketAddr, ca: &Path) -> Channel {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
        .domain_name("localhost");
    Endpoint::from_shared(format!("https://{office}")).unwrap().tls_config(tls).unwrap().connect().await.unwrap()
}

/// The compose configs, unchanged but for what only a container has (its own network address, its volume),
/// which the documented `ECOVOL__SECTION__KEY` overrides replace with loopback ports and a temporary folder:
/// seven real `ecovol serve` processes over mutual TLS. A volunteer registered at a county reaches the province.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_topology_federates() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let (ca_pem, ca_key) = certs::generate_ca("compose-test").unwrap();
    let federation_key = root.path().join("federation.key");
    certs::write_federation_key(&federation_key, false).unwrap();
    let mut offices = BTreeMap::new();
    let mut federation_ports = BTreeMap::new();
    for (code, _, _) in COMPOSE_NODES {
        offices.insert(code, free_address().unwrap());
        federation_ports.insert(code, free_address().unwrap());
    }
    let mut nodes: BTreeMap<&str, Running> = BTreeMap::new();
    let mut tokens = BTreeMap::new();
    for (code, service, parent) in COMPOSE_NODES {
        // /etc/ecovol as the compose file mounts it: node.toml, certs/, keys/.
        let etc = root.path().join(code);
        let certs_dir = etc.join("certs");
        std::fs::create_dir_all(&certs_dir).unwrap();
        std::fs::create_dir_all(etc.join("keys")).unwrap();
        std::fs::copy(compose_dir().join(code).join("node.toml"), etc.join("node.toml")).unwrap();
        let hosts = [service.to_string(), "localhost".into(), "127.0.0.1".into()];
        let (cert, key) = certs::issue_node_cert(&ca_pem, &ca_key, DivisionCode::parse(code).unwrap(), &hosts).unwrap();
        std::fs::write(certs_dir.join(format!("{code}.pem")), cert).unwrap();
        std::fs::write(certs_dir.join(format!("{code}.key")), key).unwrap();
        std::fs::write(certs_dir.join("ca.pem"), &ca_pem).unwrap();
        std::fs::copy(&federation_key, certs_dir.join("federation.key")).unwrap();
        ecovol_node::crypto::NodeKeys::generate_file(&etc.join("keys/node.key")).unwrap();

        let compose_config = load(&etc.join("node.toml"), &[]);
        let federation = compose_config.federation.as_ref().unwrap();
        let mut env = vec![
            ("ECOVOL__STORE__PATH".to_string(), etc.join("data").display().to_string()),
            ("ECOVOL__OFFICE__LISTEN".to_string(), offices[code].to_string()),
        ];
        if !federation.listen.is_empty() {
            env.push(("ECOVOL__FEDERATION__LISTEN".into(), federation_ports[code].to_string()));
        }
        if let Some(parent) = parent {
            // The compose address is the parent's service name; the child checks the parent's certificate by its
            // node name (320100.city.node.ecovol), whatever the address.
            let parent_service = COMPOSE_NODES.iter().find(|(c, _, _)| *c == parent).unwrap().1;
            assert_eq!(federation.parent, format!("https://{parent_service}:7401"));
            env.push(("ECOVOL__FEDERATION__PARENT".into(), format!("https://{}", federation_ports[parent])));
        }
        // The first accounts are made offline, before the node starts (deploy/README.md).
        if code == "320000" || code == "320102" {
            let config = load(&etc.join("node.toml"), &env);
            tokens.insert(code, bootstrap_accounts(&config).await.unwrap().staff);
        }
        let child = Command::new(ecovol_binary!())
            .args(["serve", "--config"])
            .arg(etc.join("node.toml"))
            .envs(env.iter().cloned())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut running = Running { process: NodeProcess { child, address: offices[code] }, etc, env };
        wait_healthy(&mut running, offices[code], Duration::from_secs(20));
        nodes.insert(code, running);
    }
    eprintln!("compose topology: 7 nodes serving after {:?}", started.elapsed());

    let county_channel = office_channel(offices["320102"], &nodes["320102"].etc.join("certs/ca.pem")).await;
    let mut registry = pb::volunteer_service_client::VolunteerServiceClient::new(InterceptedService::new(
        county_channel,
        Bearer::new(&tokens["320102"]),
    ));
    registry.register_volunteer(volunteer("320102", 1)).await.unwrap();

    let province_channel = office_channel(offices["320000"], &nodes["320000"].etc.join("certs/ca.pem")).await;
    let mut stats = pb::stats_service_client::StatsServiceClient::new(InterceptedService::new(
        province_channel,
        Bearer::new(&tokens["320000"]),
    ));
    let (start_date, end_date) = whole_months();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let request = pb::GetRegionStatsRequest {
            region: String::new(),
            start_date: start_date.clone(),
            end_date: end_date.clone(),
        };
        let answer = stats.get_region_stats(request).await.unwrap().into_inner();
        let registered = answer.totals.as_ref().map_or(0, |totals| totals.registered_volunteers);
        if registered == 1 {
            let nanjing = answer.parts.iter().find(|part| part.code == "320100");
            assert!(nanjing.is_some(), "the province counts the volunteer but shows no part for 南京市: {answer:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the province does not count the volunteer registered at 320102 (registered: {registered}); env of the \
             county: {:?}",
            nodes["320102"].env
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("compose topology: the province counts the county's volunteer after {:?}", started.elapsed());
    drop(registry);
    drop(stats);
    // Parents last, as compose stops them (SIGTERM): each exits 0 after flushing its store.
    for (code, _, _) in COMPOSE_NODES.iter().rev() {
        let node = nodes.remove(code).unwrap();
        let status = node.process.terminate().unwrap();
        assert!(status.success(), "{code} did not stop cleanly: {status}");
    }
}
