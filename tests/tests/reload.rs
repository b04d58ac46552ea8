//! Operating a running node's certificates, on a real `ecovol serve` process: office-client certificates issued
//! by `ecovol certs` and bound to accounts, and SIGHUP reloading the deny list and the office port's certificate,
//! key and client CA without a restart (and refusing an invalid config).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::account_service_client::AccountServiceClient;
use ecovol_proto::v1::federation_service_client::FederationServiceClient;
use ecovol_proto::v1::node_service_client::NodeServiceClient;
use ecovol_tests::{Bearer, free_port, tls_channel};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use ecovol_tests::run_ecovol as ecovol;

/// `ecovol ARGS` that must succeed; returns its standard output.
async fn ecovol_ok(args: &[&str]) -> String {
    let (code, out, err) = ecovol(args).await;
    assert_eq!(code, 0, "ecovol {args:?}: {err}");
    out
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// A city node (320100, no parent) with its federation port and TLS on its office port, running as a real
/// process whose log goes to `log`. Made entirely with the `ecovol` command line: a federation CA with the
/// city's and a county's certificates, and an office CA with two client certificates, one of them bound to a
/// staff account.
struct City {
    dir: tempfile::TempDir,
    office_port: u16,
    federation_port: u16,
    config: PathBuf,
    log: PathBuf,
    operator_token: String,
    /// SHA-256 of `office/front-desk.pem`, bound to the staff account "前台".
    front_desk_sha256: String,
    process: Option<Child>,
}

impl City {
    async fn create() -> City {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (pki, office) = (root.join("pki"), root.join("office"));
        ecovol_ok(&["certs", "init", "--dir", path(&pki), "--name", "test"]).await;
        ecovol_ok(&["certs", "issue", "--dir", path(&pki), "--code", "320100", "--host", "localhost"]).await;
        ecovol_ok(&["certs", "issue", "--dir", path(&pki), "--code", "320102"]).await;
        ecovol_ok(&["certs", "federation-key", "--out", path(&pki.join("federation.key"))]).await;
        ecovol_ok(&["certs", "init", "--office", "--dir", path(&office), "--name", "320100"]).await;
        let issued = ecovol_ok(&[
            "-o",
            "json",
            "certs",
            "issue",
            "--client",
            "front-desk",
            "--name",
            "前台",
            "--dir",
            path(&office),
        ])
        .await;
        let issued: serde_json::Value = serde_json::from_str(&issued).unwrap();
        let front_desk_sha256 = issued["sha256"].as_str().unwrap().to_string();
        ecovol_ok(&["certs", "issue", "--client", "stranger", "--name", "陌生人", "--dir", path(&office)]).await;
        ecovol_node::crypto::NodeKeys::generate_file(&root.join("node.key")).unwrap();

        let mut city = City {
            office_port: free_port(),
            federation_port: free_port(),
            config: root.join("node.toml"),
            log: root.join("ecovol.log"),
            operator_token: String::new(),
            front_desk_sha256,
            process: None,
            dir,
        };
        city.write_config("pki/320100.pem", "pki/320100.key", "office/office-ca.pem", "[]", "");
        let config = path(&city.config).to_string();
        let created = ecovol_ok(&[
            "-o",
            "json",
            "account",
            "create",
            "--config",
            &config,
            "--name",
            "运维",
            "--department",
            "ecology-bureau",
            "--role",
            "operator",
        ])
        .await;
        let created: serde_json::Value = serde_json::from_str(&created).unwrap();
        city.operator_token = created["token"].as_str().unwrap().to_string();
        ecovol_ok(&[
            "account",
            "create",
            "--config",
            &config,
            "--name",
            "前台",
            "--department",
            "ecology-bureau",
            "--role",
            "staff",
            "--client-cert-sha256",
            &city.front_desk_sha256,
        ])
        .await;
        city
    }

    /// Writes the config with these office TLS files, deny list and extra TOML.
    fn write_config(&self, cert: &str, key: &str, client_ca: &str, denied: &str, extra: &str) {
        let text = format!(
            "[node]\ncode = \"320100\"\nlevel = \"city\"\nname = \"测试市\"\n\n\
             [store]\npath = \"data\"\nkey_file = \"node.key\"\ncache_capacity_mb = 16\n\n\
             [office]\nlisten = \"127.0.0.1:{}\"\n\n\
             [office.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\nclient_ca_file = \"{client_ca}\"\n\n\
             [federation]\nca_file = \"pki/ca.pem\"\ncert_file = \"pki/320100.pem\"\nkey_file = \"pki/320100.key\"\n\
             volunteer_key_file = \"pki/federation.key\"\nlisten = \"127.0.0.1:{}\"\ndenied = {denied}\n{extra}",
            self.office_port, self.federation_port
        );
        std::fs::write(&self.config, text).unwrap();
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `ecovol serve` and waits until the office port answers health checks over TLS.
    async fn start(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(ecovol_tests::ecovol_binary!())
            .args(["serve", "--config", path(&self.config)])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.process.as_mut().unwrap().try_wait().unwrap() {
                panic!("ecovol exited during start-up ({status}): {}", read(&self.log));
            }
            if self.serves(&read(&self.file("pki/ca.pem"))).await {
                return;
            }
            assert!(Instant::now() < deadline, "ecovol did not become ready: {}", read(&self.log));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A channel to the office port trusting `ca_pem`, presenting a client certificate if given.
    async fn channel(&self, ca_pem: &str, identity: Option<Identity>) -> anyhow::Result<Channel> {
        let address = format!("127.0.0.1:{}", self.office_port).parse()?;
        tls_channel(address, ca_pem.as_bytes(), identity).await
    }

    /// True if a client trusting `ca_pem` gets a health answer from the office port (its certificate is one
    /// that CA signed).
    async fn serves(&self, ca_pem: &str) -> bool {
        let Ok(channel) = self.channel(ca_pem, None).await else { return false };
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.is_ok()
    }

    /// Who the office port says the holder of `identity` (client certificate files, no token) is.
    async fn who_is(&self, ca_pem: &str, cert: &str, key: &str) -> Result<pb::Account, String> {
        let identity = Identity::from_pem(read(&self.file(cert)), read(&self.file(key)));
        let channel = self.channel(ca_pem, Some(identity)).await.map_err(|error| format!("connect: {error:?}"))?;
        let answer = AccountServiceClient::new(channel).who_am_i(pb::WhoAmIRequest {}).await;
        match answer {
            Ok(answer) => Ok(answer.into_inner().account.unwrap()),
            Err(status) if status.code() == Code::Unauthenticated => {
                Err(format!("unauthenticated: {}", status.message()))
            }
            Err(status) => Err(format!("call: {status:?}")),
        }
    }

    fn operator(&self, channel: Channel) -> AccountServiceClient<InterceptedService<Channel, Bearer>> {
        AccountServiceClient::new(InterceptedService::new(channel, Bearer::new(&self.operator_token)))
    }

    /// A `Pull` on the federation port by the county 320102 (its certificate from the federation CA).
    async fn county_pull(&self) -> Result<(), tonic::Status> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&self.file("pki/ca.pem"))))
            .identity(Identity::from_pem(read(&self.file("pki/320102.pem")), read(&self.file("pki/320102.key"))))
            .domain_name("320100.city.node.ecovol");
        let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{}", self.federation_port)).unwrap();
        let channel = endpoint.tls_config(tls).unwrap().connect().await.expect("the federation port accepts 320102");
        FederationServiceClient::new(channel).pull(pb::PullRequest { after_seq: 0, max: 10 }).await.map(drop)
    }

    /// Sends SIGHUP and waits until the log holds `expected` one more time than before.
    async fn hangup_and_wait_for(&self, expected: &str) {
        let before = read(&self.log).matches(expected).count();
        let pid = self.process.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while read(&self.log).matches(expected).count() == before {
            assert!(Instant::now() < deadline, "no {expected:?} in the log after SIGHUP:\n{}", read(&self.log));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for City {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_client_signs_in_with_a_certificate_the_command_line_issued() {
    let mut city = City::create().await;
    city.start().await;
    let ca = read(&city.file("pki/ca.pem"));

    // The certificate bound to an account signs in as that account, with its roles: over gRPC and with the
    // command line's --cert/--key.
    let me = city.who_is(&ca, "office/front-desk.pem", "office/front-desk.key").await.unwrap();
    assert_eq!((me.name.as_str(), me.roles.as_slice()), ("前台", [pb::Role::Staff as i32].as_slice()));
    let node = format!("https://localhost:{}", city.office_port);
    let (cert, key) = (city.file("office/front-desk.pem"), city.file("office/front-desk.key"));
    let out = ecovol_ok(&[
        "-o",
        "json",
        "--node",
        &node,
        "--ca",
        path(&city.file("pki/ca.pem")),
        "--cert",
        path(&cert),
        "--key",
        path(&key),
        "account",
        "whoami",
    ])
    .await;
    assert!(out.contains("前台"), "{out}");

    // A certificate of the office CA that no account names is unknown; a node certificate (federation CA) and
    // a certificate of another office's CA are refused by TLS itself.
    let unknown = city.who_is(&ca, "office/stranger.pem", "office/stranger.key").await.unwrap_err();
    assert_eq!(unknown, "unauthenticated: unknown or revoked credentials");
    let node_certificate = city.who_is(&ca, "pki/320102.pem", "pki/320102.key").await.unwrap_err();
    assert!(!node_certificate.starts_with("unauthenticated"), "refused before any account lookup: {node_certificate}");
    let elsewhere = city.file("elsewhere");
    ecovol_ok(&["certs", "init", "--office", "--dir", path(&elsewhere), "--name", "320104"]).await;
    ecovol_ok(&["certs", "issue", "--client", "desk", "--name", "别处", "--dir", path(&elsewhere)]).await;
    let foreign = city.who_is(&ca, "elsewhere/desk.pem", "elsewhere/desk.key").await.unwrap_err();
    assert!(!foreign.starts_with("unauthenticated"), "refused before any account lookup: {foreign}");
    // Refused handshakes are logged with the peer's address (rate-limited), not only at debug level.
    let log = read(&city.log);
    assert!(log.contains("TLS handshake refused") && log.contains("127.0.0.1:"), "{log}");

    // Revoking the account revokes the certificate at once.
    let mut operator = city.operator(city.channel(&ca, None).await.unwrap());
    let accounts = operator.list_accounts(pb::ListAccountsRequest::default()).await.unwrap().into_inner().accounts;
    let front_desk = accounts.iter().find(|account| account.client_cert_sha256 == city.front_desk_sha256).unwrap();
    operator
        .revoke_account(pb::RevokeAccountRequest {
            account_id: front_desk.account_id.clone(),
            reason: "the certificate's laptop was lost".into(),
        })
        .await
        .unwrap();
    let revoked = city.who_is(&ca, "office/front-desk.pem", "office/front-desk.key").await.unwrap_err();
    assert_eq!(revoked, "unauthenticated: unknown or revoked credentials");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_deny_list_and_the_office_certificates_and_refuses_an_invalid_config() {
    let mut city = City::create().await;
    city.start().await;
    let ca = read(&city.file("pki/ca.pem"));
    let operator_channel = city.channel(&ca, None).await.unwrap();
    let started =
        NodeServiceClient::new(InterceptedService::new(operator_channel.clone(), Bearer::new(&city.operator_token)))
            .get_node_info(pb::GetNodeInfoRequest {})
            .await
            .unwrap()
            .into_inner()
            .started_at;
    city.county_pull().await.unwrap();

    // 1. The deny list: 320102 is refused once the config names it and SIGHUP is sent.
    let office_files = ("pki/320100.pem", "pki/320100.key", "office/office-ca.pem");
    city.write_config(office_files.0, office_files.1, office_files.2, "[\"320102\"]", "");
    city.hangup_and_wait_for("SIGHUP: reloaded federation.denied (1 entries)").await;
    let refused = city.county_pull().await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("federation.denied"), "{refused:?}");

    // 2. The office port: a new certificate (from a new CA) at new paths, and a new office CA for clients.
    let rotated = city.file("rotated");
    ecovol_ok(&["certs", "init", "--dir", path(&rotated), "--name", "rotated"]).await;
    ecovol_ok(&["certs", "issue", "--dir", path(&rotated), "--code", "320100", "--host", "localhost"]).await;
    ecovol_ok(&["certs", "init", "--office", "--dir", path(&rotated), "--name", "320100 (2027)"]).await;
    let issued = ecovol_ok(&[
        "-o",
        "json",
        "certs",
        "issue",
        "--client",
        "new-desk",
        "--name",
        "新前台",
        "--dir",
        path(&rotated),
    ])
    .await;
    let new_desk_sha256 =
        serde_json::from_str::<serde_json::Value>(&issued).unwrap()["sha256"].as_str().unwrap().to_string();
    city.operator(operator_channel.clone())
        .create_account(pb::CreateAccountRequest {
            name: "新前台".into(),
            department: pb::Department::EcologyBureau as i32,
            roles: vec![pb::Role::Staff as i32],
            client_cert_sha256: new_desk_sha256,
            ..Default::default()
        })
        .await
        .unwrap();
    let rotated_ca = read(&rotated.join("ca.pem"));
    assert!(!city.serves(&rotated_ca).await, "before SIGHUP the office port presents the old certificate");
    city.write_config("rotated/320100.pem", "rotated/320100.key", "rotated/office-ca.pem", "[\"320102\"]", "");
    city.hangup_and_wait_for("and the office port's certificate, key and client CA").await;
    let me = city.who_is(&rotated_ca, "rotated/new-desk.pem", "rotated/new-desk.key").await.unwrap();
    assert_eq!(me.name, "新前台");
    let old_client = city.who_is(&rotated_ca, "office/front-desk.pem", "office/front-desk.key").await.unwrap_err();
    assert!(!old_client.starts_with("unauthenticated"), "the old office CA is no longer trusted: {old_client}");
    assert!(!city.serves(&ca).await, "new connections get the new certificate");
    assert!(city.serves(&rotated_ca).await);

    // 3. An invalid config changes nothing: the error is logged, the old deny list and certificates stay.
    city.write_config("rotated/320100.pem", "rotated/320100.key", "rotated/office-ca.pem", "[\"not a code\"]", "");
    city.hangup_and_wait_for("SIGHUP: nothing reloaded").await;
    assert!(read(&city.log).contains("federation.denied[0]"), "the log names the broken key:\n{}", read(&city.log));
    assert_eq!(city.county_pull().await.unwrap_err().code(), Code::PermissionDenied);
    city.write_config("pki/320100.pem", "pki/missing.key", "rotated/office-ca.pem", "[]", "");
    city.hangup_and_wait_for("SIGHUP: nothing reloaded").await;
    assert!(read(&city.log).contains("missing.key"), "{}", read(&city.log));
    assert_eq!(
        city.county_pull().await.unwrap_err().code(),
        Code::PermissionDenied,
        "nothing applied, not even denied"
    );
    city.who_is(&rotated_ca, "rotated/new-desk.pem", "rotated/new-desk.key").await.unwrap();

    // 4. Back to an empty deny list; a setting that needs a restart is named, not applied.
    city.write_config("rotated/320100.pem", "rotated/320100.key", "rotated/office-ca.pem", "[]", "");
    let text = read(&city.config).replace("cache_capacity_mb = 16", "cache_capacity_mb = 32");
    std::fs::write(&city.config, text).unwrap();
    city.hangup_and_wait_for("SIGHUP: reloaded federation.denied (0 entries)").await;
    city.county_pull().await.unwrap();
    assert!(
        read(&city.log).contains("take effect only at the next restart") && read(&city.log).contains("[store]"),
        "{}",
        read(&city.log)
    );

    // The connection opened before the reloads still works, and the node never restarted.
    let still = NodeServiceClient::new(InterceptedService::new(operator_channel, Bearer::new(&city.operator_token)))
        .get_node_info(pb::GetNodeInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .started_at;
    assert_eq!(started, still, "the node did not restart");
}
