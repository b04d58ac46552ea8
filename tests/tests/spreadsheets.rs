//! `ecovol import` and `ecovol export` end to end: the command line against a real node over mutual TLS (the
//! office's CA signs the node's certificate and the staff member's client certificate, bound to a staff
//! account), real .csv and .xlsx files in a temporary folder.
//!
//! The 100,000-row streaming import is `#[ignore]`d: run it with
//! `cargo test -p ecovol-tests --test spreadsheets -- --ignored --nocapture` (nextest's profile ends a test after
//! five minutes, and the run takes longer on two cores); its figures are in docs/SPREADSHEETS.md.

use std::path::{Path, PathBuf};

use ecovol_node::crypto::certificate_sha256;
use ecovol_node::exchange::sheet::SheetReader;
use ecovol_node::exchange::table::{Cell, Column, Format, Language, write_table};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::service_record_service_client::ServiceRecordServiceClient;
use ecovol_tests::fixtures::adult;
use ecovol_tests::scenario::{authed, served_cast};
use ecovol_tests::{NodeSpec, TestNode};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

/// A county node serving mutual TLS, and the files a staff member's command line uses to reach it.
struct Office {
    node: TestNode,
    /// `--node https://… --ca … --cert … --key …`
    connection: Vec<String>,
    dir: tempfile::TempDir,
}

impl Office {
    async fn start(extra_toml: &str) -> Office {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.distinguished_name.push(DnType::CommonName, "office CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate().expect("key");
        let ca_pem = params.self_signed(&ca_key).expect("CA").pem();
        let issuer = Issuer::new(params, ca_key);
        let issue = |names: &[&str], purpose| {
            let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
            params.distinguished_name.push(DnType::CommonName, "ecovol test");
            params.extended_key_usages = vec![purpose];
            params.use_authority_key_identifier_extension = true;
            let key = KeyPair::generate().expect("key");
            (params.signed_by(&key, &issuer).expect("signed"), key)
        };
        let (server, server_key) = issue(&["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
        let (client, client_key) = issue(&[], ExtendedKeyUsagePurpose::ClientAuth);
        let spec = NodeSpec {
            extra_toml: format!(
                "[office.tls]\ncert_file = \"office.pem\"\nkey_file = \"office.key\"\nclient_ca_file = \"clients.pem\"\n\
                 {extra_toml}"
            ),
            ..NodeSpec::county("330106")
        };
        let (server_pem, server_key_pem) = (server.pem(), server_key.serialize_pem());
        let files: [(&str, &[u8]); 3] = [
            ("office.pem", server_pem.as_bytes()),
            ("office.key", server_key_pem.as_bytes()),
            ("clients.pem", ca_pem.as_bytes()),
        ];
        let node = TestNode::start_tls(spec, &files, ca_pem.as_bytes()).await.expect("TLS node starts");
        node.accounts(&node.tokens.operator)
            .create_account(pb::CreateAccountRequest {
                name: "表格管理员".into(),
                department: pb::Department::EcologyBureau as i32,
                roles: vec![pb::Role::Staff as i32],
                client_cert_sha256: certificate_sha256(client.der()),
                ..Default::default()
            })
            .await
            .expect("certificate bound to a staff account");
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("written");
            path.display().to_string()
        };
        let connection = vec![
            "--node".to_string(),
            format!("https://localhost:{}", node.address.port()),
            "--ca".into(),
            write("ca.pem", ca_pem),
            "--cert".into(),
            write("me.pem", client.pem()),
            "--key".into(),
            write("me.key", client_key.serialize_pem()),
        ];
        Office { node, connection, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn ecovol(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["ecovol".to_string()];
        all.extend(self.connection.iter().cloned());
        all.extend(args.iter().map(|arg| arg.to_string()));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = ecovol_node::cli::run_with(all, &mut out, &mut err).await;
        (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
    }

    async fn volunteer_count(&self) -> usize {
        let request = pb::SearchVolunteersRequest { page_size: 1000, include_inactive: true, ..Default::default() };
        let found = self.node.volunteers(&self.node.tokens.staff).search_volunteers(request).await.expect("search");
        found.into_inner().volunteers.len()
    }
}

/// Every row of a spreadsheet, the header first.
fn read_all(path: &Path) -> Vec<Vec<String>> {
    let mut reader = SheetReader::open(path).unwrap_or_else(|error| panic!("{error}"));
    let mut rows = vec![reader.headers().to_vec()];
    while let Some(row) = reader.next_row().expect("row") {
        rows.push(row.cells);
    }
    rows
}

fn csv_line(cells: &[&str]) -> String {
    cells.join(",") + "\n"
}

#[tokio::test]
async fn volunteers_import_from_csv_and_xlsx_with_an_error_report_and_nothing_twice() {
    let office = Office::start("").await;
    let (one, two, three) = (adult(101), adult(102), adult(103));
    let bad_check_digit = "15000019970319128X";
    let mut csv = String::from("\u{FEFF}");
    csv +=
        &csv_line(&["序号", "姓名", "身份证号码", "手机号", "政治面貌", "技能", "所在地区划代码", "同意处理个人信息"]);
    csv += &csv_line(&["1", &one.name, &one.identity_number, &one.phone, "群众", "垃圾分类、水质监测", "330106", "是"]);
    csv += &csv_line(&["2", &two.name, &two.identity_number, &two.phone, "共青团员", "", "330106", "是"]);
    csv += &csv_line(&["3", "坏号码", bad_check_digit, "13900000999", "群众", "", "330106", "是"]);
    csv += &csv_line(&["4", "无党派", &adult(104).identity_number, "13900000998", "党外人士", "", "330106", "是"]);
    csv += &csv_line(&["5", &three.name, &three.identity_number, &three.phone, "中共党员", "", "330106", "是"]);
    let file = office.path("名册.csv");
    std::fs::write(&file, csv).expect("written");
    let file_arg = file.display().to_string();

    // A dry run maps the columns and finds the local error, sending nothing.
    let (code, _, err) = office.ecovol(&["import", "volunteers", &file_arg, "--dry-run"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("identity_number") && err.contains("身份证号码"), "{err}");
    assert!(err.contains("ignored columns: 序号"), "{err}");
    assert!(err.contains("row 5, column 政治面貌"), "{err}");
    assert_eq!(office.volunteer_count().await, 0);

    let (code, out, err) = office.ecovol(&["import", "volunteers", &file_arg]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("5 rows read: 3 created, 0 already there, 2 refused"), "{out}");
    assert_eq!(office.volunteer_count().await, 3);
    let report = read_all(&office.path("名册.csv.errors.csv"));
    assert_eq!(report[0], ["行号", "列", "错误原因", "服务器字段"]);
    assert_eq!(report.len(), 3, "{report:?}");
    // Row 4 of the file (the header is row 1) broke the node's identity-number rule.
    assert_eq!(report[1][0], "4");
    assert_eq!(report[1][1], "身份证号码");
    assert!(report[1][2].contains("check"), "{report:?}");
    assert_eq!(report[1][3], "identity_number");
    // Row 5 was refused here: no server field.
    assert_eq!(&report[2][..2], ["5", "政治面貌"]);
    assert_eq!(report[2][3], "");

    // The same file again creates nothing.
    let (code, out, _) = office.ecovol(&["import", "volunteers", &file_arg]).await;
    assert_eq!(code, 1);
    assert!(out.contains("5 rows read: 0 created, 3 already there, 2 refused"), "{out}");
    assert_eq!(office.volunteer_count().await, 3);

    // An .xlsx with English headers (written with rust_xlsxwriter), one new volunteer and one known.
    let (four, five) = (adult(105), adult(101));
    let columns = [
        Column::new("name", "name", "Name"),
        Column::new("identity_number", "id", "ID Number"),
        Column::new("phone", "phone", "Mobile"),
        Column::new("political_status", "ps", "Political Status"),
        Column::new("home_division_code", "code", "Home Division Code"),
        Column::new("consent", "consent", "Consent"),
    ];
    let row = |v: &pb::RegisterVolunteerRequest| {
        vec![
            Cell::text(&v.name),
            Cell::text(&v.identity_number),
            Cell::Integer(v.phone.parse().expect("digits")),
            Cell::text("masses"),
            Cell::Integer(330106),
            Cell::text("yes"),
        ]
    };
    let xlsx = office.path("roster.xlsx");
    write_table(&xlsx, Format::Xlsx, &columns, &[row(&four), row(&five)], Language::En, "Sheet1").expect("xlsx");
    let (code, out, err) = office.ecovol(&["import", "volunteers", &xlsx.display().to_string()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 rows read: 1 created, 1 already there, 0 refused"), "{out}");
    assert!(!office.path("roster.xlsx.errors.csv").exists());
    assert_eq!(office.volunteer_count().await, 4);

    // A file without a required column is a usage error, before anything is sent.
    let partial = office.path("partial.csv");
    std::fs::write(&partial, "姓名,手机号\n张三,13900000001\n").expect("written");
    let (code, _, err) = office.ecovol(&["import", "volunteers", &partial.display().to_string()]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("identity_number"), "{err}");
    let (code, _, _) = office
        .ecovol(&["import", "volunteers", &partial.display().to_string(), "--mapping", "identity_number=微信"])
        .await;
    assert_eq!(code, 2);
}

#[tokio::test]
async fn teams_import_once_and_export_reads_back_with_chinese_headers() {
    let office = Office::start("").await;
    let csv = "组织名称,组织类型,统一社会信用代码,枢纽型\n\
               西湖护水队,社会组织,,否\n\
               浙大绿协,高校社团,,是\n\
               无类型队,不知道,,否\n";
    let file = office.path("teams.csv");
    std::fs::write(&file, csv).expect("written");
    let file_arg = file.display().to_string();
    let (code, out, err) = office.ecovol(&["import", "teams", &file_arg]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("3 rows read: 2 created, 0 already there, 1 refused"), "{out}");
    let (code, out, _) = office.ecovol(&["import", "teams", &file_arg]).await;
    assert_eq!(code, 1);
    assert!(out.contains("0 created, 2 already there, 1 refused"), "{out}");

    let out_file = office.path("teams.xlsx");
    let (code, out, err) = office.ecovol(&["export", "teams", "--out", &out_file.display().to_string()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 rows written"), "{out}");
    let rows = read_all(&out_file);
    assert_eq!(rows[0][..4], ["组织编号", "组织名称", "统一社会信用代码", "组织类型"]);
    let mut names: Vec<(&str, &str, &str)> =
        rows[1..].iter().map(|row| (row[1].as_str(), row[3].as_str(), row[4].as_str())).collect();
    names.sort();
    assert_eq!(names, [("浙大绿协", "高校社团", "是"), ("西湖护水队", "社会组织", "否")]);

    // The register in English, as CSV; it matches what the API lists.
    let register = office.path("volunteers.csv");
    office.node.volunteers(&office.node.tokens.staff).register_volunteer(adult(7)).await.expect("registered");
    let args = ["export", "volunteers", "--format", "csv", "--lang", "en", "--out", &register.display().to_string()];
    let (code, _, err) = office.ecovol(&args).await;
    assert_eq!(code, 0, "{err}");
    let rows = read_all(&register);
    assert_eq!(rows[0][..3], ["Volunteer number", "Name", "Phone"]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][1], adult(7).name);
    assert_eq!(rows[1][2], adult(7).phone);
    assert_eq!(rows[1][5], "masses");
    // Statistics, projects and plans export too (empty tables have their headers).
    for kind in ["stats", "projects", "plans", "hours"] {
        let path = office.path(&format!("{kind}.xlsx"));
        let (code, _, err) = office.ecovol(&["export", kind, "--out", &path.display().to_string()]).await;
        assert_eq!(code, 0, "{kind}: {err}");
        assert!(!read_all(&path)[0].is_empty());
    }
}

/// A week's window tolerance so the scenario's records of two days ago fit its project.
const HOURS_TOML: &str = "[hours]\nwindow_tolerance_minutes = 10080\n";

#[tokio::test]
async fn hours_import_in_batches_reports_bad_rows_and_records_nothing_twice() {
    let cast = served_cast(HOURS_TOML).await;
    let staff = cast.node.tokens.staff.clone();
    let mut hours = ServiceRecordServiceClient::new(authed(&cast.node, &staff));
    let list = pb::ListServiceRecordsRequest { volunteer_number: cast.served.clone(), ..Default::default() };
    let project_id =
        hours.list_service_records(list.clone()).await.expect("list").into_inner().records[0].project_id.clone();
    let china = ecovol_node::wire::china();
    let at = |hour: i64, minute: i64| {
        (cast.day + chrono::Duration::hours(hour) + chrono::Duration::minutes(minute))
            .with_timezone(&china)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    let dir = tempfile::tempdir().expect("folder");
    let file = dir.path().join("hours.csv");
    let mut csv = csv_line(&["项目编号", "志愿者编号", "开始时间", "结束时间", "服务内容"]);
    csv += &csv_line(&[&project_id, &cast.served, &at(14, 0), &at(16, 0), "湿地巡护"]);
    csv += &csv_line(&[&project_id, &cast.unconfirmed, &at(14, 0), &at(15, 30), "湿地巡护"]);
    csv += &csv_line(&[&project_id, &cast.served, &at(18, 0), &at(17, 0), "结束早于开始"]);
    csv += &csv_line(&[&project_id, &cast.unconfirmed, "下午两点", &at(17, 0), "时间写错"]);
    csv += &csv_line(&[&project_id, &cast.unconfirmed, &at(19, 0), &at(20, 0), "晚间宣讲"]);
    std::fs::write(&file, csv).expect("written");
    let node = format!("http://{}", cast.node.address);
    let run = |file: PathBuf| {
        let args = [
            "ecovol",
            "--node",
            &node,
            "--token",
            &staff,
            "import",
            "hours",
            &file.display().to_string(),
            "--batch-rows",
            "2",
        ]
        .map(String::from);
        async move {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = ecovol_node::cli::run_with(args, &mut out, &mut err).await;
            (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
        }
    };
    let (code, out, err) = run(file.clone()).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("5 rows read: 3 created, 0 already there, 2 refused"), "{out}{err}");
    let report = read_all(&dir.path().join("hours.csv.errors.csv"));
    assert_eq!(report.len(), 3, "{report:?}");
    assert_eq!((report[1][0].as_str(), report[1][1].as_str()), ("4", "结束时间"));
    assert!(report[1][3].starts_with("rows[") && report[1][3].ends_with("].end_time"), "{report:?}");
    assert_eq!((report[2][0].as_str(), report[2][1].as_str()), ("5", "开始时间"));
    let served_records = hours.list_service_records(list.clone()).await.expect("list").into_inner().records;
    assert_eq!(served_records.len(), 2, "the scenario's record and the imported one");

    let (code, out, _) = run(file).await;
    assert_eq!(code, 1);
    assert!(out.contains("5 rows read: 0 created, 3 already there, 2 refused"), "{out}");
    let again = hours.list_service_records(list).await.expect("list").into_inner().records;
    assert_eq!(again.len(), 2, "nothing recorded twice");
}

/// The bulk call the import uses: one result per row, in order; a refused or known row does not stop the others;
/// each row audited as a single registration; a repeated call creates nothing; too many rows, or a role that may
/// not register, are refused.
#[tokio::test]
async fn register_volunteers_answers_each_row_and_creates_nothing_twice() {
    use pb::register_volunteer_result::Result as Row;
    let node = TestNode::start(NodeSpec::county("330106")).await.expect("node starts");
    let staff = &node.tokens.staff;
    let known = node.volunteers(staff).register_volunteer(adult(201)).await.expect("registered").into_inner();
    let known_number = known.volunteer.expect("volunteer").volunteer_number;
    let bad = pb::RegisterVolunteerRequest { identity_number: "15000019970319128X".into(), ..adult(203) };
    let rows = vec![adult(202), bad, adult(202), adult(201), adult(204)];
    let request = pb::RegisterVolunteersRequest { volunteers: rows.clone() };
    let results = node.volunteers(staff).register_volunteers(request).await.expect("answered").into_inner().results;
    let kinds: Vec<String> = results
        .iter()
        .map(|result| match &result.result {
            Some(Row::Registered(volunteer)) => format!("registered {}", volunteer.name),
            Some(Row::AlreadyRegistered(number)) => format!("known {number}"),
            Some(Row::Refused(refusal)) => {
                let fields: Vec<&str> = refusal.violations.iter().map(|v| v.field.as_str()).collect();
                format!("refused {} {fields:?}", refusal.code)
            }
            None => "nothing".into(),
        })
        .collect();
    let registered_202 = match &results[0].result {
        Some(Row::Registered(volunteer)) => volunteer.volunteer_number.clone(),
        other => panic!("row 0: {other:?}"),
    };
    assert_eq!(
        kinds,
        [
            format!("registered {}", adult(202).name),
            format!("refused {} [\"identity_number\"]", tonic::Code::InvalidArgument as i32),
            format!("known {registered_202}"),
            format!("known {known_number}"),
            format!("registered {}", adult(204).name),
        ]
    );
    // The same call again creates nothing.
    let again = node
        .volunteers(staff)
        .register_volunteers(pb::RegisterVolunteersRequest { volunteers: rows })
        .await
        .expect("answered")
        .into_inner()
        .results;
    let registered_again = again.iter().filter(|result| matches!(result.result, Some(Row::Registered(_)))).count();
    assert_eq!(registered_again, 0);
    let search = pb::SearchVolunteersRequest { page_size: 100, ..Default::default() };
    let found = node.volunteers(staff).search_volunteers(search).await.expect("search").into_inner().volunteers;
    assert_eq!(found.len(), 3);
    // Every row is audited as a single registration would be, plus one entry per call.
    let entries = node
        .audit(&node.tokens.auditor)
        .list_audit_entries(pb::ListAuditEntriesRequest { page_size: 500, ..Default::default() })
        .await
        .expect("trail")
        .into_inner()
        .entries;
    let count = |operation: &str| entries.iter().filter(|entry| entry.operation == operation).count();
    assert_eq!(count("VolunteerService/RegisterVolunteer"), 1 + 5 + 5);
    assert_eq!(count("VolunteerService/RegisterVolunteers"), 2);
    // The auditor may not register: every row refused, audited, nothing created.
    let refused = node
        .volunteers(&node.tokens.auditor)
        .register_volunteers(pb::RegisterVolunteersRequest { volunteers: vec![adult(205)] })
        .await
        .expect("answered")
        .into_inner()
        .results;
    assert!(
        matches!(&refused[0].result, Some(Row::Refused(r)) if r.code == tonic::Code::PermissionDenied as i32),
        "{refused:?}"
    );
    // More rows than a call may carry.
    let too_many = pb::RegisterVolunteersRequest { volunteers: vec![adult(206); 1_001] };
    let status = node.volunteers(staff).register_volunteers(too_many).await.expect_err("too many rows");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("volunteers"), "{status:?}");
}

/// 100,000 volunteers from one CSV, streamed. `ECOVOL_IMPORT_ROWS` sets another row count.
#[tokio::test]
#[ignore = "long: 100,000 rows; run with --run-ignored only"]
async fn a_large_csv_streams() {
    let rows: u32 = std::env::var("ECOVOL_IMPORT_ROWS").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let office = Office::start("").await;
    let file = office.path("large.csv");
    let mut text = csv_line(&["姓名", "身份证号码", "手机号", "政治面貌", "所在地区划代码", "同意处理个人信息"]);
    for index in 0..rows {
        let volunteer = adult(1_000 + index);
        text += &csv_line(&[&volunteer.name, &volunteer.identity_number, &volunteer.phone, "群众", "330106", "是"]);
    }
    std::fs::write(&file, text).expect("written");
    // `ECOVOL_IMPORT_BATCH_ROWS=1` sends one row per call, as the command did before `RegisterVolunteers`.
    let batch_rows = std::env::var("ECOVOL_IMPORT_BATCH_ROWS").unwrap_or_else(|_| "500".into());
    let started = std::time::Instant::now();
    let (code, out, err) = office
        .ecovol(&[
            "import",
            "volunteers",
            &file.display().to_string(),
            "--concurrency",
            "32",
            "--batch-rows",
            &batch_rows,
        ])
        .await;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{rows} rows read: {rows} created")), "{out}");
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status.lines().find(|line| line.starts_with("VmHWM")).unwrap_or("VmHWM: ?");
    println!(
        "{rows} rows in {seconds:.1} s ({batch_rows} rows per call): {:.0} rows/s; test process (node and CLI) {peak}",
        rows as f64 / seconds
    );
}
