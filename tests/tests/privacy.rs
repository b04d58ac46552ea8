//! Identity and phone numbers are encrypted at rest: not one of them appears in plain text in any file of the
//! node's data directory, nor in the node's logs.

use std::process::Stdio;

use ecovol_proto::v1 as pb;
use ecovol_tests::fixtures::adult;
use ecovol_tests::process::free_address;
use ecovol_tests::{NodeSpec, TestNode, bytes_occur_under, write_node_files};

#[tokio::test]
async fn no_identity_or_phone_number_in_plain_text_in_the_data_directory() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let mut client = node.volunteers(&node.tokens.staff);
    let people: Vec<pb::RegisterVolunteerRequest> = (0..50).map(adult).collect();
    for person in &people {
        client.register_volunteer(person.clone()).await.unwrap();
    }
    // Updates write new versions and new indexes: those must be sealed too.
    client
        .update_volunteer(pb::UpdateVolunteerRequest {
            volunteer_number: "330106-00000001".into(),
            phone: Some("13612345678".into()),
            reason: "new phone".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let data = node.data_dir();
    let _kept = node.stop().await.unwrap();
    // The scan is only meaningful if the records are really on disk: the names (not secret) must be found.
    assert!(bytes_occur_under(&data, "志愿者17".as_bytes()).is_some(), "records not found on disk at all");
    for person in &people {
        assert_eq!(bytes_occur_under(&data, person.identity_number.as_bytes()), None, "identity number in plain text");
        assert_eq!(bytes_occur_under(&data, person.phone.as_bytes()), None, "phone in plain text");
    }
    assert_eq!(bytes_occur_under(&data, b"13612345678"), None);
}

#[tokio::test]
async fn logs_carry_no_identity_or_phone_numbers_even_at_debug_level() {
    let dir = tempfile::tempdir().unwrap();
    let address = free_address().unwrap();
    let config_path = write_node_files(dir.path(), &NodeSpec::county("330106"), &address.to_string()).unwrap();
    let config = ecovol_node::config::Config::load_with_env(Some(&config_path), std::iter::empty()).unwrap();
    let tokens = ecovol_tests::bootstrap_accounts(&config).await.unwrap();
    let mut child = std::process::Command::new(ecovol_tests::ecovol_binary!())
        .args(["serve", "--log-json", "--config"])
        .arg(&config_path)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A file, not a pipe: debug logging would fill a pipe's buffer and block the node.
        .stderr(std::fs::File::create(dir.path().join("node.log")).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let channel = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ecovol exited during start-up: {status}");
        }
        match tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap().connect().await {
            Ok(channel) => break channel,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Err(error) => panic!("node not reachable within 30 s: {error}"),
        }
    };
    let mut client = pb::volunteer_service_client::VolunteerServiceClient::new(
        tonic::service::interceptor::InterceptedService::new(channel, ecovol_tests::Bearer::new(&tokens.staff)),
    );
    let person = adult(4242);
    client.register_volunteer(person.clone()).await.unwrap();
    // Refusals are logged too: a duplicate and an invalid request.
    let _ = client.register_volunteer(person.clone()).await.unwrap_err();
    let _ = client
        .register_volunteer(pb::RegisterVolunteerRequest {
            identity_number: "15000019970319128X".into(),
            ..adult(4243)
        })
        .await
        .unwrap_err();
    drop(client);
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "node did not stop cleanly: {status}");
    let logs = std::fs::read_to_string(dir.path().join("node.log")).unwrap();
    assert!(logs.contains("node serving"), "expected the node's logs, got: {logs}");
    for secret in
        [person.identity_number.as_str(), person.phone.as_str(), "15000019970319128X", adult(4243).phone.as_str()]
    {
        assert!(!logs.contains(secret), "a log line carries {secret}");
    }
}
