//! The federation end to end: seven real nodes (1 province, 2 cities, 4 counties of Jiangsu) in this process,
//! each with its own sled folder, linked over real mutual TLS with certificates made for the test.
//!
//! REP-1/REP-2 (exactly once through restarts and outages), ROL-1 (roll-ups equal the counties' own figures),
//! PRIV-1 (no personal data above the county), AUTH-1 (who may speak for whom), staleness, and mutual
//! recognition of hours with star certification across counties.

use std::time::Duration;

use ecovol_proto::v1 as pb;
use ecovol_tests::cluster::{Cluster, JIANGSU};
use ecovol_tests::federation_load::up_entry;
use ecovol_tests::federation_load::{comparable_own, comparable_region, load_county, own_stats, region_stats};
use ecovol_tests::needles_found_under;

const COUNTIES: [&str; 4] = ["320102", "320104", "320205", "320206"];
const DELIVERY: Duration = Duration::from_secs(60);

/// Hours of the last 75 days may be recorded.
const HOURS_WINDOW: &str = "[hours]\nwindow_tolerance_minutes = 10080\n";

fn seed() -> u64 {
    std::env::var("ECOVOL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261202)
}

/// ROL-1 at quiescence: every county's roll-up at its city and at the province equals its own statistics; each
/// city's and the province's totals equal the sum of their parts.
async fn assert_rollups_match(cluster: &Cluster) {
    for county in COUNTIES {
        let own = comparable_own(&own_stats(cluster.node(county)).await.unwrap());
        let city = &county[..4].to_string();
        let city = format!("{city}00");
        for above in [city.as_str(), "320000"] {
            let rolled = comparable_region(&region_stats(cluster.node(above), county).await.unwrap());
            assert_eq!(rolled, own, "ROL-1: {above}'s roll-up of county {county} equals the county's own figures");
        }
    }
    for node in ["320100", "320200", "320000"] {
        let stats = region_stats(cluster.node(node), "").await.unwrap();
        let totals = stats.totals.clone().unwrap();
        let sum = |field: fn(&pb::RegionTotals) -> u64| -> u64 {
            stats.parts.iter().map(|part| field(part.totals.as_ref().unwrap())).sum()
        };
        assert_eq!(totals.confirmed_hours_x100, sum(|t| t.confirmed_hours_x100), "{node}: total = own + children");
        assert_eq!(totals.registered_volunteers, sum(|t| t.registered_volunteers), "{node}");
        assert_eq!(totals.projects_published, sum(|t| t.projects_published), "{node}");
        assert!(stats.parts.iter().filter(|p| !p.own).all(|p| !p.freshness.as_ref().unwrap().stale), "{node}");
    }
    let province = region_stats(cluster.node("320000"), "").await.unwrap();
    let counties_hours: u64 = {
        let mut sum = 0;
        for county in COUNTIES {
            sum += own_stats(cluster.node(county)).await.unwrap().totals.unwrap().confirmed_hours_x100;
        }
        sum
    };
    assert_eq!(province.totals.unwrap().confirmed_hours_x100, counties_hours, "the province sees every county's hours");
    let parts: Vec<&str> = province.parts.iter().map(|p| p.code.as_str()).collect();
    assert_eq!(parts, ["320000", "320100", "320200"], "the province's own figures, then each city");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn county_records_roll_up_exactly_once_and_no_personal_data_leaves_the_county() {
    let cluster = Cluster::start(&JIANGSU, HOURS_WINDOW).await.unwrap();
    let mut loaded = Vec::new();
    for (i, county) in COUNTIES.into_iter().enumerate() {
        loaded.push(load_county(cluster.node(county), seed() + i as u64, 1000 * i as u32, 12).await.unwrap());
    }
    cluster.wait_delivered(DELIVERY).await.unwrap();
    assert_rollups_match(&cluster).await;
    let province = region_stats(cluster.node("320000"), "").await.unwrap();
    assert_eq!(province.totals.unwrap().registered_volunteers, 48);

    // PRIV-1: names, identity numbers and phones of every county's volunteers are nowhere in the city and
    // province folders (sled files, configs, anything).
    let needles: Vec<String> = loaded
        .iter()
        .flat_map(|l| l.volunteers.iter())
        .flat_map(|(_, request)| [request.name.clone(), request.identity_number.clone(), request.phone.clone()])
        .collect();
    // The scan works: the county's own folder holds its volunteers' names.
    let needles: Vec<&[u8]> = needles.iter().map(|n| n.as_bytes()).collect();
    let own = needles_found_under(&cluster.node("320102").dir, &needles[..1]);
    assert_eq!(own.len(), 1, "the scan finds a name where it is stored");
    for above in ["320100", "320200", "320000"] {
        let found = needles_found_under(&cluster.node(above).dir, &needles);
        assert!(found.is_empty(), "PRIV-1: {above} holds personal data: {found:?}");
    }
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_of_parents_and_children_lose_nothing_and_count_nothing_twice() {
    let mut cluster = Cluster::start(&JIANGSU, HOURS_WINDOW).await.unwrap();
    load_county(cluster.node("320102"), seed(), 0, 6).await.unwrap();
    cluster.restart("320100").await.unwrap();
    load_county(cluster.node("320104"), seed() + 1, 1000, 6).await.unwrap();
    cluster.restart("320000").await.unwrap();
    load_county(cluster.node("320205"), seed() + 2, 2000, 6).await.unwrap();
    cluster.restart("320102").await.unwrap();
    load_county(cluster.node("320102"), seed() + 3, 3000, 6).await.unwrap();
    cluster.restart("320200").await.unwrap();
    load_county(cluster.node("320206"), seed() + 4, 4000, 6).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    assert_rollups_match(&cluster).await;
    // Restarting everything once more changes nothing: positions, roll-ups and outboxes were durable.
    for code in ["320000", "320100", "320200", "320102", "320104", "320205", "320206"] {
        cluster.restart(code).await.unwrap();
    }
    cluster.wait_delivered(DELIVERY).await.unwrap();
    assert_rollups_match(&cluster).await;
    let province = region_stats(cluster.node("320000"), "").await.unwrap();
    assert_eq!(province.totals.unwrap().registered_volunteers, 30);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_cut_off_from_its_city_keeps_working_and_its_backlog_arrives_once() {
    let mut cluster = Cluster::start(&JIANGSU, HOURS_WINDOW).await.unwrap();
    load_county(cluster.node("320205"), seed(), 0, 5).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    cluster.stop("320200").await.unwrap();
    load_county(cluster.node("320205"), seed() + 1, 100, 8).await.unwrap();
    let uplink = cluster.status("320205").await.unwrap().uplink.unwrap();
    assert!(uplink.backlog > 0, "the county queues its changes while the city is away: {uplink:?}");
    assert!(!uplink.last_error.is_empty(), "and says why: {uplink:?}");
    let before = region_stats(cluster.node("320000"), "320205").await.unwrap();
    assert_eq!(before.totals.unwrap().registered_volunteers, 5, "the province has only what arrived before");
    cluster.start_again("320200").await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let after = region_stats(cluster.node("320000"), "320205").await.unwrap();
    assert_eq!(after.totals.unwrap().registered_volunteers, 13, "the backlog arrived");
    assert_rollups_match(&cluster).await;
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_child_is_shown_stale_not_missing() {
    let extra = format!("stale_after_ms = 1000\n{HOURS_WINDOW}");
    let mut cluster = Cluster::start(&JIANGSU, &extra).await.unwrap();
    load_county(cluster.node("320206"), seed(), 0, 3).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let city = cluster.node("320200");
    let fresh = region_stats(city, "").await.unwrap();
    let part = fresh.parts.iter().find(|p| p.code == "320206").unwrap();
    assert!(!part.freshness.as_ref().unwrap().stale, "a county in contact is fresh");
    cluster.stop("320206").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let stats = region_stats(cluster.node("320200"), "").await.unwrap();
    let part = stats.parts.iter().find(|p| p.code == "320206").expect("a silent county is still listed");
    let freshness = part.freshness.unwrap();
    assert!(freshness.stale, "after stale_after_ms of silence the county is stale: {freshness:?}");
    assert!(freshness.last_contact.is_some() && freshness.newest_entry.is_some());
    assert_eq!(part.totals.as_ref().unwrap().registered_volunteers, 3, "its last figures are kept");
    let fresh_sibling = stats.parts.iter().find(|p| p.code == "320205").unwrap();
    assert!(!fresh_sibling.freshness.as_ref().unwrap().stale, "the sibling pulls and pushes, so it is fresh");
    let status = cluster.status("320200").await.unwrap();
    let child = status.children.iter().find(|c| c.code == "320206").unwrap();
    assert!(child.stale && child.entries_applied > 0, "{child:?}");
    cluster.start_again("320206").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = region_stats(cluster.node("320200"), "").await.unwrap();
    let part = stats.parts.iter().find(|p| p.code == "320206").unwrap();
    assert!(!part.freshness.as_ref().unwrap().stale, "back in contact, fresh again");
    cluster.shutdown().await.unwrap();
}

fn acks(response: pb::PushResponse) -> Vec<(String, u64)> {
    response.acks.into_iter().map(|ack| (ack.origin, ack.seq)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_and_reordered_batches_are_applied_once_in_order() {
    let cluster = Cluster::start(&JIANGSU[..3], "").await.unwrap();
    // A county node of Nanjing that the test itself plays, with a real certificate of the federation.
    let identity = cluster.files.node_identity("320105").unwrap();
    let mut city = cluster.federation_client("320100", &cluster.files.ca_pem, Some(identity)).await.unwrap();
    let push = |entries: Vec<pb::UpEntry>| pb::PushRequest { entries, backlog: 0 };

    let ahead = city.push(push(vec![up_entry("320105", 2, 200)])).await.unwrap().into_inner();
    assert_eq!(acks(ahead), [("320105".to_string(), 0)], "seq 2 before seq 1 waits for the resend");
    let reordered = vec![up_entry("320105", 2, 200), up_entry("320105", 1, 100)];
    let answer = city.push(push(reordered)).await.unwrap().into_inner();
    assert_eq!(acks(answer), [("320105".to_string(), 1)], "in batch order: 2 waits, 1 is applied");
    let doubled = vec![up_entry("320105", 1, 100), up_entry("320105", 2, 200), up_entry("320105", 2, 200)];
    let answer = city.push(push(doubled)).await.unwrap().into_inner();
    assert_eq!(acks(answer), [("320105".to_string(), 2)], "1 again is skipped, 2 applied once");
    for _ in 0..3 {
        let again = city.push(push(vec![up_entry("320105", 1, 100), up_entry("320105", 2, 200)])).await.unwrap();
        assert_eq!(acks(again.into_inner()), [("320105".to_string(), 2)], "a resent batch changes nothing");
    }
    cluster.wait_delivered(DELIVERY).await.unwrap();
    for node in ["320100", "320000"] {
        let stats = region_stats(cluster.node(node), "320105").await.unwrap();
        assert_eq!(stats.totals.unwrap().confirmed_hours_x100, 200, "{node}: the latest figures, counted once");
    }
    let province = region_stats(cluster.node("320000"), "").await.unwrap();
    assert_eq!(province.totals.unwrap().confirmed_hours_x100, 200);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_children_with_certificates_of_the_federation_speak_and_only_for_their_subtree() {
    let cluster = Cluster::start(&JIANGSU[..4], "").await.unwrap();
    let files = &cluster.files;
    let push = |origin: &str| pb::PushRequest { entries: vec![up_entry(origin, 1, 100)], backlog: 0 };

    // Sibling impersonation: Xuanwu (320102) sends an entry of Qinhuai (320104).
    let mut as_xuanwu =
        cluster.federation_client("320100", &files.ca_pem, Some(files.node_identity("320102").unwrap())).await.unwrap();
    let refused = as_xuanwu.push(push("320104")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("AUTH-1"), "{}", refused.message());
    // An entry from above its own subtree (the city itself) is refused too.
    assert_eq!(as_xuanwu.push(push("320100")).await.unwrap_err().code(), tonic::Code::PermissionDenied);

    // A county of another city, and a county going straight to the province, are not children.
    let mut as_xishan =
        cluster.federation_client("320100", &files.ca_pem, Some(files.node_identity("320205").unwrap())).await.unwrap();
    assert_eq!(as_xishan.push(push("320205")).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    let mut skipping =
        cluster.federation_client("320000", &files.ca_pem, Some(files.node_identity("320102").unwrap())).await.unwrap();
    assert_eq!(skipping.push(push("320102")).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    assert_eq!(
        skipping.pull(pb::PullRequest { after_seq: 0, max: 10 }).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );

    // A certificate of another CA does not get through the handshake.
    let stranger =
        ecovol_tests::cluster::FederationFiles::create(&cluster.root.path().join("stranger"), "other").unwrap();
    let impostor =
        cluster.federation_client("320100", &files.ca_pem, Some(stranger.node_identity("320102").unwrap())).await;
    match impostor {
        Err(_) => {}
        Ok(mut client) => assert!(client.push(push("320102")).await.is_err(), "a foreign certificate is refused"),
    }
    // Without any client certificate, or in plain text, nothing is served either.
    match cluster.federation_client("320100", &files.ca_pem, None).await {
        Err(_) => {}
        Ok(mut client) => assert!(client.push(push("320102")).await.is_err(), "no certificate, no service"),
    }
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.node("320100").federation))
        .unwrap()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(3))
        .connect()
        .await;
    if let Ok(channel) = plain {
        let mut client = pb::federation_service_client::FederationServiceClient::new(channel);
        assert!(client.push(push("320102")).await.is_err(), "plain text is refused");
    }
    // Nothing of it reached the roll-up.
    let stats = region_stats(cluster.node("320100"), "").await.unwrap();
    assert_eq!(stats.totals.unwrap().confirmed_hours_x100, 0);
    cluster.shutdown().await.unwrap();
}

/// Walk-in hours of `minutes` for `volunteer` on a new project of `node`, confirmed; `day` days ago.
async fn serve(node: &ecovol_tests::cluster::ClusterNode, volunteer: &str, minutes: i64, day: i64, key: &str) {
    use chrono::{Duration as Span, Utc};
    use ecovol_proto::v1::{
        project_service_client::ProjectServiceClient, service_record_service_client::ServiceRecordServiceClient,
    };
    use ecovol_tests::scenario::timestamp;
    let team = ecovol_proto::v1::team_service_client::TeamServiceClient::new(node.staff())
        .create_team(pb::CreateTeamRequest {
            name: format!("队{key}"),
            kind: pb::TeamKind::SocialOrganisation as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap()
        .team_id;
    let start = Utc::now() - Span::days(day) - Span::hours(8);
    let mut projects = ProjectServiceClient::new(node.staff());
    let project = projects
        .create_project(pb::CreateProjectRequest {
            title: format!("巡河{key}"),
            activity_kind: pb::ActivityKind::GreenLowCarbon as i32,
            organising_team_id: team,
            start_at: Some(timestamp(start)),
            end_at: Some(timestamp(start + Span::hours(7))),
            capacity: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap()
        .project_id;
    projects.publish_project(pb::PublishProjectRequest { project_id: project.clone() }).await.unwrap();
    let mut hours = ServiceRecordServiceClient::new(node.staff());
    let record = hours
        .record_service(pb::RecordServiceRequest {
            project_id: project,
            volunteer_number: volunteer.into(),
            method: pb::RecordingMethod::CheckInOut as i32,
            start_time: Some(timestamp(start)),
            end_time: Some(timestamp(start + Span::minutes(minutes))),
            content: "巡河".into(),
            walk_in: true,
            idempotency_key: key.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    hours.confirm_service_record(pb::ConfirmServiceRecordRequest { record_id: record.record_id }).await.unwrap();
}

async fn profile(node: &ecovol_tests::cluster::ClusterNode, volunteer: &str) -> pb::GetVolunteerProfileResponse {
    ecovol_proto::v1::recognition_service_client::RecognitionServiceClient::new(node.staff())
        .get_volunteer_profile(pb::GetVolunteerProfileRequest {
            volunteer_number: volunteer.into(),
            evaluations_max: 0,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Waits until `check` holds for the volunteer's profile.
async fn eventually(
    node: &ecovol_tests::cluster::ClusterNode,
    volunteer: &str,
    check: impl Fn(&pb::GetVolunteerProfileResponse) -> bool,
) -> pb::GetVolunteerProfileResponse {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        let answer = profile(node, volunteer).await;
        if check(&answer) {
            return answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "never reached: {answer:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_served_in_two_counties_earn_stars_certified_by_the_right_level() {
    // 1 h per star; 1–2★ county, 3–4★ city, 5★ province.
    let stars = "[stars]\nthresholds_hours = [1, 2, 3, 4, 5]\n\
                 certifying_levels = [\"county\", \"county\", \"city\", \"city\", \"province\"]\n";
    let cluster = Cluster::start(&JIANGSU, &format!("{HOURS_WINDOW}{stars}")).await.unwrap();
    // One person registered in Xuanwu (Nanjing) and in Xishan (Wuxi): same identity number.
    let person = ecovol_tests::federation_load::volunteer("320102", 7);
    let mut numbers = Vec::new();
    for county in ["320102", "320205"] {
        let request = pb::RegisterVolunteerRequest { home_division_code: county.into(), ..person.clone() };
        let answer =
            ecovol_proto::v1::volunteer_service_client::VolunteerServiceClient::new(cluster.node(county).staff())
                .register_volunteer(request)
                .await
                .unwrap()
                .into_inner();
        numbers.push(answer.volunteer.unwrap().volunteer_number);
    }
    let (xuanwu, xishan) = (cluster.node("320102"), cluster.node("320205"));
    serve(xuanwu, &numbers[0], 120, 3, "xw-1").await;
    serve(xishan, &numbers[1], 120, 2, "xs-1").await;
    // 4 h in all: each home county learns the 2 h served in the other and reaches 4★; the stars above the
    // county's level are certified by the city on the path to that county.
    // A county can reach 4★ before the notice carrying the city's certifications arrives: wait for them.
    let at_xuanwu = eventually(xuanwu, &numbers[0], |p| p.star == 4 && p.certifications.len() == 2).await;
    assert_eq!((at_xuanwu.confirmed_minutes, at_xuanwu.elsewhere_minutes), (120, 120));
    let certified: Vec<(u32, String)> =
        at_xuanwu.certifications.iter().map(|c| (c.star, c.certified_by.clone())).collect();
    assert_eq!(certified, [(3, "320100".to_string()), (4, "320100".to_string())]);
    let own_levels: Vec<(u32, bool)> = at_xuanwu.star_events.iter().map(|e| (e.star, e.certified)).collect();
    assert_eq!(own_levels, [(1, true), (2, true), (3, false), (4, false)], "the county certifies 1–2★ itself");
    let at_xishan = eventually(xishan, &numbers[1], |p| p.star == 4 && p.certifications.len() == 2).await;
    let certified: Vec<(u32, String)> =
        at_xishan.certifications.iter().map(|c| (c.star, c.certified_by.clone())).collect();
    assert_eq!(certified, [(3, "320200".to_string()), (4, "320200".to_string())]);

    // One more hour in Xishan: 5 h, the province certifies 5★, and both counties hear of it.
    serve(xishan, &numbers[1], 60, 1, "xs-2").await;
    for (node, number) in [(xuanwu, &numbers[0]), (xishan, &numbers[1])] {
        // The county where the last hour was served reaches 5★ at once (awaiting the province); wait for the
        // province's certification itself.
        let answer = eventually(node, number, |p| p.star == 5 && p.certifications.iter().any(|c| c.star == 5)).await;
        let fifth = answer.certifications.iter().find(|c| c.star == 5).expect("5★ certified");
        assert_eq!((fifth.certified_by.as_str(), fifth.level), ("320000", pb::Level::Province as i32));
    }
    let at_xuanwu = profile(xuanwu, &numbers[0]).await;
    assert_eq!((at_xuanwu.confirmed_minutes, at_xuanwu.elsewhere_minutes), (120, 180));
    // The county can also ask its ancestors for the federation-wide total at any moment.
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let asked = ecovol_proto::v1::recognition_service_client::RecognitionServiceClient::new(xuanwu.staff())
        .get_federation_minutes(pb::GetFederationMinutesRequest { volunteer_number: numbers[0].clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((asked.local_minutes, asked.federation_minutes), (120, 300));
    assert_eq!((asked.answered_by.as_str(), asked.complete), ("320000", true));
    // At the province the person is one volunteer holding 5★, whichever county reports the star.
    let province = region_stats(cluster.node("320000"), "").await.unwrap();
    let stars: Vec<(u32, u64)> =
        province.totals.unwrap().star_distribution.iter().map(|c| (c.stars, c.volunteers)).collect();
    assert_eq!(stars, [(5, 2)], "each home county counts its registration: two registrations of one person");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_raises_the_alarm_and_refuses_changes_instead_of_dropping_them() {
    let mut cluster = Cluster::start(&JIANGSU[..4], "batch_entries_max = 2\nbacklog_entries_max = 4\n").await.unwrap();
    cluster.stop("320100").await.unwrap();
    let county = cluster.node("320102");
    let mut registry = ecovol_proto::v1::volunteer_service_client::VolunteerServiceClient::new(county.staff());
    let mut accepted = 0;
    let mut refusal = None;
    for index in 0..40 {
        match registry.register_volunteer(ecovol_tests::federation_load::volunteer("320102", index)).await {
            Ok(_) => accepted += 1,
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refusal = refusal.expect("the county refuses changes once its backlog is full");
    assert_eq!(refusal.code(), tonic::Code::Unavailable, "{refusal:?}");
    assert!(refusal.message().contains("backlog_entries_max"), "{}", refusal.message());
    assert!(accepted >= 4, "changes are accepted up to the cap: {accepted}");
    let uplink = cluster.status("320102").await.unwrap().uplink.unwrap();
    assert!(uplink.alarm && uplink.backlog >= 4, "{uplink:?}");

    cluster.start_again("320100").await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let uplink = cluster.status("320102").await.unwrap().uplink.unwrap();
    assert!(!uplink.alarm, "the alarm ends when the parent takes the entries: {uplink:?}");
    registry.register_volunteer(ecovol_tests::federation_load::volunteer("320102", 99)).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let city = region_stats(cluster.node("320100"), "320102").await.unwrap();
    assert_eq!(city.totals.unwrap().registered_volunteers, accepted + 1, "every accepted change arrived, once");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_that_worked_alone_joins_and_its_history_arrives_once() {
    let mut cluster = Cluster::start_with(&JIANGSU[..5], HOURS_WINDOW, &["320104"]).await.unwrap();
    load_county(cluster.node("320104"), seed(), 0, 10).await.unwrap();
    let before = region_stats(cluster.node("320000"), "320104").await.unwrap();
    assert_eq!(before.totals.unwrap().registered_volunteers, 0, "alone, nothing goes up");
    cluster.link("320104").await.unwrap();
    // Work after joining travels the usual way, after the history.
    load_county(cluster.node("320104"), seed() + 1, 100, 4).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let own = comparable_own(&own_stats(cluster.node("320104")).await.unwrap());
    for above in ["320100", "320000"] {
        let rolled = comparable_region(&region_stats(cluster.node(above), "320104").await.unwrap());
        assert_eq!(rolled, own, "{above} holds the history and the new work, once");
    }
    // A restart does not announce the history a second time.
    cluster.restart("320104").await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let rolled = comparable_region(&region_stats(cluster.node("320000"), "320104").await.unwrap());
    assert_eq!(rolled, own);
    cluster.shutdown().await.unwrap();
}
