//! REP-1 against real crashes: a city node runs as a real `ecovol` process and is killed with SIGKILL again and
//! again while its county keeps registering volunteers and pushing entries. Every change the county acknowledged
//! must reach the city exactly once. Rounds: `ECOVOL_KILL_ROUNDS` (default 3); seed: `ECOVOL_SEED` (printed).

use std::time::Duration;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::volunteer_service_client::VolunteerServiceClient;
use ecovol_tests::cluster::Cluster;
use ecovol_tests::federation_load::{comparable_own, comparable_region, volunteer, whole_months};
use ecovol_tests::process::NodeProcess;
use ecovol_tests::{Bearer, ecovol_binary};
use rand::{Rng, SeedableRng};
use tonic::service::interceptor::InterceptedService;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|text| text.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_killed_mid_stream_loses_no_acknowledged_entry_and_counts_none_twice() {
    let seed = env_number("ECOVOL_SEED", rand::random::<u32>() as u64);
    let rounds = env_number("ECOVOL_KILL_ROUNDS", 3);
    eprintln!("federation crash test: seed {seed}, {rounds} rounds (replay with ECOVOL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let topology = [("320100", "city", None), ("320102", "county", Some("320100"))];
    let mut cluster = Cluster::start(&topology, "").await.unwrap();
    // The city becomes a real process on the same folder and ports.
    cluster.stop("320100").await.unwrap();
    let city_config = cluster.node("320100").config_path.clone();
    let city_office = cluster.node("320100").office;
    let mut city = NodeProcess::start(ecovol_binary!(), &city_config, city_office).await.unwrap();

    let county = cluster.node("320102");
    let mut registry = VolunteerServiceClient::new(county.staff());
    let mut acknowledged = 0u32;
    for round in 0..rounds {
        let writes = rng.random_range(20..60);
        let kill_after = rng.random_range(0..writes);
        for i in 0..writes {
            if i == kill_after {
                city.kill_hard().unwrap();
                city = NodeProcess::start(ecovol_binary!(), &city_config, city_office).await.unwrap();
            }
            let index = round as u32 * 1000 + i;
            registry.register_volunteer(volunteer("320102", index)).await.unwrap();
            acknowledged += 1;
        }
    }
    cluster.wait_delivered(Duration::from_secs(60)).await.unwrap();

    // The city (still the killed-and-restarted process) holds each acknowledged registration once.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{city_office}")).unwrap().connect().await.unwrap();
    let token = cluster.node("320100").tokens.staff.clone();
    let mut stats =
        pb::stats_service_client::StatsServiceClient::new(InterceptedService::new(channel, Bearer::new(&token)));
    let (start_date, end_date) = whole_months();
    let rolled = stats
        .get_region_stats(pb::GetRegionStatsRequest { region: "320102".into(), start_date, end_date })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rolled.totals.as_ref().unwrap().registered_volunteers, u64::from(acknowledged));
    let own = ecovol_tests::federation_load::own_stats(cluster.node("320102")).await.unwrap();
    assert_eq!(comparable_region(&rolled), comparable_own(&own), "ROL-1 after {rounds} crashes of the city");
    drop(stats);
    city.terminate().unwrap();
    cluster.shutdown().await.unwrap();
}
