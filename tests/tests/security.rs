//! Nobody gets in where they do not belong: every attack of issue 7's list, against real nodes over real
//! (mutual) TLS with certificates made in the test, refused with the right gRPC code and, where the node answers
//! the call at all, audited on the refusing node. docs/RELIABILITY.md "Security tests" maps each attack to its
//! test, here or in the files that already prove it (tls.rs, roles.rs, audit.rs, federation.rs, metrics.rs,
//! plans.rs, hours.rs, signup_rush.rs).

use std::time::Duration;

use ecovol_coordinator::region::DivisionCode;
use ecovol_node::federation::certs;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::audit_service_client::AuditServiceClient;
use ecovol_proto::v1::federation_service_client::FederationServiceClient;
use ecovol_tests::cluster::{Cluster, ClusterNode, JIANGSU};
use ecovol_tests::federation_load::up_entry;
use ecovol_tests::federation_load::{region_stats, volunteer};
use ecovol_tests::{NodeSpec, TestNode};
use prost::Message as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use tonic::Code;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Identity};

const DELIVERY: Duration = Duration::from_secs(60);

/// Every audit entry of a cluster node, read by its auditor.
async fn trail(node: &ClusterNode) -> Vec<pb::AuditEntry> {
    let mut audit = AuditServiceClient::new(node.authed(&node.tokens.auditor));
    let mut request = pb::ListAuditEntriesRequest { page_size: 500, ..Default::default() };
    let mut entries = Vec::new();
    loop {
        let page = audit.list_audit_entries(request.clone()).await.unwrap().into_inner();
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return entries;
        }
        request.page_token = page.next_page_token;
    }
}

/// The denied entries of `operation` by `account_id`, as (outcome, detail).
fn denied(entries: &[pb::AuditEntry], operation: &str, account_id: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.operation == operation && e.account_id == account_id && e.outcome == pb::Outcome::Denied as i32)
        .map(|e| e.detail.clone())
        .collect()
}

/// Waits (up to 15 s) until `read` finds denied `TlsHandshake/<port>` entries whose details name every reason of
/// `reasons`; returns the details. A refused handshake is audited by the acceptor after the client has its refusal.
async fn handshake_refusals_audited<F, Fut>(port: &str, reasons: &[&str], read: F) -> Vec<String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<pb::AuditEntry>>,
{
    let operation = format!("TlsHandshake/{port}");
    let mut details = Vec::new();
    for _ in 0..150 {
        details = read()
            .await
            .iter()
            .filter(|e| e.operation == operation && e.outcome == pb::Outcome::Denied as i32)
            .map(|e| e.detail.clone())
            .collect();
        if reasons.iter().all(|reason| details.iter().any(|detail| detail.contains(&format!("({reason})")))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    details
}

/// The federation CA of a cluster as an rcgen issuer. The CA's parameters are rebuilt (same subject, same
/// key), which is all a signature and the issuer name of a child certificate depend on.
fn federation_issuer(cluster: &Cluster) -> Issuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "ecovol federation CA (test)");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Issuer::new(params, KeyPair::from_pem(&cluster.files.ca_key_pem).expect("the CA key reads"))
}

/// A calendar day as (year, month, day).
type Day = (i32, u8, u8);

/// What a forged or odd node certificate looks like.
struct Forgery<'a> {
    common_name: &'a str,
    names: &'a [&'a str],
    /// (not_before, not_after) as (year, month, day); `None`: from yesterday for a year.
    validity: Option<(Day, Day)>,
}

/// A client certificate signed by `issuer` as described: (certificate PEM, key PEM, SHA-256 of the DER).
fn forge(issuer: &Issuer<'_, KeyPair>, forgery: &Forgery<'_>) -> (String, String, String) {
    let names: Vec<String> = forgery.names.iter().map(|name| name.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("valid names");
    params.distinguished_name.push(DnType::CommonName, forgery.common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    if let Some(((y1, m1, d1), (y2, m2, d2))) = forgery.validity {
        params.not_before = rcgen::date_time_ymd(y1, m1, d1);
        params.not_after = rcgen::date_time_ymd(y2, m2, d2);
    } else {
        let today = chrono::Utc::now().date_naive();
        let (year, month, day) =
            (chrono::Datelike::year(&today), chrono::Datelike::month(&today), chrono::Datelike::day(&today));
        params.not_before = rcgen::date_time_ymd(year - 1, month as u8, day.min(28) as u8);
        params.not_after = rcgen::date_time_ymd(year + 1, month as u8, day.min(28) as u8);
    }
    let key = KeyPair::generate().expect("key generated");
    let certificate = params.signed_by(&key, issuer).expect("certificate signed");
    (certificate.pem(), key.serialize_pem(), ecovol_node::crypto::certificate_sha256(certificate.der()))
}

/// The certificate and key of a forgery, as a client identity.
fn identity((cert, key, _): &(String, String, String)) -> Option<(String, String)> {
    Some((cert.clone(), key.clone()))
}

/// An error and its causes on one line, so a TLS alert deep in the chain shows.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(" <- ");
        text.push_str(&format!("{cause:?}"));
        source = cause.source();
    }
    text
}

/// Connects to `target`'s federation port trusting the cluster's CA and presenting `identity` (cert chain PEM,
/// key PEM), then pulls once. Returns the refusal, wherever it happened (handshake or call), as text.
async fn refused_at_handshake(cluster: &Cluster, target: &str, identity: Option<(String, String)>) -> String {
    let attempt = async {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&cluster.files.ca_pem))
            .domain_name(certs::node_dns_name(DivisionCode::parse(target)?));
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        let channel = Endpoint::from_shared(format!("https://{}", cluster.node(target).federation))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|error| anyhow::anyhow!(chain(&error)))?;
        let answer = FederationServiceClient::new(channel).pull(pb::PullRequest { after_seq: 0, max: 1 }).await;
        let answer = answer.map_err(|status| anyhow::anyhow!("{status:?} {}", chain(&status)))?;
        anyhow::Ok(answer.into_inner())
    };
    match tokio::time::timeout(Duration::from_secs(15), attempt).await.expect("a refusal comes quickly") {
        Ok(answer) => panic!("served: {answer:?}"),
        Err(error) => format!("{error:#}"),
    }
}

/// True if `refusal` is the TLS alert `alert`, or a connection the server dropped at the transport level. With
/// TLS 1.3 the server checks the client's certificate after the client considers the handshake done, so the
/// client reads the alert only if it reads before its next write fails (a broken pipe, a reset, a connection
/// never ready). A handler's answer is never a transport error.
fn is_handshake_refusal(refusal: &str, alert: &str) -> bool {
    refusal.contains(alert) || refusal.contains("Error(Transport")
}

fn push(entries: Vec<pb::UpEntry>) -> pb::PushRequest {
    pb::PushRequest { entries, backlog: 0 }
}

/// A node's own certificate and key, as its folder holds them.
fn own_identity(node: &ClusterNode) -> (String, String) {
    let read = |name: &str| std::fs::read_to_string(node.dir.join(name)).expect("node files");
    (read("node.pem"), read("node.key.pem"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_refusals_get_the_right_code_and_are_audited_by_the_refusing_node() {
    // Province, Nanjing (320100) with Xuanwu (320102), and Wuxi (320200).
    let mut cluster = Cluster::start(&JIANGSU[..4], "").await.unwrap();
    let files = &cluster.files;
    let as_node = async |target: &str, code: &str| {
        let identity = files.node_identity(code).unwrap();
        cluster.federation_client(target, &files.ca_pem, Some(identity)).await.unwrap()
    };

    // A county sending entries of its sibling, or of its own parent (AUTH-1).
    let mut xuanwu = as_node("320100", "320102").await;
    for origin in ["320104", "320100"] {
        let refused = xuanwu.push(push(vec![up_entry(origin, 1, 100)])).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{origin}: {refused:?}");
        assert!(refused.message().contains("AUTH-1"), "{}", refused.message());
    }
    // A county of another city (Wuxi's Xishan, 320205) asking Nanjing: not a child, for any call.
    let mut xishan = as_node("320100", "320205").await;
    let key = "0123456789abcdef0123456789abcdef".to_string();
    let codes = [
        xishan.push(push(vec![up_entry("320205", 1, 100)])).await.map(|_| ()),
        xishan.pull(pb::PullRequest { after_seq: 0, max: 10 }).await.map(|_| ()),
        xishan.volunteer_minutes(pb::VolunteerMinutesRequest { volunteer_key: key.clone() }).await.map(|_| ()),
    ]
    .map(|result| result.unwrap_err().code());
    assert_eq!(codes, [Code::PermissionDenied; 3]);
    // A county skipping its city: the province answers none of its calls.
    let mut skipping = as_node("320000", "320102").await;
    let codes = [
        skipping.push(push(vec![up_entry("320102", 1, 100)])).await.map(|_| ()),
        skipping.pull(pb::PullRequest { after_seq: 0, max: 10 }).await.map(|_| ()),
        skipping.volunteer_minutes(pb::VolunteerMinutesRequest { volunteer_key: key.clone() }).await.map(|_| ()),
    ]
    .map(|result| result.unwrap_err().code());
    assert_eq!(codes, [Code::PermissionDenied; 3]);

    // Claims of a higher level with certificates the federation CA signed: a county code named as a city, and a
    // county certificate carrying the city's node name beside its own, are no node identity at all; a county
    // certificate whose subject says "province" is still the county its node name says.
    let issuer = federation_issuer(&cluster);
    let as_city = forge(
        &issuer,
        &Forgery { common_name: "ecovol node 320102 (city)", names: &["320102.city.node.ecovol"], validity: None },
    );
    let doubled = forge(
        &issuer,
        &Forgery {
            common_name: "ecovol node 320102 (county)",
            names: &["320102.county.node.ecovol", "320100.city.node.ecovol"],
            validity: None,
        },
    );
    let mut certificate_shas = Vec::new();
    for forged in [&as_city, &doubled] {
        certificate_shas.push(forged.2.clone());
        let mut client = cluster.federation_client("320000", &files.ca_pem, identity(forged)).await.unwrap();
        let refused = client.push(push(vec![up_entry("320100", 1, 100)])).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        assert!(refused.message().contains("names no ecovol node"), "{}", refused.message());
    }
    let province_subject = forge(
        &issuer,
        &Forgery {
            common_name: "ecovol node 320000 (province)",
            names: &["320102.county.node.ecovol"],
            validity: None,
        },
    );
    let mut client = cluster.federation_client("320000", &files.ca_pem, identity(&province_subject)).await.unwrap();
    let refused = client.push(push(vec![up_entry("320000", 1, 100)])).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "the county is no child of the province: {refused:?}");

    // A sibling's or another city's figures, asked at a node's own office port: that node holds none of them.
    for (node, region) in [("320102", "320104"), ("320100", "320205")] {
        let asked = region_stats(cluster.node(node), region).await.unwrap_err();
        let status = asked.downcast_ref::<tonic::Status>().expect("a gRPC status");
        assert_eq!(status.code(), Code::InvalidArgument, "{node} asked for {region}: {status:?}");
        assert!(status.message().contains("region"), "{status:?}");
    }
    // Nothing of it reached a roll-up.
    for node in ["320100", "320000"] {
        let stats = region_stats(cluster.node(node), "").await.unwrap();
        assert_eq!(stats.totals.unwrap().confirmed_hours_x100, 0, "{node}");
    }

    // Each refusal is in the trail of the node that refused it, naming the peer and the reason.
    let city = trail(cluster.node("320100")).await;
    let sibling = denied(&city, "FederationService/Push", "node/320102");
    assert_eq!(sibling.len(), 2, "{city:?}");
    assert!(sibling[0].contains("320104") && sibling[0].contains("AUTH-1"), "{sibling:?}");
    for operation in ["Push", "Pull", "VolunteerMinutes"] {
        let found = denied(&city, &format!("FederationService/{operation}"), "node/320205");
        assert_eq!(found.len(), 1, "{operation}: {city:?}");
        assert!(found[0].contains("not a child of 320100"), "{found:?}");
    }
    let province = trail(cluster.node("320000")).await;
    for operation in ["Push", "Pull", "VolunteerMinutes"] {
        let found = denied(&province, &format!("FederationService/{operation}"), "node/320102");
        let expected = if operation == "Push" { 2 } else { 1 };
        assert_eq!(found.len(), expected, "{operation}: {province:?}");
    }
    for sha in &certificate_shas {
        let found = denied(&province, "FederationService/Push", &format!("certificate/{sha}"));
        assert_eq!(found.len(), 1, "{sha}: {province:?}");
        assert!(found[0].contains("names no ecovol node"), "{found:?}");
    }
    let refusals = province.iter().filter(|e| e.operation.starts_with("FederationService/")).count();
    assert_eq!(refusals, 6, "accepted federation calls (the real city's pushes and pulls) stay unaudited");

    // Revocation: Nanjing denies Qinhuai (320104) by code and one certificate of Xuanwu by its SHA-256.
    let revoked = forge(
        &issuer,
        &Forgery { common_name: "ecovol node 320102 (county)", names: &["320102.county.node.ecovol"], validity: None },
    );
    let revoked_sha = revoked.2.clone();
    let config = cluster.node("320100").config_path.clone();
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen("[federation]\n", &format!("[federation]\ndenied = [\"320104\", \"{revoked_sha}\"]\n"), 1);
    std::fs::write(&config, text).unwrap();
    cluster.restart("320100").await.unwrap();
    let files = &cluster.files;
    let mut qinhuai =
        cluster.federation_client("320100", &files.ca_pem, Some(files.node_identity("320104").unwrap())).await.unwrap();
    let mut revoked = cluster.federation_client("320100", &files.ca_pem, identity(&revoked)).await.unwrap();
    for client in [&mut qinhuai, &mut revoked] {
        let refused = client.pull(pb::PullRequest { after_seq: 0, max: 10 }).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains("federation.denied"), "{refused:?}");
    }
    // Xuanwu's own certificate still works: the deny list names one certificate, not the node.
    let mut xuanwu =
        cluster.federation_client("320100", &files.ca_pem, Some(own_identity(cluster.node("320102")))).await.unwrap();
    xuanwu.pull(pb::PullRequest { after_seq: 0, max: 10 }).await.unwrap();
    let city = trail(cluster.node("320100")).await;
    assert_eq!(denied(&city, "FederationService/Pull", "node/320104").len(), 1, "{city:?}");
    let by_certificate = denied(&city, "FederationService/Pull", "node/320102");
    assert_eq!(by_certificate.len(), 1, "{city:?}");
    assert!(by_certificate[0].contains("federation.denied"), "{by_certificate:?}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_federation_port_refuses_foreign_expired_unsigned_and_plain_text_peers_at_the_handshake() {
    let cluster = Cluster::start(&JIANGSU[..2], "").await.unwrap();
    // A certificate of another federation's CA, for a real child's code.
    let stranger =
        ecovol_tests::cluster::FederationFiles::create(&cluster.root.path().join("stranger"), "other").unwrap();
    let refusal = refused_at_handshake(&cluster, "320000", Some(stranger.node_identity("320100").unwrap())).await;
    assert!(is_handshake_refusal(&refusal, "UnknownCA"), "{refusal}");
    // A certificate of this CA that has expired.
    let issuer = federation_issuer(&cluster);
    let expired = forge(
        &issuer,
        &Forgery {
            common_name: "ecovol node 320100 (city)",
            names: &["320100.city.node.ecovol"],
            validity: Some(((2020, 1, 1), (2021, 1, 1))),
        },
    );
    let refusal = refused_at_handshake(&cluster, "320000", identity(&expired)).await;
    assert!(is_handshake_refusal(&refusal, "CertificateExpired"), "{refusal}");
    // A certificate "signed as city": issued by the city's node key instead of the CA, presented with the
    // city's certificate as its chain. A node certificate is no CA.
    let (city_cert, city_key) = own_identity(cluster.node("320100"));
    let mut city_params = CertificateParams::default();
    city_params.distinguished_name.push(DnType::CommonName, "ecovol node 320100 (city)");
    let city_issuer = Issuer::new(city_params, KeyPair::from_pem(&city_key).unwrap());
    let (county_cert, county_key, _) = forge(
        &city_issuer,
        &Forgery { common_name: "ecovol node 320102 (county)", names: &["320102.county.node.ecovol"], validity: None },
    );
    let refusal =
        refused_at_handshake(&cluster, "320000", Some((format!("{county_cert}{city_cert}"), county_key))).await;
    assert!(is_handshake_refusal(&refusal, "UnknownCA"), "{refusal}");
    // No client certificate at all.
    let refusal = refused_at_handshake(&cluster, "320000", None).await;
    assert!(is_handshake_refusal(&refusal, "CertificateRequired"), "{refusal}");
    // Plain-text HTTP/2 to the federation port.
    let plain = async {
        let channel = Endpoint::from_shared(format!("http://{}", cluster.node("320000").federation))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(3))
            .connect()
            .await?;
        let answer = FederationServiceClient::new(channel).pull(pb::PullRequest { after_seq: 0, max: 1 }).await?;
        anyhow::Ok(answer.into_inner())
    };
    let plain = tokio::time::timeout(Duration::from_secs(15), plain).await.expect("a refusal comes quickly");
    assert!(plain.is_err(), "plain text was served on the federation port: {plain:?}");
    // Each refusal is in the province's audit trail, under the peer's address, with its reason.
    let reasons = ["unknown_ca", "expired", "no_certificate", "not_tls"];
    let details = handshake_refusals_audited("federation", &reasons, || trail(cluster.node("320000"))).await;
    for reason in reasons {
        assert!(details.iter().any(|detail| detail.contains(&format!("({reason})"))), "{reason}: {details:?}");
    }
    let by_address = trail(cluster.node("320000")).await;
    assert!(
        by_address.iter().any(|e| e.operation == "TlsHandshake/federation" && e.account_id == "peer/127.0.0.1"),
        "audited under the peer's address"
    );
    // The real child still delivers: the refusals cost the port nothing.
    let mut registry = pb::volunteer_service_client::VolunteerServiceClient::new(cluster.node("320100").staff());
    registry.register_volunteer(volunteer("320100", 1)).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let stats = region_stats(cluster.node("320000"), "320100").await.unwrap();
    assert_eq!(stats.totals.unwrap().registered_volunteers, 1);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_client_certificate_is_refused_on_the_office_port_even_when_bound() {
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name.push(DnType::CommonName, "ecovol test office CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let office = Issuer::new(ca_params, ca_key);
    let (server_cert, server_key, _) =
        forge(&office, &Forgery { common_name: "ecovol 330106", names: &["localhost", "127.0.0.1"], validity: None });
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spec = NodeSpec {
        extra_toml: format!(
            "[office.tls]\ncert_file = \"office.pem\"\nkey_file = \"office.key\"\nclient_ca_file = \"clients.pem\"\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
        ),
        ..NodeSpec::county("330106")
    };
    let files: [(&str, &[u8]); 3] = [
        ("office.pem", server_cert.as_bytes()),
        ("office.key", server_key.as_bytes()),
        ("clients.pem", ca_pem.as_bytes()),
    ];
    let node = TestNode::start_tls(spec, &files, ca_pem.as_bytes()).await.unwrap();
    let (expired_cert, expired_key, sha) = forge(
        &office,
        &Forgery { common_name: "counter desk 7", names: &[], validity: Some(((2020, 1, 1), (2021, 1, 1))) },
    );
    // Bound to a staff account: still refused, because the handshake checks the validity first.
    node.accounts(&node.tokens.operator)
        .create_account(pb::CreateAccountRequest {
            name: "窗口七号".into(),
            department: pb::Department::EcologyBureau as i32,
            roles: vec![pb::Role::Staff as i32],
            client_cert_sha256: sha,
            ..Default::default()
        })
        .await
        .unwrap();
    let attempt = async {
        let channel = ecovol_tests::tls_channel(
            node.address,
            ca_pem.as_bytes(),
            Some(Identity::from_pem(expired_cert, expired_key)),
        )
        .await?;
        let mut accounts = pb::account_service_client::AccountServiceClient::new(channel);
        anyhow::Ok(accounts.who_am_i(pb::WhoAmIRequest {}).await?.into_inner())
    };
    let outcome = tokio::time::timeout(Duration::from_secs(15), attempt).await.expect("a refusal comes quickly");
    let error = outcome.expect_err("an expired certificate signed in");
    assert!(is_handshake_refusal(&format!("{error:?}"), "CertificateExpired"), "{error:?}");
    // The refusal is audited (under the client's address) and counted in the metrics, by port and reason.
    let read = || async {
        let request = pb::ListAuditEntriesRequest { page_size: 500, ..Default::default() };
        node.audit(&node.tokens.auditor).list_audit_entries(request).await.unwrap().into_inner().entries
    };
    let details = handshake_refusals_audited("office", &["expired"], read).await;
    assert!(details.iter().any(|detail| detail.contains("(expired)")), "{details:?}");
    let (_, metrics) = ecovol_tests::http_get(metrics_port, "/metrics").await.unwrap();
    let series = "ecovol_tls_handshake_refusals_total{port=\"office\",reason=\"expired\"}";
    let count = ecovol_tests::metric_value(&metrics, series).unwrap_or_else(|| panic!("no {series} in {metrics}"));
    assert!(count >= 1.0, "{count}");
}

/// A department or role reading what it may not is refused and audited like a refused write, under its own
/// account and department; an allowed read leaves no entry.
#[tokio::test]
async fn refused_reads_are_audited_like_refused_writes() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let tokens = node.tokens.clone();
    let registered = node.volunteers(&tokens.staff).register_volunteer(volunteer("330106", 1)).await.unwrap();
    let number = registered.into_inner().volunteer.unwrap().volunteer_number;
    // Staff listing accounts (the operator's), the operator reading the trail (the auditor's), the auditor reading
    // a volunteer (the registry's).
    let refused = node.accounts(&tokens.staff).list_accounts(pb::ListAccountsRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = audit_client(&node, &tokens.operator)
        .list_audit_entries(pb::ListAuditEntriesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = node
        .volunteers(&tokens.auditor)
        .get_volunteer(pb::GetVolunteerRequest { volunteer_number: number.clone() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    // Allowed reads.
    node.volunteers(&tokens.staff_civil_affairs)
        .get_volunteer(pb::GetVolunteerRequest { volunteer_number: number.clone() })
        .await
        .unwrap();
    node.accounts(&tokens.operator).list_accounts(pb::ListAccountsRequest::default()).await.unwrap();

    let entries = audit_client(&node, &tokens.auditor)
        .list_audit_entries(pb::ListAuditEntriesRequest { page_size: 500, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let denied_reads: Vec<(&str, &str, i32)> = entries
        .iter()
        .filter(|e| e.outcome == pb::Outcome::Denied as i32)
        .map(|e| (e.operation.as_str(), e.account_name.as_str(), e.department))
        .collect();
    assert_eq!(denied_reads.len(), 3, "{entries:?}");
    assert_eq!(
        denied_reads.iter().map(|(operation, _, _)| *operation).collect::<Vec<_>>(),
        ["AccountService/ListAccounts", "AuditService/ListAuditEntries", "VolunteerService/GetVolunteer"],
        "{entries:?}"
    );
    assert!(denied_reads[2].1.contains("auditor"), "under the caller's own account: {denied_reads:?}");
    let details: Vec<&str> =
        entries.iter().filter(|e| e.outcome == pb::Outcome::Denied as i32).map(|e| e.detail.as_str()).collect();
    assert!(details.iter().all(|detail| !detail.is_empty()), "the reason is kept: {details:?}");
    assert!(
        !entries.iter().any(|e| e.outcome == pb::Outcome::Ok as i32 && e.operation == "VolunteerService/GetVolunteer"),
        "allowed reads are not audited"
    );
}

/// A channel to a plain-text test node.
fn audit_client(node: &TestNode, token: &str) -> AuditServiceClient<ecovol_tests::Authed> {
    node.audit(token)
}

/// A unary call to any method path with an empty request, as a client that ignores the proto would make it.
async fn call_unknown_method(channel: Channel, token: &str, path: &'static str) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(Empty);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    grpc.unary::<Empty, Empty, _>(request, tonic::codegen::http::uri::PathAndQuery::from_static(path), EmptyCodec)
        .await
        .unwrap_err()
}

/// An empty protobuf message and its codec (any method's empty request is zero bytes).
#[derive(Debug, Clone, Copy, Default)]
struct Empty;
#[derive(Debug, Clone, Copy, Default)]
struct EmptyCodec;

impl tonic::codec::Codec for EmptyCodec {
    type Encode = Empty;
    type Decode = Empty;
    type Encoder = EmptyCodec;
    type Decoder = EmptyCodec;

    fn encoder(&mut self) -> Self::Encoder {
        EmptyCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        EmptyCodec
    }
}

impl tonic::codec::Encoder for EmptyCodec {
    type Item = Empty;
    type Error = tonic::Status;

    fn encode(&mut self, _: Empty, _: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        Ok(())
    }
}

impl tonic::codec::Decoder for EmptyCodec {
    type Item = Empty;
    type Error = tonic::Status;

    fn decode(&mut self, _: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Empty>, tonic::Status> {
        Ok(Some(Empty))
    }
}

#[tokio::test]
async fn departments_act_only_for_themselves_and_the_audit_trail_cannot_be_deleted() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let tokens = node.tokens.clone();
    // Civil affairs drafting a plan the ecology bureau leads: refused and audited under its own department.
    let draft = pb::DraftPlanRequest {
        title: "2026年联合工作计划".into(),
        period_start: ecovol_node::wire::today_china().to_string(),
        period_end: (ecovol_node::wire::today_china() + chrono::Duration::days(60)).to_string(),
        lead_departments: vec![pb::Department::EcologyBureau as i32],
        participating_departments: vec![pb::Department::EcologyBureau as i32, pb::Department::CivilAffairs as i32],
        areas: vec![pb::CooperationArea::TeamBuilding as i32],
        tasks: vec![pb::PlanTask {
            task_id: "platform".into(),
            title: "平台对接".into(),
            owner: pb::Department::CivilAffairs as i32,
            due_date: (ecovol_node::wire::today_china() + chrono::Duration::days(30)).to_string(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut civil =
        pb::plan_service_client::PlanServiceClient::new(tonic::service::interceptor::InterceptedService::new(
            node.channel.clone(),
            ecovol_tests::Bearer::new(&tokens.staff_civil_affairs),
        ));
    let refused = civil.draft_plan(draft.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    // Drafted by the lead department, then submitted by civil affairs: refused too.
    let mut ecology =
        pb::plan_service_client::PlanServiceClient::new(tonic::service::interceptor::InterceptedService::new(
            node.channel.clone(),
            ecovol_tests::Bearer::new(&tokens.staff),
        ));
    let plan_id = ecology.draft_plan(draft).await.unwrap().into_inner().plan.unwrap().plan_id;
    let refused = civil.submit_plan(pb::PlanRequest { plan_id: plan_id.clone() }).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // The operator has no way to delete, edit or even read audit records: the API has no such method, a made-up
    // one is unimplemented, and reading is the auditor's.
    let descriptors = prost_types::FileDescriptorSet::decode(ecovol_proto::FILE_DESCRIPTOR_SET).unwrap();
    let audit_methods: Vec<String> = descriptors
        .file
        .iter()
        .flat_map(|file| file.service.iter())
        .filter(|service| service.name() == "AuditService")
        .flat_map(|service| service.method.iter().map(|method| method.name().to_string()))
        .collect();
    assert_eq!(audit_methods, ["ListAuditEntries"], "the audit API only reads");
    let every_method: Vec<String> = descriptors
        .file
        .iter()
        .flat_map(|file| file.service.iter())
        .flat_map(|service| service.method.iter().map(|method| method.name().to_string()))
        .collect();
    assert!(every_method.iter().all(|name| !name.contains("Audit") || name == "ListAuditEntries"), "{every_method:?}");
    for path in ["/ecovol.v1.AuditService/DeleteAuditEntries", "/ecovol.v1.AuditService/PurgeAuditEntries"] {
        let refused = call_unknown_method(node.channel.clone(), &tokens.operator, path).await;
        assert_eq!(refused.code(), Code::Unimplemented, "{path}: {refused:?}");
    }
    let refused =
        audit_client(&node, &tokens.operator).list_audit_entries(pb::ListAuditEntriesRequest::default()).await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
    // The auditor attempting a change: refused, audited (roles.rs checks every write of every role).
    let refused = node
        .accounts(&tokens.auditor)
        .revoke_account(pb::RevokeAccountRequest { account_id: "1".into(), reason: "cover tracks".into() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let entries = audit_client(&node, &tokens.auditor)
        .list_audit_entries(pb::ListAuditEntriesRequest { page_size: 500, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let denied_plans: Vec<(&str, i32)> = entries
        .iter()
        .filter(|e| e.operation.starts_with("PlanService/") && e.outcome == pb::Outcome::Denied as i32)
        .map(|e| (e.operation.as_str(), e.department))
        .collect();
    assert_eq!(
        denied_plans,
        [
            ("PlanService/DraftPlan", pb::Department::CivilAffairs as i32),
            ("PlanService/SubmitPlan", pb::Department::CivilAffairs as i32)
        ],
        "{entries:?}"
    );
    assert!(
        entries.iter().any(|e| e.operation == "AccountService/RevokeAccount"
            && e.outcome == pb::Outcome::Denied as i32
            && e.account_name.contains("auditor")),
        "{entries:?}"
    );
    // Nothing is missing: the trail is gap-free from the first bootstrap account on.
    let sequences: Vec<u64> = entries.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_batch_replayed_counts_nothing_twice_and_a_sibling_cannot_replay_it() {
    let mut cluster = Cluster::start(&JIANGSU[..4], "").await.unwrap();
    // Capture: while Nanjing is away, Xuanwu's changes wait in its outbox; read them from its stopped store.
    cluster.stop("320100").await.unwrap();
    let mut registry = pb::volunteer_service_client::VolunteerServiceClient::new(cluster.node("320102").staff());
    for index in 0..3 {
        registry.register_volunteer(volunteer("320102", index)).await.unwrap();
    }
    drop(registry);
    cluster.stop("320102").await.unwrap();
    let captured = {
        let store = ecovol_node::store::SledStore::open(&cluster.node("320102").data_dir(), 8 << 20).unwrap();
        let mut entries = Vec::new();
        ecovol_node::store::Store::scan(&store, b"out/320102/", None, &mut |_, value| {
            entries.push(pb::UpEntry::decode(value).expect("an outbox entry"));
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        entries
    };
    assert!(captured.len() >= 3, "{captured:?}");
    cluster.start_again("320102").await.unwrap();
    cluster.start_again("320100").await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let before = (
        region_stats(cluster.node("320100"), "320102").await.unwrap().totals,
        region_stats(cluster.node("320000"), "").await.unwrap().totals,
    );
    assert_eq!(before.0.as_ref().unwrap().registered_volunteers, 3);

    // The same batch again, with Xuanwu's own certificate: acknowledged, applied no second time.
    let last = captured.last().unwrap().seq;
    let mut xuanwu = cluster
        .federation_client("320100", &cluster.files.ca_pem, Some(own_identity(cluster.node("320102"))))
        .await
        .unwrap();
    for _ in 0..3 {
        let answer = xuanwu.push(push(captured.clone())).await.unwrap().into_inner();
        let acks: Vec<(String, u64)> = answer.acks.into_iter().map(|ack| (ack.origin, ack.seq)).collect();
        assert_eq!(acks, [("320102".to_string(), last)]);
    }
    // Replayed by its sibling Qinhuai: refused whole, audited.
    let mut qinhuai = cluster
        .federation_client("320100", &cluster.files.ca_pem, Some(cluster.files.node_identity("320104").unwrap()))
        .await
        .unwrap();
    let refused = qinhuai.push(push(captured)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let after = (
        region_stats(cluster.node("320100"), "320102").await.unwrap().totals,
        region_stats(cluster.node("320000"), "").await.unwrap().totals,
    );
    assert_eq!(after, before, "the replays changed no figure at the city or the province");
    let city = trail(cluster.node("320100")).await;
    assert_eq!(denied(&city, "FederationService/Push", "node/320104").len(), 1, "{city:?}");
    cluster.shutdown().await.unwrap();
}
