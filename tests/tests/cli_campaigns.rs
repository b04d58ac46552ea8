//! `ecovol campaign …` and the honours of `ecovol profile` on the command line, run in this process against an
//! in-process federation (province 320000, cities 320100 and 320200, four counties): issue at the province,
//! quotas at Nanjing, nominations with and without consent at two of its counties, review at Nanjing, selection at
//! the province, the honour at the home county; and the usage mistakes that never reach a node.

use std::time::Duration;

use chrono::Duration as Span;
use ecovol_tests::cluster::{Cluster, JIANGSU};
use ecovol_tests::federation_load::load_county;
use serde_json::Value;

const DELIVERY: Duration = Duration::from_secs(60);
const HOURS_WINDOW: &str = "[hours]\nwindow_tolerance_minutes = 10080\n";

/// What one command line printed and returned.
struct Ran {
    code: i32,
    out: String,
    err: String,
}

impl Ran {
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "{}", self.err);
        serde_json::from_str(&self.out).unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.out))
    }
}

/// Runs `ecovol <args>` in this process.
async fn ecovol_args(args: Vec<String>) -> Ran {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let all = std::iter::once("ecovol".to_string()).chain(args);
    let code = ecovol_node::cli::run_with(all, &mut out, &mut err).await;
    Ran { code, out: String::from_utf8(out).unwrap(), err: String::from_utf8(err).unwrap() }
}

/// Runs `ecovol --node <node's office> --token <its staff token> <args>` in this process.
async fn ecovol(cluster: &Cluster, code: &str, args: &[&str]) -> Ran {
    let node = cluster.node(code);
    let connection =
        ["--node".to_string(), format!("http://{}", node.office), "--token".into(), node.tokens.staff.clone()];
    ecovol_args(connection.into_iter().chain(args.iter().map(|arg| arg.to_string())).collect()).await
}

/// Waits until `code` holds campaign `id` (campaigns are pulled down by the children).
async fn eventually_held(cluster: &Cluster, code: &str, id: &str) {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        let listed = ecovol(cluster, code, &["-o", "json", "campaign", "list"]).await.json();
        if listed["campaigns"].as_array().unwrap().iter().any(|c| c["campaign_id"] == id) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{code} never received {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first of `numbers` with at least an hour of confirmed service, by `ecovol profile`.
async fn volunteer_with_an_hour(cluster: &Cluster, code: &str, numbers: &[String]) -> String {
    for number in numbers {
        let profile = ecovol(cluster, code, &["-o", "json", "profile", number]).await.json();
        if profile["profile"]["confirmed_minutes"].as_u64().unwrap() >= 60 {
            return number.clone();
        }
    }
    panic!("no volunteer of {code} with an hour of service")
}

/// The row of the nominations table whose first column is `nomination_id`.
fn row<'a>(out: &'a str, nomination_id: &str) -> &'a str {
    out.lines().find(|line| line.starts_with(nomination_id)).unwrap_or_else(|| panic!("no row {nomination_id}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_from_issue_to_the_honour_in_the_profile() {
    let cluster = Cluster::start(&JIANGSU, HOURS_WINDOW).await.unwrap();
    let mut numbers = std::collections::BTreeMap::new();
    for (i, county) in ["320102", "320104"].into_iter().enumerate() {
        let loaded = load_county(cluster.node(county), 70 + i as u64, 1000 * i as u32, 10).await.unwrap();
        numbers.insert(county, loaded.volunteers);
    }
    let numbers_of = |county: &str| -> Vec<String> { numbers[county].iter().map(|(n, _)| n.clone()).collect() };
    let today = ecovol_node::wire::today_china();
    let (open, close, publication) =
        (today.to_string(), (today + Span::days(10)).to_string(), (today + Span::days(30)).to_string());

    // The province issues the campaign: Nanjing may nominate two, Wuxi one.
    let issue = [
        "campaign",
        "issue",
        "--title",
        "第1届最美生态环境志愿者",
        "--series",
        "outstanding-eco-volunteers",
        "--edition",
        "1",
        "--open",
        &open,
        "--close",
        &close,
        "--publication",
        &publication,
        "--min-hours",
        "1",
        "--quota",
        "320100=2",
        "--quota",
        "320200=1",
    ];
    let ran = ecovol(&cluster, "320000", &issue).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert!(ran.out.contains("campaign_id:         320000-CA0001"), "{}", ran.out);
    assert!(ran.out.contains("state:               issued"), "{}", ran.out);
    assert!(ran.out.contains("REGION  NOMINATIONS\n320100  2\n320200  1\n"), "{}", ran.out);
    assert!(ran.out.contains("(no nominations)"), "{}", ran.out);
    assert!(ran.err.contains("ecovol campaign quotas 320000-CA0001"), "the next step: {}", ran.err);
    let id = "320000-CA0001";

    // Nanjing splits its two among its counties; more than its own quota is refused in plain words.
    eventually_held(&cluster, "320100", id).await;
    let ran = ecovol(&cluster, "320100", &["campaign", "quotas", id, "--quota", "320102=3"]).await;
    assert_eq!(ran.code, 1, "{}", ran.out);
    assert!(ran.err.contains("more than this office's quota of 2"), "{}", ran.err);
    let ran = ecovol(
        &cluster,
        "320100",
        &["-o", "json", "campaign", "quotas", id, "--quota", "320102=1", "--quota", "320104=1"],
    )
    .await
    .json();
    assert_eq!(ran["campaign"]["state"], "passed_down");
    let regions: Vec<&str> =
        ran["campaign"]["quotas"].as_array().unwrap().iter().map(|q| q["region"].as_str().unwrap()).collect();
    assert_eq!(regions, ["320100", "320200", "320102", "320104"]);

    // Xuanwu nominates with the volunteer's consent; without the attestations the node refuses, naming the rules.
    eventually_held(&cluster, "320102", id).await;
    let a = volunteer_with_an_hour(&cluster, "320102", &numbers_of("320102")).await;
    let ran = ecovol(&cluster, "320102", &["campaign", "nominate", id, &a, "--consent-to-publicity"]).await;
    assert_eq!(ran.code, 1, "{}", ran.out);
    assert!(
        ran.err.contains("not_eco_system_staff: staff of the eco-environment system are not eligible")
            && ran.err.contains("service_outside_job_duties: only service outside job duties counts"),
        "{}",
        ran.err
    );
    let nominate = |volunteer: &str, consent: bool| {
        let mut args = vec!["campaign", "nominate", id, volunteer, "--story", "长期坚持河道巡护"];
        if consent {
            args.push("--consent-to-publicity");
        }
        args.extend(["--not-eco-system-staff", "--outside-job-duties"]);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let args = nominate(&a, true);
    let ran = ecovol(&cluster, "320102", &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    let a_name = &numbers["320102"].iter().find(|(n, _)| *n == a).unwrap().1.name;
    assert!(ran.err.contains(&format!("volunteer {a} nominated as 320102-")), "{}", ran.err);
    assert!(ran.out.contains("NOMINATION_ID") && ran.out.contains(a_name.as_str()), "{}", ran.out);

    // Qinhuai nominates without consent: at home the JSON says so, and the name stays.
    eventually_held(&cluster, "320104", id).await;
    let b = volunteer_with_an_hour(&cluster, "320104", &numbers_of("320104")).await;
    let args: Vec<String> = ["-o", "json"].into_iter().map(String::from).chain(nominate(&b, false)).collect();
    let at_home = ecovol(&cluster, "320104", &args.iter().map(String::as_str).collect::<Vec<_>>()).await.json();
    let nomination = &at_home["nominations"][0];
    assert_eq!(
        (nomination["consent_to_publicity"].clone(), nomination["name"].clone()),
        (Value::Bool(false), Value::Null)
    );
    assert_eq!(nomination["volunteer_number"], b.as_str(), "the local number is shown at home");
    let b_nomination = nomination["nomination_id"].as_str().unwrap().to_string();

    // Nanjing reviews: the nomination without consent shows why it has no name; one verdict each.
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let ran = ecovol(&cluster, "320100", &["campaign", "show", id]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    for header in ["NOMINATION_ID", "HOME", "STATUS", "HOURS", "STAR", "NAME", "REVIEW_COMMENT"] {
        assert!(ran.out.contains(header), "{header} missing: {}", ran.out);
    }
    assert!(row(&ran.out, &b_nomination).contains("(no consent)"), "{}", ran.out);
    let shown = ecovol(&cluster, "320100", &["-o", "json", "campaign", "show", id]).await.json();
    let a_nomination = shown["nominations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["home"] == "320102")
        .map(|n| n["nomination_id"].as_str().unwrap().to_string())
        .unwrap();
    assert!(row(&ran.out, &a_nomination).contains(a_name.as_str()), "{}", ran.out);
    assert!(shown["nominations"].as_array().unwrap().iter().all(|n| n["volunteer_number"].is_null()));
    let ran =
        ecovol(&cluster, "320100", &["campaign", "review", id, &a_nomination, "--endorse", "--comment", "推荐"]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert!(row(&ran.out, &a_nomination).contains("endorsed"), "{}", ran.out);
    let ran = ecovol(
        &cluster,
        "320100",
        &["campaign", "review", id, &b_nomination, "--reject", "--comment", "服务时长证明不足"],
    )
    .await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert!(row(&ran.out, &b_nomination).contains("rejected") && ran.out.contains("服务时长证明不足"), "{}", ran.out);
    let ran = ecovol(&cluster, "320100", &["campaign", "review", id, &b_nomination, "--endorse"]).await;
    assert_eq!(ran.code, 1, "{}", ran.out);
    assert!(ran.err.contains("rejected already"), "{}", ran.err);

    // Only the issuer selects, and not a rejected nomination.
    cluster.wait_delivered(DELIVERY).await.unwrap();
    let ran = ecovol(&cluster, "320100", &["campaign", "select", id, &a_nomination]).await;
    assert_eq!(ran.code, 1, "{}", ran.out);
    assert!(ran.err.contains("only the issuer (320000) selects"), "{}", ran.err);
    let ran = ecovol(&cluster, "320000", &["campaign", "select", id, &b_nomination]).await;
    assert_eq!(ran.code, 1, "{}", ran.out);
    assert!(ran.err.contains("cannot be selected"), "{}", ran.err);
    let ran = ecovol(&cluster, "320000", &["campaign", "select", id, &a_nomination]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert!(ran.out.contains("state:               selected"), "{}", ran.out);
    assert!(row(&ran.out, &a_nomination).contains("selected"), "{}", ran.out);
    assert!(ran.err.contains("ecovol profile VOLUNTEER"), "{}", ran.err);
    let listed = ecovol(&cluster, "320000", &["campaign", "list"]).await;
    assert!(
        listed.out.lines().nth(1).is_some_and(|line| line.starts_with(id) && line.contains("selected")),
        "{}",
        listed.out
    );

    // The honour reaches Xuanwu and shows in the volunteer's profile; Qinhuai's volunteer has none.
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        let profile = ecovol(&cluster, "320102", &["-o", "json", "profile", &a]).await.json();
        if let Some(honour) = profile["honours"].as_array().unwrap().first() {
            assert_eq!(honour["campaign_id"], id);
            assert_eq!(honour["awarded_by"], "320000");
            assert_eq!(honour["edition"], 1);
            assert_eq!(honour["publication_date"], publication.as_str());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no honour for {a}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ran = ecovol(&cluster, "320102", &["profile", &a]).await;
    assert_eq!(ran.code, 0, "{}", ran.err);
    assert!(ran.out.contains("CAMPAIGN_ID    TITLE"), "{}", ran.out);
    let honour = ran.out.lines().find(|line| line.starts_with(id)).unwrap_or_else(|| panic!("{}", ran.out));
    assert!(honour.contains("第1届最美生态环境志愿者") && honour.contains("320000") && honour.contains(&publication));
    let ran = ecovol(&cluster, "320104", &["profile", &b]).await;
    assert!(ran.out.contains("(no honours)"), "{}", ran.out);
    let at_home = ecovol(&cluster, "320102", &["-o", "json", "campaign", "show", id]).await.json();
    assert_eq!(at_home["nominations"][0]["status"], "selected");

    // A county cannot issue one.
    let ran = ecovol(&cluster, "320102", &issue).await;
    assert_eq!(ran.code, 1, "{}", ran.out);
    assert!(ran.err.contains("campaigns are issued by a province or a city"), "{}", ran.err);
    cluster.shutdown().await.unwrap();
}

#[tokio::test]
async fn usage_mistakes_exit_2_before_calling_the_node() {
    // Nothing listens on port 9 (discard): a usage mistake must be found before any call.
    let usage = |args: &[&str]| {
        let connection = ["--node", "http://127.0.0.1:9", "campaign"];
        connection.iter().chain(args).map(|arg| arg.to_string()).collect::<Vec<_>>()
    };
    let issue = |quota: &str| {
        let mut args = vec!["issue", "--title", "t", "--series", "s", "--edition", "1", "--open", "2026-03-01"];
        args.extend(["--close", "2026-04-30", "--publication", "2026-06-05", "--quota", "320100=2", "--quota"]);
        args.push(quota);
        usage(&args.iter().map(|arg| &**arg).collect::<Vec<_>>())
    };
    for (args, expected) in [
        (issue("320200:1"), "REGION=N"),
        (issue("320200=one"), "is not a whole number"),
        (issue("wuxi=1"), "is not a six-digit division code"),
        (usage(&["quotas", "320000-CA0001", "--quota", "320102"]), "REGION=N"),
        (usage(&["quotas", "320000-CA0001"]), "--quota"),
        (usage(&["issue", "--title", "t", "--series", "s", "--edition", "1", "--open", "5 June"]), "not a date"),
        (usage(&["review", "320000-CA0001", "320102-0123456789ab"]), "--endorse"),
        (usage(&["review", "320000-CA0001", "320102-0123456789ab", "--endorse", "--reject"]), "cannot be used with"),
        (usage(&["select", "320000-CA0001"]), "NOMINATION"),
        (usage(&["nominate", "320000-CA0001"]), "VOLUNTEER"),
    ] {
        let ran = ecovol_args(args.clone()).await;
        assert_eq!(ran.code, 2, "{args:?}: {}{}", ran.out, ran.err);
        assert!(ran.err.contains(expected), "{args:?}: {expected} not in {}", ran.err);
    }
    let ran = ecovol_args(usage(&["--help"])).await;
    assert_eq!(ran.code, 0);
    for command in ["issue", "quotas", "nominate", "review", "select", "show", "list"] {
        assert!(ran.out.contains(command), "{command} missing from help: {}", ran.out);
    }
}
