//! `ecovol plan …` end to end: the example plan file (`deploy/examples/plan.toml`) drafted, returned, redrafted,
//! countersigned by all six departments and issued at the province, received and adopted by a city with an
//! adoption file, reported on, shown with its progress table and closed — every step through
//! `ecovol_node::cli::run_with`, against a province, two cities and a district served in this process. Plus the
//! usage mistakes an office makes in its files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use ecovol_proto::v1 as pb;
use ecovol_tests::cluster::{Cluster, ClusterNode, JIANGSU};
use serde_json::Value;

const DELIVERY: Duration = Duration::from_secs(60);

/// What one command line printed and returned.
struct Ran {
    code: i32,
    out: String,
    err: String,
}

/// Runs `ecovol --node <node's office> --token <token> <args>` in this process.
async fn ecovol(node: &ClusterNode, token: &str, args: &[&str]) -> Ran {
    let address = format!("http://{}", node.office);
    let all = ["ecovol", "--node", &address, "--token", token].into_iter().chain(args.iter().copied());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = ecovol_node::cli::run_with(all.map(String::from), &mut out, &mut err).await;
    Ran { code, out: String::from_utf8(out).unwrap(), err: String::from_utf8(err).unwrap() }
}

/// As `ecovol`, expecting success.
async fn ok(node: &ClusterNode, token: &str, args: &[&str]) -> Ran {
    let ran = ecovol(node, token, args).await;
    assert_eq!(ran.code, 0, "ecovol {args:?} on {}: {}{}", node.code, ran.out, ran.err);
    ran
}

/// As `ecovol … --output json`, expecting success.
async fn ok_json(node: &ClusterNode, token: &str, args: &[&str]) -> Value {
    let all: Vec<&str> = args.iter().copied().chain(["--output", "json"]).collect();
    let ran = ok(node, token, &all).await;
    serde_json::from_str(&ran.out).unwrap_or_else(|error| panic!("not JSON ({error}): {}", ran.out))
}

/// A staff account of `department` on `node`, created on the command line by its operator; returns its token.
async fn staff_of(node: &ClusterNode, department: &str) -> String {
    let args = ["account", "create", "--name", department, "--department", department, "--role", "staff"];
    let created = ok_json(node, &node.tokens.operator, &args).await;
    created["token"].as_str().unwrap().to_string()
}

/// The example plan with its dates moved into this year, so that today's figures fall inside its period.
fn example_this_year(dir: &Path) -> (PathBuf, NaiveDate, NaiveDate) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/plan.toml");
    let year = ecovol_node::wire::today_china().year();
    let text = std::fs::read_to_string(example).unwrap().replace("2026-", &format!("{year}-"));
    let path = dir.join("plan.toml");
    std::fs::write(&path, text).unwrap();
    let day = |month, day| NaiveDate::from_ymd_opt(year, month, day).unwrap();
    (path, day(1, 1), day(12, 31))
}

/// Waits until `node` lists plan `id` in `state` (e.g. `received`).
async fn eventually_listed(node: &ClusterNode, id: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        let listed = ok_json(node, &node.tokens.staff, &["plan", "list"]).await;
        let plans = listed["plans"].as_array().unwrap();
        if let Some(plan) = plans.iter().find(|p| p["plan_id"] == id && p["state"] == state) {
            return plan.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{} never listed {id} as {state}: {listed}", node.code);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn state(answer: &Value) -> &str {
    answer["plan"]["state"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_goes_round_the_departments_down_to_a_city_and_back_as_progress() {
    let cluster = Cluster::start(&JIANGSU[..4], "").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (file, start, end) = example_this_year(dir.path());
    let file = file.to_str().unwrap();
    let province = cluster.node("320000");
    let ecology = province.tokens.staff.clone();
    let civil = province.tokens.staff_civil_affairs.clone();
    let mut signers = vec![("ecology-bureau", ecology.clone()), ("civil-affairs", civil.clone())];
    for department in ["civilization-office", "education", "youth-league", "womens-federation"] {
        signers.push((department, staff_of(province, department).await));
    }

    // Drafted from the example file by the ecology bureau.
    let drafted = ok_json(province, &ecology, &["plan", "draft", "--file", file]).await;
    let id = drafted["plan"]["plan_id"].as_str().unwrap().to_string();
    assert_eq!((id.as_str(), state(&drafted)), ("320000-PL0001", "draft"));
    assert_eq!(drafted["plan"]["metrics"].as_array().unwrap().len(), 5);
    assert_eq!(drafted["plan"]["tasks"][2]["owner"], "civilization-office");
    assert_eq!(drafted["plan"]["tasks"][2]["added_by"], "320000");

    // Submitted; civil affairs returns it with a comment; redrafted from the same file and submitted again.
    let submitted = ok(province, &ecology, &["plan", "submit", &id]).await;
    assert!(submitted.out.contains("countersigning"), "{}", submitted.out);
    assert!(
        submitted.err.contains("waiting for the signatures of: ecology-bureau, civilization-office"),
        "{}",
        submitted.err
    );
    let returned = ok(province, &civil, &["plan", "return", &id, "--comment", "请补充社会组织登记的时间要求"]).await;
    assert!(returned.out.contains("civil-affairs: 请补充社会组织登记的时间要求"), "{}", returned.out);
    assert!(returned.err.contains(&format!("ecovol plan draft --plan-id {id}")), "{}", returned.err);
    let redrafted = ok_json(province, &ecology, &["plan", "draft", "--plan-id", &id, "--file", file]).await;
    assert_eq!((redrafted["plan"]["plan_id"].as_str(), state(&redrafted)), (Some(id.as_str()), "draft"));
    ok(province, &ecology, &["plan", "submit", &id]).await;

    // Not issued before every department signed; then each signs in turn.
    let early = ecovol(province, &ecology, &["plan", "issue", &id]).await;
    assert_eq!(early.code, 1, "{}", early.err);
    assert!(early.err.starts_with("refused: not possible in the record's current state"), "{}", early.err);
    for (index, (department, token)) in signers.iter().enumerate() {
        let signed = ok_json(province, token, &["plan", "sign", &id]).await;
        assert!(signed["plan"]["signed"].as_array().unwrap().iter().any(|d| d == department), "{signed}");
        let waiting = signed["plan"]["awaiting_signature"].as_array().unwrap().len();
        assert_eq!(waiting, signers.len() - index - 1, "{signed}");
    }
    let issued = ok(province, &ecology, &["plan", "issue", &id]).await;
    assert!(issued.out.lines().any(|line| line.starts_with("state:") && line.ends_with("issued")), "{}", issued.out);
    // The issuer's own plan is not adopted.
    let own = ecovol(province, &ecology, &["plan", "adopt", &id]).await;
    assert_eq!(own.code, 1, "{}", own.err);

    // Nanjing receives it (pulled from the province) and adopts it with its own task and the volunteers target
    // split among its districts; a split naming no target of the plan is a mistake in the file.
    let nanjing = cluster.node("320100");
    let received = eventually_listed(nanjing, &id, "received").await;
    assert_eq!(received["received_from"], "320000");
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(&wrong, "[[splits]]\ntarget = \"volunteers\"\nper_region = { \"320102\" = 1 }\n").unwrap();
    let refused =
        ecovol(nanjing, &nanjing.tokens.staff, &["plan", "adopt", &id, "--file", wrong.to_str().unwrap()]).await;
    assert_eq!(refused.code, 2, "{}", refused.err);
    assert!(
        refused.err.contains("wrong.toml, line 2: plan 320000-PL0001 has no target \"volunteers\""),
        "{}",
        refused.err
    );
    let year = start.year();
    let adoption = dir.path().join("adoption.toml");
    std::fs::write(
        &adoption,
        format!(
            "[[tasks]]\nid = \"nanjing-stations\"\ntitle = \"在各区建成生态环境志愿服务站点\"\n\
             owner = \"ecology-bureau\"\ndue = {year}-12-31\n\n\
             [[splits]]\ntarget = \"new-volunteers\"\nper_region = {{ \"320102\" = 18000, \"320104\" = 12000 }}\n"
        ),
    )
    .unwrap();
    let adopted =
        ok_json(nanjing, &nanjing.tokens.staff, &["plan", "adopt", &id, "--file", adoption.to_str().unwrap()]).await;
    assert_eq!(state(&adopted), "adopted");
    assert_eq!(adopted["plan"]["metrics"][0]["per_region"]["320102"], 18000);
    // … and passes it on to Xuanwu with its split.
    let xuanwu = cluster.node("320102");
    eventually_listed(xuanwu, &id, "received").await;
    let copy = ok_json(xuanwu, &xuanwu.tokens.staff, &["plan", "show", &id]).await;
    assert_eq!(copy["plan"]["received_from"], "320100");
    assert_eq!(copy["plan"]["metrics"][0]["per_region"]["320102"], 18000);

    // Task owners report at the office that added the task; another department may not.
    ok(
        nanjing,
        &nanjing.tokens.staff,
        &["plan", "report", &id, "nanjing-stations", "--percent", "60", "--note", "已建成8个"],
    )
    .await;
    let not_yours =
        ecovol(province, &ecology, &["plan", "report", &id, "organisation-registration", "--percent", "50"]).await;
    assert_eq!(not_yours.code, 1, "{}", not_yours.err);
    assert!(not_yours.err.contains("refused: this account may not do that"), "{}", not_yours.err);
    ok(province, &civil, &["plan", "report", &id, "organisation-registration", "--percent", "100"]).await;
    let over =
        ecovol(province, &civil, &["plan", "report", &id, "organisation-registration", "--percent", "101"]).await;
    assert_eq!(over.code, 2, "clap refuses a percent above 100: {}", over.err);

    // A volunteer registered in Xuanwu counts toward Nanjing's target once it has reached the province.
    let mut registry = pb::volunteer_service_client::VolunteerServiceClient::new(xuanwu.staff());
    registry.register_volunteer(ecovol_tests::federation_load::volunteer("320102", 1)).await.unwrap();
    cluster.wait_delivered(DELIVERY).await.unwrap();

    // At the province: one progress row per target and region, with the status the rules give; the city's task
    // report, its adoption and the province's compliance checks.
    let deadline = tokio::time::Instant::now() + DELIVERY;
    let shown = loop {
        let shown = ok(province, &ecology, &["plan", "show", &id]).await;
        if shown.out.contains("nanjing-stations") {
            break shown;
        }
        assert!(tokio::time::Instant::now() < deadline, "the city's report never arrived: {}", shown.out);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = &shown.out;
    for header in ["TARGET_ID", "METRIC", "REGION", "TARGET", "ACTUAL", "PERCENT", "STATUS", "LAST_CONTACT", "STALE"] {
        assert!(out.contains(header), "{header} missing: {out}");
    }
    let today = ecovol_node::wire::today_china();
    let expected = [
        ("new-volunteers", "new-volunteers", "320100", 30000, 1),
        ("new-volunteers", "new-volunteers", "320200", 20000, 0),
        ("service-hours", "confirmed-hours", "320100", 600000, 0),
        ("service-hours", "confirmed-hours", "320200", 400000, 0),
        ("projects", "projects-published", "320100", 400, 0),
        ("projects", "projects-published", "320200", 260, 0),
        ("teams", "teams", "320100", 180, 0),
        ("teams", "teams", "320200", 120, 0),
        ("trainings", "trainings", "320100", 60, 0),
        ("trainings", "trainings", "320200", 40, 0),
    ];
    for (target_id, metric, region, target, actual) in expected {
        let row: Vec<&str> = out
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<&str>>())
            .find(|cells| cells.len() == 9 && cells[0] == target_id && cells[2] == region)
            .unwrap_or_else(|| panic!("no row for {target_id} in {region}: {out}"));
        let status = ecovol_node::plan::status_of(target, actual, start, end, today, 0.5);
        let status = ecovol_node::cli::plan::status_name(status as i32).unwrap();
        let (target, actual) = (target.to_string(), actual.to_string());
        assert_eq!(row[..7], [target_id, metric, region, target.as_str(), actual.as_str(), "0", status.as_str()]);
        assert!(row[7].ends_with("+08:00"), "last contact in China time: {row:?}");
        assert_eq!(row[8], "no", "not stale: {row:?}");
    }
    let reports = out.split("task reports").nth(1).unwrap_or_default();
    let report = |task: &str| -> Vec<&str> {
        let line = reports.lines().find(|line| line.starts_with(task)).unwrap_or_default();
        line.split_whitespace().collect()
    };
    assert_eq!(report("nanjing-stations")[2..6], ["320100", "ecology-bureau", "60", "on-track"], "{out}");
    assert_eq!(report("organisation-registration")[2..6], ["320000", "civil-affairs", "100", "done"], "{out}");
    assert!(out.contains("adopted by:\nREGION  ADOPTED_AT\n320100"), "{out}");
    assert!(out.contains("compliance checks:\nRULE"), "{out}");
    assert!(out.contains("the province trains volunteer workers, organisation heads and volunteers"), "{out}");

    // Closed with an evaluation by the ecology bureau; the city's copy closes too.
    let closed = ok(province, &ecology, &["plan", "close", &id, "--evaluation", "总体按期推进，南京已分解目标"]).await;
    assert!(closed.out.contains("总体按期推进"), "{}", closed.out);
    eventually_listed(nanjing, &id, "closed").await;
    let after =
        ecovol(province, &civil, &["plan", "report", &id, "organisation-registration", "--percent", "100"]).await;
    assert_eq!(after.code, 1, "nothing happens to a closed plan: {}", after.err);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_in_a_plan_file_are_usage_errors_that_name_the_line() {
    let cluster = Cluster::start(&JIANGSU[..4], "").await.unwrap();
    let province = cluster.node("320000");
    let dir = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/plan.toml")).unwrap();
    let draft = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let line_of = |text: &str, needle: &str| text.lines().position(|line| line.contains(needle)).unwrap() + 1;

    // An unknown department name.
    let police = example.replacen("owner = \"civil-affairs\"", "owner = \"police\"", 1);
    let path = draft("police.toml", police.clone());
    let ran = ecovol(province, &province.tokens.staff, &["plan", "draft", "--file", path.to_str().unwrap()]).await;
    assert_eq!(ran.code, 2, "{}", ran.err);
    let line = line_of(&police, "\"police\"");
    assert!(
        ran.err.starts_with(&format!("error: {}, line {line}: unknown department \"police\"", path.display())),
        "{}",
        ran.err
    );
    assert!(ran.err.contains("use one of ecology-bureau, civilization-office, social-work"), "{}", ran.err);
    assert!(ran.err.contains("owner = \"police\""), "the line itself: {}", ran.err);

    // A file that is not TOML.
    let broken = example.replacen("title = \"2026", "title = 2026\"", 1);
    let path = draft("broken.toml", broken.clone());
    let ran = ecovol(province, &province.tokens.staff, &["plan", "draft", "--file", path.to_str().unwrap()]).await;
    assert_eq!(ran.code, 2, "{}", ran.err);
    assert!(ran.err.contains(&format!("line {}", line_of(&broken, "title = 2026\""))), "{}", ran.err);

    // A key the file does not have, a missing file, and an adoption file with a bad date.
    let typo = example.replacen("areas = ", "area = ", 1);
    let path = draft("typo.toml", typo);
    let ran = ecovol(province, &province.tokens.staff, &["plan", "draft", "--file", path.to_str().unwrap()]).await;
    assert_eq!(ran.code, 2, "{}", ran.err);
    assert!(ran.err.contains("unknown field `area`"), "{}", ran.err);
    let ran = ecovol(province, &province.tokens.staff, &["plan", "draft", "--file", "/nonexistent/plan.toml"]).await;
    assert_eq!(ran.code, 2, "{}", ran.err);
    assert!(ran.err.starts_with("error: --file /nonexistent/plan.toml: "), "{}", ran.err);
    let path = draft(
        "adoption.toml",
        "[[tasks]]\nid = \"a\"\ntitle = \"b\"\nowner = \"education\"\ndue = 2026-13-01\n".into(),
    );
    let ran =
        ecovol(province, &province.tokens.staff, &["plan", "adopt", "320000-PL0001", "--file", path.to_str().unwrap()])
            .await;
    assert_eq!(ran.code, 2, "{}", ran.err);
    assert!(ran.err.contains("line 5"), "{}", ran.err);

    // Nothing was drafted; a file the node refuses (a region outside the province) is a refusal, exit 1.
    let listed = ok(province, &province.tokens.staff, &["plan", "list"]).await;
    assert_eq!(listed.out, "(no plans)\n");
    let outside = example.replacen("\"320200\" = 20000", "\"330100\" = 20000", 1);
    let path = draft("outside.toml", outside);
    let ran = ecovol(province, &province.tokens.staff, &["plan", "draft", "--file", path.to_str().unwrap()]).await;
    assert_eq!(ran.code, 1, "{}", ran.err);
    assert!(ran.err.contains("metrics[0].per_region[1].region: 330100 is outside 320000"), "{}", ran.err);
    // Only a lead department drafts.
    let path = draft("plan.toml", example);
    let ran =
        ecovol(province, &province.tokens.staff_civil_affairs, &["plan", "draft", "--file", path.to_str().unwrap()])
            .await;
    assert_eq!(ran.code, 1, "{}", ran.err);
    assert!(ran.err.contains("only staff of a lead department draft the plan"), "{}", ran.err);
    cluster.shutdown().await.unwrap();
}
