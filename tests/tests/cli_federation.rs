//! `ecovol stats region` and `ecovol node federation` on the command line, against the whole local federation
//! `ecovol up` starts (province 320000, cities 320100 and 320200, four counties), served in this process.

use ecovol_node::demo::{ClusterOptions, DataPlan, Loaded, LocalFederation, start_federation};
use serde_json::Value;

/// The federation with a little data in every county, converged.
struct Cluster {
    federation: LocalFederation,
    loaded: Loaded,
    _dir: tempfile::TempDir,
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let federation = start_federation(&dir.path().join("demo"), &ClusterOptions::default()).await.unwrap();
    let plan = DataPlan { volunteers_per_county: 6, seed: 11, today: ecovol_node::wire::today_china() };
    let loaded = ecovol_node::demo::data::load(&federation, plan).await.unwrap();
    federation.wait_converged(loaded.start_date, loaded.end_date, std::time::Duration::from_secs(30)).await.unwrap();
    Cluster { federation, loaded, _dir: dir }
}

/// What one command line printed and returned.
struct Ran {
    code: i32,
    out: String,
    err: String,
}

impl Cluster {
    /// Runs `ecovol --node <node's office> --token <token> <args>` in this process.
    async fn ecovol(&self, code: &str, token: Option<&str>, args: &[&str]) -> Ran {
        let node = self.federation.node(code).unwrap();
        let address = node.office_url();
        let token = token.unwrap_or(&node.tokens.staff).to_string();
        let all = ["ecovol", "--node", &address, "--token", &token].into_iter().chain(args.iter().copied());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = ecovol_node::cli::run_with(all.map(String::from), &mut out, &mut err).await;
        Ran { code, out: String::from_utf8(out).unwrap(), err: String::from_utf8(err).unwrap() }
    }

    fn range(&self) -> (String, String) {
        (self.loaded.start_date.to_string(), self.loaded.end_date.to_string())
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

fn codes(parts: &Value) -> Vec<String> {
    parts.as_array().unwrap().iter().map(|part| part["code"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_region_prints_the_totals_each_part_with_its_freshness_and_the_months() {
    let cluster = cluster().await;
    let (start, end) = cluster.range();

    // The province, as a table: totals, one line per part, months.
    let ran = cluster.ecovol("320000", None, &["stats", "region", "--start", &start, "--end", &end]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert!(ran.out.starts_with("statistics of region 320000 (province)"), "{}", ran.out);
    assert!(ran.out.contains("registered_volunteers:       32"), "4 counties × (6 + 2 mobile): {}", ran.out);
    for header in
        ["CODE", "LEVEL", "PART", "VOLUNTEERS", "HOURS", "PROJECTS", "SIGN_UPS", "LAST_CONTACT", "STALE", "BACKLOG"]
    {
        assert!(ran.out.contains(header), "{header} missing: {}", ran.out);
    }
    let line = |code: &str| ran.out.lines().find(|line| line.starts_with(code)).unwrap_or_default().to_string();
    let own: Vec<String> = line("320000").split_whitespace().map(String::from).collect();
    assert_eq!(own[..4], ["320000", "province", "own", "0"]);
    assert_eq!(own[own.len() - 3..], ["-", "-", "-"], "own figures have no freshness");
    let nanjing: Vec<String> = line("320100").split_whitespace().map(String::from).collect();
    assert_eq!(nanjing[..4], ["320100", "city", "child", "16"]);
    assert!(nanjing[7].ends_with("+08:00"), "last contact in China time: {nanjing:?}");
    assert_eq!(nanjing[8], "no", "not stale");
    assert!(ran.out.contains("MONTH") && ran.out.contains("green-low-carbon"), "{}", ran.out);

    // The same as JSON: the totals are the sum of the parts, and a part is a city's whole area.
    let ran = cluster
        .ecovol("320000", None, &["--output", "json", "stats", "region", "--start", &start, "--end", &end])
        .await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    let province = json(&ran.out);
    assert_eq!(province["region"], "320000");
    assert_eq!(province["level"], "province");
    assert_eq!(codes(&province["parts"]), ["320000", "320100", "320200"]);
    assert_eq!(province["parts"][0]["freshness"], Value::Null);
    let volunteers: u64 = province["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["totals"]["registered_volunteers"].as_u64().unwrap())
        .sum();
    assert_eq!(province["totals"]["registered_volunteers"], volunteers);
    let wuxi = &province["parts"][2];
    assert_eq!(wuxi["own"], false);
    assert_eq!(wuxi["freshness"]["stale"], false);
    assert!(wuxi["freshness"]["newest_entry"].is_string(), "{wuxi}");
    assert!(!province["months"].as_array().unwrap().is_empty());
    assert!(!province["month_kinds"].as_array().unwrap().is_empty());

    // A city of the province, asked at the province: broken down by its counties. The city itself agrees.
    let ran = cluster
        .ecovol(
            "320000",
            None,
            &["-o", "json", "stats", "region", "--region", "320100", "--start", &start, "--end", &end],
        )
        .await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    let nanjing_above = json(&ran.out);
    assert_eq!(codes(&nanjing_above["parts"]), ["320100", "320102", "320104"]);
    let ran = cluster.ecovol("320100", None, &["-o", "json", "stats", "region", "--from", &start, "--to", &end]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert_eq!(json(&ran.out)["totals"], nanjing_above["totals"]);

    // An auditor may read it; a place outside the city's territory is refused in plain words.
    let auditor = cluster.federation.node("320100").unwrap().tokens.auditor.clone();
    let ran = cluster.ecovol("320100", Some(&auditor), &["stats", "region", "--start", &start, "--end", &end]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    let ran = cluster
        .ecovol("320100", None, &["stats", "region", "--region", "320205", "--start", &start, "--end", &end])
        .await;
    assert_eq!(ran.code, 1, "{}", ran.out);
    assert!(ran.err.contains("320205") && ran.err.contains("not inside the territory of 320100"), "{}", ran.err);

    // A range inside a month is widened to whole months, and the command says so.
    let ran = cluster.ecovol("320000", None, &["stats", "region", "--start", &start, "--end", &start]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert!(ran.err.contains("whole months"), "{}", ran.err);

    // `ecovol stats` keeps working as before, and without a range it is a usage mistake.
    let ran = cluster.ecovol("320102", None, &["stats", "--from", &start, "--to", &end]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert!(ran.out.contains("registered_volunteers:       8"), "{}", ran.out);
    let ran = cluster.ecovol("320102", None, &["stats"]).await;
    assert_eq!(ran.code, 2, "{}", ran.err);
    cluster.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_federation_prints_the_uplink_and_the_children() {
    let cluster = cluster().await;

    // A city: its uplink to the province, and its two counties.
    let ran = cluster.ecovol("320100", None, &["node", "federation"]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert!(ran.out.starts_with("node 320100 (city), federation port 127.0.0.1:"), "{}", ran.out);
    assert!(ran.out.contains("uplink to the parent:"), "{}", ran.out);
    let province = cluster.federation.node("320000").unwrap();
    let parent_line = format!("parent:          320000 at https://{}", province.federation.unwrap());
    assert!(ran.out.contains(&parent_line), "{}", ran.out);
    assert!(ran.out.contains("waiting_to_send: 0 changes"), "{}", ran.out);
    assert!(ran.out.contains("CODE    LAST_CONTACT"), "{}", ran.out);
    let child_rows: Vec<&str> = ran.out.lines().filter(|line| line.starts_with("3201")).collect();
    assert_eq!(child_rows.len(), 2, "{}", ran.out);
    assert!(child_rows[0].starts_with("320102") && child_rows[1].starts_with("320104"));

    let ran = cluster.ecovol("320100", None, &["--output", "json", "node", "federation"]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    let city = json(&ran.out);
    assert_eq!(city["division_code"], "320100");
    assert_eq!(city["level"], "city");
    assert_eq!(city["uplink"]["parent_code"], "320000");
    assert_eq!(city["uplink"]["backlog"], 0);
    assert_eq!(city["uplink"]["alarm"], false);
    assert!(city["uplink"]["last_ack"].is_string(), "{city}");
    assert_eq!(city["uplink"]["last_error"], Value::Null);
    assert_eq!(codes(&city["children"]), ["320102", "320104"]);
    for child in city["children"].as_array().unwrap() {
        assert_eq!(child["stale"], false);
        assert!(child["entries_applied"].as_u64().unwrap() > 0, "{child}");
    }

    // The province: the top of the federation, with the two cities below it.
    let ran = cluster.ecovol("320000", None, &["node", "federation"]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert!(ran.out.contains("uplink: none, this is the top node of the federation"), "{}", ran.out);
    let ran = cluster.ecovol("320000", None, &["-o", "json", "node", "federation"]).await;
    let top = json(&ran.out);
    assert_eq!(top["uplink"], Value::Null);
    assert_eq!(codes(&top["children"]), ["320100", "320200"]);

    // A county: an uplink, no federation port, no children. Auditors and operators may look too.
    let county = cluster.federation.node("320205").unwrap();
    let ran = cluster.ecovol("320205", Some(&county.tokens.operator.clone()), &["node", "federation"]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert!(ran.out.contains("no federation port (it takes no children)"), "{}", ran.out);
    assert!(ran.out.contains("parent:          320200"), "{}", ran.out);
    assert!(ran.out.contains("children: none"), "{}", ran.out);
    let ran =
        cluster.ecovol("320205", Some(&county.tokens.auditor.clone()), &["-o", "json", "node", "federation"]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    let county_status = json(&ran.out);
    assert_eq!(county_status["federation_listen"], Value::Null);
    assert_eq!(county_status["children"], serde_json::json!([]));
    cluster.federation.stop().await.unwrap();
}
