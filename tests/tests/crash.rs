//! Real processes, real crashes: a county node is killed with SIGKILL in the middle of a stream of acknowledged
//! writes, restarted, and every acknowledged write must be there. Rounds: `ECOVOL_KILL_ROUNDS` (default 5);
//! seed: `ECOVOL_SEED` (printed on every run so a failure can be replayed).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecovol_node::config::Config;
use ecovol_proto::v1 as pb;
use ecovol_tests::fixtures::adult;
use ecovol_tests::process::{NodeProcess, free_address};
use ecovol_tests::{Bearer, NodeSpec, bootstrap_accounts, write_node_files};
use pb::volunteer_service_client::VolunteerServiceClient;
use rand::{Rng, SeedableRng};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|text| text.parse().ok()).unwrap_or(default)
}

async fn client(
    address: std::net::SocketAddr,
    token: &str,
) -> VolunteerServiceClient<InterceptedService<tonic::transport::Channel, Bearer>> {
    let channel = Endpoint::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    VolunteerServiceClient::new(InterceptedService::new(channel, Bearer::new(token)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9() {
    let seed = env_number("ECOVOL_SEED", rand::random::<u32>() as u64);
    let rounds = env_number("ECOVOL_KILL_ROUNDS", 5);
    eprintln!("crash test: seed {seed}, {rounds} rounds (replay with ECOVOL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let dir = tempfile::tempdir().unwrap();
    let address = free_address().unwrap();
    let config_path = write_node_files(dir.path(), &NodeSpec::county("330106"), &address.to_string()).unwrap();
    let config = Config::load_with_env(Some(&config_path), std::iter::empty()).unwrap();
    let tokens = bootstrap_accounts(&config).await.unwrap();

    // (volunteer number, index) of every registration the node acknowledged.
    let acknowledged: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let mut next_index = 0u32;
    for round in 0..rounds {
        let phase = std::time::Instant::now();
        let node = NodeProcess::start(ecovol_tests::ecovol_binary!(), &config_path, address).await.unwrap();
        // Everything acknowledged in earlier rounds is there after the restart.
        let mut checker = client(address, &tokens.staff).await;
        let expected = acknowledged.lock().unwrap().clone();
        for (number, index) in &expected {
            let found = checker
                .get_volunteer(pb::GetVolunteerRequest { volunteer_number: number.clone() })
                .await
                .unwrap_or_else(|status| {
                    panic!("round {round}: acknowledged volunteer {number} lost: {status} (seed {seed})")
                })
                .into_inner()
                .volunteer
                .unwrap();
            assert_eq!(found.name, adult(*index).name, "round {round}: wrong record under {number} (seed {seed})");
        }
        let verified = phase.elapsed();
        // 16 writers register volunteers until the node dies under them.
        let mut writers = Vec::new();
        for _ in 0..16 {
            let first = next_index;
            next_index += 10_000;
            let acknowledged = acknowledged.clone();
            let mut client = client(address, &tokens.staff).await;
            writers.push(tokio::spawn(async move {
                for index in first..first + 10_000 {
                    match client.register_volunteer(adult(index)).await {
                        Ok(reply) => {
                            let number = reply.into_inner().volunteer.unwrap().volunteer_number;
                            acknowledged.lock().unwrap().push((number, index));
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
        node.kill_hard().unwrap();
        for writer in writers {
            writer.await.unwrap();
        }
        eprintln!(
            "round {round}: killed with {} acknowledged so far (restart and verification took {verified:?}, round {:?})",
            acknowledged.lock().unwrap().len(),
            phase.elapsed()
        );
    }
    // Final restart: the store opens and holds every acknowledged write, numbered without duplicates.
    let node = NodeProcess::start(ecovol_tests::ecovol_binary!(), &config_path, address).await.unwrap();
    let mut checker = client(address, &tokens.staff).await;
    let expected = acknowledged.lock().unwrap().clone();
    assert!(expected.len() > rounds as usize, "the writers got nothing acknowledged (seed {seed})");
    let mut numbers: Vec<&String> = expected.iter().map(|(number, _)| number).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), expected.len(), "a volunteer number was acknowledged twice (seed {seed})");
    for (number, index) in &expected {
        let found = checker
            .get_volunteer(pb::GetVolunteerRequest { volunteer_number: number.clone() })
            .await
            .unwrap_or_else(|status| panic!("acknowledged volunteer {number} lost: {status} (seed {seed})"))
            .into_inner()
            .volunteer
            .unwrap();
        assert_eq!(found.name, adult(*index).name);
    }
    drop(checker); // an open client connection would hold the graceful stop for its whole grace period
    let status = node.terminate().unwrap();
    assert!(status.success(), "graceful stop failed: {status}");
    // And none of those identity numbers or phones is stored in plain text.
    let secrets: Vec<String> =
        expected.iter().flat_map(|(_, index)| [adult(*index).identity_number, adult(*index).phone]).collect();
    let needles: Vec<&[u8]> = secrets.iter().map(|secret| secret.as_bytes()).collect();
    assert_eq!(ecovol_tests::needles_found_under(&dir.path().join("data"), &needles), vec![], "PII in plain text");
}
