//! The office port with `[office.tls]`: a real node serving TLS with a certificate from a test CA, clients that
//! trust it or not, and client certificates that authenticate as the account bound to their SHA-256.

use ecovol_node::crypto::certificate_sha256;
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::account_service_client::AccountServiceClient;
use ecovol_tests::fixtures::adult;
use ecovol_tests::{Authed, Bearer, NodeSpec, TestNode, tls_channel};
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Identity};

/// A certificate authority of the test: its certificate as PEM, and what signs with it.
struct Authority {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names, no error");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("key generated");
        let certificate = params.self_signed(&key).expect("CA self-signed");
        Authority { pem: certificate.pem(), issuer: Issuer::new(params, key) }
    }

    /// A certificate for `names` (DNS names or IP addresses) with `purpose`, and its key.
    fn issue(&self, common_name: &str, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> (Certificate, KeyPair) {
        let mut params =
            CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).expect("valid names");
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![purpose];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("key generated");
        let certificate = params.signed_by(&key, &self.issuer).expect("certificate signed");
        (certificate, key)
    }

    /// A client certificate and its key as a tonic identity, and the SHA-256 (hex) of its DER.
    fn client(&self, common_name: &str) -> (Identity, String) {
        let (certificate, key) = self.issue(common_name, &[], ExtendedKeyUsagePurpose::ClientAuth);
        (Identity::from_pem(certificate.pem(), key.serialize_pem()), certificate_sha256(certificate.der()))
    }
}

/// A county node serving TLS with a certificate for localhost and 127.0.0.1 from `office`, accepting client
/// certificates from `office` too. The files sit in the node's folder, named relative to its config.
async fn tls_node(office: &Authority) -> TestNode {
    let (server, server_key) =
        office.issue("ecovol 330106", &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let spec = NodeSpec {
        extra_toml:
            "[office.tls]\ncert_file = \"office.pem\"\nkey_file = \"office.key\"\nclient_ca_file = \"clients.pem\"\n"
                .into(),
        ..NodeSpec::county("330106")
    };
    let (server_pem, server_key_pem) = (server.pem(), server_key.serialize_pem());
    let files: [(&str, &[u8]); 3] = [
        ("office.pem", server_pem.as_bytes()),
        ("office.key", server_key_pem.as_bytes()),
        ("clients.pem", office.pem.as_bytes()),
    ];
    TestNode::start_tls(spec, &files, office.pem.as_bytes()).await.expect("TLS node starts")
}

fn accounts(channel: Channel, bearer: Bearer) -> AccountServiceClient<Authed> {
    AccountServiceClient::new(InterceptedService::new(channel, bearer))
}

/// An error with its causes, so the root (e.g. the certificate problem) shows.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Binds `certificate_sha256` to a new staff account; returns the account id.
async fn bind_certificate(node: &TestNode, name: &str, certificate_sha256: &str) -> String {
    node.accounts(&node.tokens.operator)
        .create_account(pb::CreateAccountRequest {
            name: name.into(),
            department: pb::Department::EcologyBureau as i32,
            roles: vec![pb::Role::Staff as i32],
            client_cert_sha256: certificate_sha256.into(),
            ..Default::default()
        })
        .await
        .expect("account created")
        .into_inner()
        .account
        .expect("account in response")
        .account_id
}

#[tokio::test]
async fn a_client_trusting_the_office_ca_works_with_a_bearer_token() {
    let office = Authority::new("ecovol test office CA");
    let node = tls_node(&office).await;
    let me = node.accounts(&node.tokens.staff).who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner();
    let me = me.account.unwrap();
    assert_eq!(me.name, "工作人员 staff");
    assert_eq!(me.roles, [pb::Role::Staff as i32]);
    // Personal data travels on this port: a registration round-trips over TLS.
    let registered = node.volunteers(&node.tokens.staff).register_volunteer(adult(1)).await.unwrap().into_inner();
    assert_eq!(registered.volunteer.unwrap().volunteer_number, "330106-00000001");
    // No token and no certificate: not signed in.
    let anonymous = accounts(node.channel.clone(), Bearer::none()).who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn plain_text_to_the_tls_port_fails() {
    let office = Authority::new("ecovol test office CA");
    let node = tls_node(&office).await;
    let attempt = async {
        let channel = Endpoint::from_shared(format!("http://{}", node.address))?.connect().await?;
        let answer = accounts(channel, Bearer::new(&node.tokens.staff)).who_am_i(pb::WhoAmIRequest {}).await?;
        anyhow::Ok(answer.into_inner())
    };
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), attempt).await.expect("fails quickly");
    assert!(outcome.is_err(), "plain HTTP/2 was served on the TLS port: {outcome:?}");
}

#[tokio::test]
async fn a_client_trusting_another_ca_or_expecting_another_name_is_refused() {
    let office = Authority::new("ecovol test office CA");
    let node = tls_node(&office).await;
    let stranger = Authority::new("some other CA");
    let untrusted = tls_channel(node.address, stranger.pem.as_bytes(), None).await;
    let untrusted = untrusted.map(|_| ()).map_err(|error| chain(error.as_ref()));
    assert!(untrusted.as_ref().is_err_and(|error| error.contains("UnknownIssuer")), "{untrusted:?}");

    let wrong_name = async {
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&office.pem))
            .domain_name("node.example");
        Endpoint::from_shared(format!("https://{}", node.address))?.tls_config(tls)?.connect().await
    };
    let wrong_name = wrong_name.await.map(|_| ()).map_err(|error| chain(&error));
    assert!(
        wrong_name.as_ref().is_err_and(|error| error.contains("certificate not valid for name \"node.example\"")),
        "{wrong_name:?}"
    );
}

#[tokio::test]
async fn a_client_certificate_bound_to_an_account_signs_in_without_a_token() {
    let office = Authority::new("ecovol test office CA");
    let node = tls_node(&office).await;
    let (identity, fingerprint) = office.client("counter desk 3");
    // Bound in upper case, as some tools print fingerprints: the node compares in lower case.
    let account_id = bind_certificate(&node, "窗口三号", &fingerprint.to_uppercase()).await;
    let twice = node
        .accounts(&node.tokens.operator)
        .create_account(pb::CreateAccountRequest {
            name: "窗口三号 again".into(),
            department: pb::Department::EcologyBureau as i32,
            roles: vec![pb::Role::Staff as i32],
            client_cert_sha256: fingerprint.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists, "one certificate, one account");
    let channel = tls_channel(node.address, office.pem.as_bytes(), Some(identity)).await.unwrap();

    let me = accounts(channel.clone(), Bearer::none()).who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner();
    let me = me.account.unwrap();
    assert_eq!(me.account_id, account_id);
    assert_eq!(me.name, "窗口三号");
    assert_eq!(me.client_cert_sha256, fingerprint);
    assert_eq!(me.roles, [pb::Role::Staff as i32]);
    // The certificate carries the account's roles: staff may register.
    let mut volunteers = pb::volunteer_service_client::VolunteerServiceClient::new(InterceptedService::new(
        channel.clone(),
        Bearer::none(),
    ));
    let registered = volunteers.register_volunteer(adult(2)).await.unwrap().into_inner().volunteer.unwrap();
    assert_eq!(registered.volunteer_number, "330106-00000001");

    // A bearer token, when sent, is who the caller is.
    let with_token = accounts(channel.clone(), Bearer::new(&node.tokens.auditor))
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(with_token.account.unwrap().name, "审计 auditor");

    // Revoked: the certificate stops working at once.
    node.accounts(&node.tokens.operator)
        .revoke_account(pb::RevokeAccountRequest { account_id, reason: "desk closed".into() })
        .await
        .unwrap();
    let revoked = accounts(channel, Bearer::none()).who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_client_certificate_bound_to_no_account_is_unauthenticated() {
    let office = Authority::new("ecovol test office CA");
    let node = tls_node(&office).await;
    let (bound, bound_fingerprint) = office.client("counter desk 1");
    let (unbound, unbound_fingerprint) = office.client("counter desk 2");
    assert_ne!(bound_fingerprint, unbound_fingerprint);
    bind_certificate(&node, "窗口一号", &bound_fingerprint).await;
    let channel = tls_channel(node.address, office.pem.as_bytes(), Some(unbound)).await.unwrap();
    let refused = accounts(channel, Bearer::none()).who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(refused.message(), "unknown or revoked credentials");
    // The bound one, from the same CA, is known.
    let channel = tls_channel(node.address, office.pem.as_bytes(), Some(bound)).await.unwrap();
    let me = accounts(channel, Bearer::none()).who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!(me.account.unwrap().name, "窗口一号");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused_even_when_bound() {
    let office = Authority::new("ecovol test office CA");
    let node = tls_node(&office).await;
    let stranger = Authority::new("some other CA");
    let (forged, fingerprint) = stranger.client("counter desk 9");
    // Even bound to an account, a certificate the office CA did not sign must not sign in.
    bind_certificate(&node, "冒名", &fingerprint).await;
    let attempt = async {
        let channel = tls_channel(node.address, office.pem.as_bytes(), Some(forged)).await?;
        let answer = accounts(channel, Bearer::none()).who_am_i(pb::WhoAmIRequest {}).await?;
        anyhow::Ok(answer.into_inner())
    };
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), attempt).await.expect("fails quickly");
    let error = outcome.expect_err("a certificate from another CA was accepted");
    // The node refuses at the handshake: the client hears the TLS alert.
    assert!(format!("{error:?}").contains("UnknownCA"), "{error:?}");
}

use ecovol_tests::run_ecovol as ecovol;

#[tokio::test]
async fn the_command_line_reaches_a_tls_node_only_with_the_right_ca() {
    let office = Authority::new("ecovol test office CA");
    let node = tls_node(&office).await;
    let stranger = Authority::new("some other CA");
    let files = tempfile::tempdir().unwrap();
    let office_ca = files.path().join("office-ca.pem");
    let stranger_ca = files.path().join("stranger-ca.pem");
    std::fs::write(&office_ca, &office.pem).unwrap();
    std::fs::write(&stranger_ca, &stranger.pem).unwrap();
    let https = format!("https://{}", node.address);
    let token = node.tokens.staff.as_str();

    let with_ca = |ca: &std::path::Path| {
        let ca = ca.to_str().unwrap().to_string();
        let https = https.clone();
        async move {
            ecovol(&[
                "--node",
                &https,
                "--ca",
                &ca,
                "--domain",
                "localhost",
                "--token",
                token,
                "-o",
                "json",
                "account",
                "whoami",
            ])
            .await
        }
    };
    let (code, out, err) = with_ca(&office_ca).await;
    assert_eq!(code, 0, "{err}");
    let me: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(me["account"]["name"], "工作人员 staff");

    let (code, out, err) = with_ca(&stranger_ca).await;
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    assert!(err.starts_with(&format!("cannot reach the node at {https} securely: ")), "{err}");
    assert!(err.contains("check --ca"), "{err}");

    let (code, _, err) = ecovol(&["--node", &https, "--token", token, "account", "whoami"]).await;
    assert_eq!(code, 2, "an https:// node without --ca is a usage mistake: {err}");
    assert!(err.contains("--ca FILE"), "{err}");

    let plain = format!("http://{}", node.address);
    let (code, out, err) = ecovol(&["--node", &plain, "--token", token, "account", "whoami"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
}

#[tokio::test]
async fn the_command_line_suggests_https_when_plain_text_meets_a_tls_node() {
    let office = Authority::new("ecovol test office CA");
    let node = tls_node(&office).await;
    let plain = format!("http://{}", node.address);
    let (code, out, err) = ecovol(&["--node", &plain, "--token", &node.tokens.staff, "account", "whoami"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("if the node serves TLS, use --node https://… with --ca"), "{err}");
}

#[tokio::test]
async fn the_command_line_signs_in_with_a_bound_client_certificate_and_no_token() {
    let office = Authority::new("ecovol test office CA");
    let node = tls_node(&office).await;
    let (certificate, key) = office.issue("李四 office PC", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let account_id = bind_certificate(&node, "李四", &certificate_sha256(certificate.der())).await;
    let files = tempfile::tempdir().unwrap();
    let path = |name: &str| files.path().join(name).to_str().unwrap().to_string();
    std::fs::write(path("ca.pem"), &office.pem).unwrap();
    std::fs::write(path("me.pem"), certificate.pem()).unwrap();
    std::fs::write(path("me.key"), key.serialize_pem()).unwrap();
    let https = format!("https://{}", node.address);
    let (code, out, err) = ecovol(&[
        "--node",
        &https,
        "--ca",
        &path("ca.pem"),
        "--domain",
        "localhost",
        "--cert",
        &path("me.pem"),
        "--key",
        &path("me.key"),
        "-o",
        "json",
        "account",
        "whoami",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let me: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(me["account"]["account_id"], account_id.as_str());
    // --cert without --key is a usage mistake, and so is --cert on plain http.
    let (code, _, _) =
        ecovol(&["--node", &https, "--ca", &path("ca.pem"), "--cert", &path("me.pem"), "account", "whoami"]).await;
    assert_eq!(code, 2);
    let plain = format!("http://{}", node.address);
    let (code, _, err) =
        ecovol(&["--node", &plain, "--cert", &path("me.pem"), "--key", &path("me.key"), "account", "whoami"]).await;
    assert_eq!(code, 2, "{err}");
}
