//! The `ecovol` command line end to end: `ecovol_node::cli::run_with` with captured output against a real node
//! over gRPC, and offline against the store of a node that is not running.

use ecovol_node::cli::console::display_width;
use ecovol_node::config::Config;
use ecovol_proto::v1 as pb;
use ecovol_tests::fixtures::{adult, identity_number};
use ecovol_tests::process::free_address;
use ecovol_tests::{NodeSpec, TestNode, write_node_files};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// What one command line printed and returned.
struct Ran {
    code: i32,
    out: String,
    err: String,
}

/// Runs `ecovol <args>` in this process and captures its output.
async fn ecovol(args: &[&str]) -> Ran {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let args = std::iter::once("ecovol").chain(args.iter().copied()).map(String::from);
    let code = ecovol_node::cli::run_with(args, &mut out, &mut err).await;
    Ran { code, out: String::from_utf8(out).expect("UTF-8 output"), err: String::from_utf8(err).expect("UTF-8 errors") }
}

/// Runs `ecovol --node <node> --token <token> <args>`.
async fn ecovol_on(node: &TestNode, token: &str, args: &[&str]) -> Ran {
    let address = format!("http://{}", node.address);
    let mut all = vec!["--node", address.as_str(), "--token", token];
    all.extend_from_slice(args);
    ecovol(&all).await
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

/// The display columns at which the cells of a table line start (a cell starts after a run of spaces).
fn cell_starts(line: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut column = 0;
    let mut previous_space = true;
    for c in line.chars() {
        if c != ' ' && previous_space {
            starts.push(column);
        }
        previous_space = c == ' ';
        column += display_width(c.encode_utf8(&mut [0; 4]));
    }
    starts
}

#[tokio::test]
async fn a_volunteer_registered_on_the_command_line_reads_back_as_json() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let identity = identity_number("330106", "19900101", 123);
    let registered = ecovol_on(
        &node,
        &node.tokens.staff,
        &[
            "volunteer",
            "register",
            "--name",
            "王小明",
            "--identity-number",
            &identity,
            "--phone",
            "13900000042",
            "--skill",
            "垃圾分类",
            "--skill",
            "水质监测",
            "--political-status",
            "masses",
            "--consent",
            "--home-division-code",
            "330106",
        ],
    )
    .await;
    assert_eq!(registered.code, 0, "{}", registered.err);
    let number_line = registered.out.lines().find(|line| line.starts_with("volunteer_number:"));
    assert_eq!(
        number_line.map(|line| line.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["volunteer_number:", "330106-00000001"])
    );
    assert!(!registered.out.contains(&identity), "the identity number is never shown: {}", registered.out);

    let fetched =
        ecovol_on(&node, &node.tokens.staff, &["volunteer", "get", "330106-00000001", "--output", "json"]).await;
    assert_eq!(fetched.code, 0, "{}", fetched.err);
    let volunteer = &json(&fetched.out)["volunteer"];
    assert_eq!(volunteer["volunteer_number"], "330106-00000001");
    assert_eq!(volunteer["name"], "王小明");
    assert_eq!(volunteer["phone"], "13900000042");
    assert_eq!(volunteer["gender"], "male", "sequence 123 is odd");
    assert_eq!(volunteer["birth_date"], "1990-01-01");
    assert_eq!(volunteer["skills"], serde_json::json!(["垃圾分类", "水质监测"]));
    assert_eq!(volunteer["political_status"], "masses");
    assert_eq!(volunteer["status"], "active");
    assert_eq!(volunteer["version"], 1);
    assert!(!fetched.out.contains(&identity));

    // The node holds what the command line said.
    let over_grpc = node
        .volunteers(&node.tokens.staff)
        .get_volunteer(pb::GetVolunteerRequest { volunteer_number: "330106-00000001".into() })
        .await
        .unwrap()
        .into_inner()
        .volunteer
        .unwrap();
    assert_eq!(over_grpc.name, "王小明");
    assert_eq!(over_grpc.skills, ["垃圾分类", "水质监测"]);
}

#[tokio::test]
async fn a_search_prints_an_aligned_table_with_one_row_per_volunteer() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let mut client = node.volunteers(&node.tokens.staff);
    for index in [1, 2] {
        client.register_volunteer(adult(index)).await.unwrap();
    }
    let found = ecovol_on(&node, &node.tokens.staff, &["volunteer", "search", "--name-prefix", "志愿者"]).await;
    assert_eq!(found.code, 0, "{}", found.err);
    let lines: Vec<&str> = found.out.lines().collect();
    assert_eq!(lines.len(), 3, "{}", found.out);
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["VOLUNTEER_NUMBER", "NAME", "PHONE", "GENDER", "BIRTH_DATE", "SKILLS", "STATUS", "TEAM_IDS"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["330106-00000001", "志愿者1", "13900000001", "female", "1960-01-02", "垃圾分类", "active", "-"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["330106-00000002", "志愿者2", "13900000002", "female", "1960-01-03", "垃圾分类", "active", "-"]
    );
    // Columns line up on screen although the names are Chinese (two columns per character).
    assert_eq!(cell_starts(lines[1]), cell_starts(lines[0]), "{}", found.out);
    assert_eq!(cell_starts(lines[2]), cell_starts(lines[0]), "{}", found.out);
    assert!(found.err.is_empty(), "no more pages, no hint: {}", found.err);

    // A page of one says on standard error how to get the next; following it gives the second volunteer.
    let first = ecovol_on(&node, &node.tokens.staff, &["volunteer", "search", "--page-size", "1"]).await;
    assert_eq!(first.code, 0, "{}", first.err);
    assert_eq!(first.out.lines().count(), 2, "{}", first.out);
    assert!(first.out.contains("330106-00000001"), "{}", first.out);
    let token = first
        .err
        .split_once("--page-token ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no page token hint: {}", first.err));
    let second =
        ecovol_on(&node, &node.tokens.staff, &["volunteer", "search", "--page-size", "1", "--page-token", token]).await;
    assert_eq!(second.code, 0, "{}", second.err);
    assert_eq!(second.out.lines().nth(1).and_then(|row| row.split_whitespace().next()), Some("330106-00000002"));
    assert!(second.err.is_empty(), "the last page gives no hint: {}", second.err);
    // As JSON the token is part of the result.
    let as_json =
        ecovol_on(&node, &node.tokens.staff, &["volunteer", "search", "--page-size", "1", "--output", "json"]).await;
    assert_eq!(json(&as_json.out)["next_page_token"], token);
}

#[tokio::test]
async fn a_bad_identity_number_prints_the_field_violation_in_plain_words_and_exits_1() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let valid = identity_number("330106", "19900101", 123);
    let right = valid.chars().last().unwrap();
    let wrong = if right == '0' { '1' } else { '0' };
    let broken = format!("{}{wrong}", &valid[..17]);
    let refused = ecovol_on(
        &node,
        &node.tokens.staff,
        &[
            "volunteer",
            "register",
            "--name",
            "王小明",
            "--identity-number",
            &broken,
            "--phone",
            "13900000042",
            "--political-status",
            "masses",
            "--consent",
            "--home-division-code",
            "330106",
        ],
    )
    .await;
    assert_eq!(refused.code, 1);
    assert!(refused.out.is_empty(), "{}", refused.out);
    let lines: Vec<&str> = refused.err.lines().collect();
    assert!(lines[0].starts_with("refused: invalid request"), "{}", refused.err);
    let expected =
        format!("  - identity_number: check character is '{wrong}' but the GB 11643 checksum gives '{right}'");
    assert!(lines.contains(&expected.as_str()), "expected {expected:?} in:\n{}", refused.err);
    // Nothing was registered.
    let all = node
        .volunteers(&node.tokens.staff)
        .search_volunteers(pb::SearchVolunteersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(all.volunteers.is_empty());

    // A wrong token is a refusal too, with a hint.
    let unknown = ecovol_on(&node, "no-such-token", &["volunteer", "get", "330106-00000001"]).await;
    assert_eq!(unknown.code, 1);
    assert!(unknown.err.starts_with("refused: not signed in"), "{}", unknown.err);
    assert!(unknown.err.contains("--token"), "{}", unknown.err);
}

#[tokio::test]
async fn an_unreachable_node_exits_1_saying_it_cannot_be_reached() {
    // A port that was free a moment ago: nothing listens there.
    let address = free_address().unwrap();
    let node = format!("http://{address}");
    let ran = ecovol(&["--node", &node, "--token", "t0k", "volunteer", "get", "330106-00000001"]).await;
    assert_eq!(ran.code, 1);
    assert!(ran.out.is_empty(), "{}", ran.out);
    assert!(ran.err.starts_with(&format!("cannot reach the node at {node}: ")), "{}", ran.err);
    assert!(ran.err.contains("is it running?"), "{}", ran.err);
}

#[tokio::test]
async fn an_account_created_offline_signs_in_once_the_node_runs() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let config_path = write_node_files(dir.path(), &NodeSpec::county("330106"), &address.to_string()).unwrap();
    let config_arg = config_path.to_str().unwrap();

    // The node is not running: the command works on its store directly.
    let created = ecovol(&[
        "--output",
        "json",
        "account",
        "create",
        "--config",
        config_arg,
        "--name",
        "首位运维",
        "--department",
        "ecology-bureau",
        "--role",
        "operator",
    ])
    .await;
    assert_eq!(created.code, 0, "{}", created.err);
    let printed = json(&created.out);
    let token = printed["token"].as_str().expect("token printed").to_string();
    assert!(token.len() >= 32, "a token worth the name: {token}");
    assert_eq!(printed["account"]["name"], "首位运维");
    assert_eq!(printed["account"]["roles"], serde_json::json!(["operator"]));
    let account_id = printed["account"]["account_id"].as_str().unwrap().to_string();
    assert!(created.err.contains("shown only once"), "{}", created.err);
    // The offline store checks its input like the node does.
    let refused = ecovol(&[
        "account",
        "create",
        "--config",
        config_arg,
        "--name",
        "x",
        "--department",
        "other",
        "--role",
        "operator",
        "--role",
        "staff",
    ])
    .await;
    assert_eq!(refused.code, 1);
    assert!(refused.err.contains("  - roles: the operator role cannot be combined"), "{}", refused.err);

    let config = Config::load_with_env(Some(&config_path), std::iter::empty()).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(ecovol_node::server::run(config, listener, async move {
        let _ = stopped.await;
    }));
    let node_url = format!("http://{address}");
    let whoami = ecovol(&["--node", &node_url, "--token", &token, "--output", "json", "account", "whoami"]).await;
    assert_eq!(whoami.code, 0, "{}", whoami.err);
    let account = &json(&whoami.out)["account"];
    assert_eq!(account["account_id"], account_id.as_str());
    assert_eq!(account["name"], "首位运维");
    assert_eq!(account["department"], "ecology-bureau");
    assert_eq!(account["roles"], serde_json::json!(["operator"]));
    // The operator can work: it creates a staff account on the running node.
    let staff = ecovol(&[
        "--node",
        &node_url,
        "--token",
        &token,
        "account",
        "create",
        "--name",
        "工作人员",
        "--department",
        "ecology-bureau",
        "--role",
        "staff",
    ])
    .await;
    assert_eq!(staff.code, 0, "{}", staff.err);
    assert!(staff.out.lines().any(|line| line.starts_with("token:")), "{}", staff.out);
    let listed = ecovol(&["--node", &node_url, "--token", &token, "--output", "json", "account", "list"]).await;
    let names: Vec<String> = json(&listed.out)["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|account| account["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["首位运维", "工作人员"]);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_pilot_era_team_is_created_with_a_warning_and_its_members_listed() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let first17 = "91330106MA2H00005";
    let right = ecovol_node::validate::credit_check_char(first17).unwrap();
    let pilot = format!("{first17}{}", if right == '0' { '1' } else { '0' });
    let created = ecovol_on(
        &node,
        &node.tokens.staff,
        &[
            "team",
            "create",
            "--name",
            "西湖护水队",
            "--kind",
            "social-organisation",
            "--registered",
            "--credit-code",
            &pilot,
        ],
    )
    .await;
    assert_eq!(created.code, 0, "{}", created.err);
    let field = |name: &str| {
        created
            .out
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")).map(str::trim))
            .unwrap_or_else(|| panic!("no {name} in {}", created.out))
            .to_string()
    };
    assert_eq!(field("team_id"), "330106-T000001");
    assert_eq!(field("credit_code"), pilot);
    assert_eq!(field("registered"), "yes");
    let warning = format!("warning: credit code fails the GB 32100 check (expected check character {right})");
    assert!(created.err.starts_with(&warning), "{}", created.err);

    node.volunteers(&node.tokens.staff).register_volunteer(adult(5)).await.unwrap();
    let added = ecovol_on(
        &node,
        &node.tokens.staff,
        &["team", "add-member", "330106-T000001", "330106-00000001", "--role", "backbone"],
    )
    .await;
    assert_eq!(added.code, 0, "{}", added.err);
    let members = ecovol_on(&node, &node.tokens.staff, &["team", "members", "330106-T000001", "-o", "json"]).await;
    assert_eq!(members.code, 0, "{}", members.err);
    let members = json(&members.out);
    let member = &members["members"][0];
    assert_eq!(member["volunteer_number"], "330106-00000001");
    assert_eq!(member["volunteer_name"], "志愿者5");
    assert_eq!(member["role"], "backbone");
    assert_eq!(member["left_at"], serde_json::Value::Null);
    assert_eq!(members["members"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn offline_work_on_the_store_of_a_running_node_is_refused_in_plain_words() {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let config = node.config_path.to_str().unwrap();
    let ran =
        ecovol(&["account", "create", "--config", config, "--name", "x", "--department", "other", "--role", "staff"])
            .await;
    assert_eq!(ran.code, 1);
    assert!(ran.out.is_empty(), "no token for an account that was not created: {}", ran.out);
    assert!(ran.err.contains("is in use by another process (is the node running?"), "{}", ran.err);
    // The running node is unharmed and has no such account.
    let accounts = node
        .accounts(&node.tokens.operator)
        .list_accounts(pb::ListAccountsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .accounts;
    assert_eq!(accounts.len(), 4, "{accounts:?}");
}
