//! The daily-work commands end to end through the `ecovol` command line against a real node: listing and
//! confirming service hours, and a supervision report from submission to closing.

use ecovol_tests::scenario::{Cast, served_cast};

/// A week's window tolerance so the scenario's records of two days ago fit its project.
const HOURS_TOML: &str = "[hours]\nwindow_tolerance_minutes = 10080\n";

async fn ecovol(cast: &Cast, token: &str, args: &[&str]) -> (i32, String, String) {
    ecovol_tests::run_ecovol_on(cast.node.address, token, args).await
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

#[tokio::test]
async fn hours_are_listed_and_confirmed_from_the_command_line() {
    let cast = served_cast(HOURS_TOML).await;
    let staff = cast.node.tokens.staff.clone();
    let (code, out, err) =
        ecovol(&cast, &staff, &["-o", "json", "hours", "list", "--volunteer", &cast.unconfirmed]).await;
    assert_eq!(code, 0, "{err}");
    let records = json(&out)["records"].as_array().cloned().unwrap_or_default();
    assert_eq!(records.len(), 1, "{out}");
    assert_eq!(records[0]["state"], "recorded");
    let record_id = records[0]["record_id"].as_str().unwrap().to_string();

    let (code, out, err) = ecovol(&cast, &staff, &["-o", "json", "hours", "confirm", &record_id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("confirmed"), "{out}");
    let (code, out, _) = ecovol(&cast, &staff, &["hours", "list", "--volunteer", &cast.unconfirmed]).await;
    assert_eq!(code, 0);
    let row = out.lines().find(|line| line.starts_with(&record_id)).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("confirmed"), "{row}");
    // The volunteer cannot confirm their own hours.
    let (code, _, err) = ecovol(&cast, &cast.served_token, &["hours", "confirm", &record_id]).await;
    assert_eq!(code, 1);
    assert!(err.contains("refused"), "{err}");
}

#[tokio::test]
async fn a_supervision_report_goes_from_submission_to_closing_on_the_command_line() {
    let cast = served_cast(HOURS_TOML).await;
    let occurred = (chrono::Utc::now() - chrono::Duration::hours(3)).to_rfc3339();
    let (code, out, err) = ecovol(
        &cast,
        &cast.served_token,
        &[
            "-o",
            "json",
            "supervision",
            "submit",
            "--reporter",
            &cast.served,
            "--place",
            "西溪湿地东门排污口",
            "--occurred-at",
            &occurred,
            "--description",
            "下午有黑色污水直排入河",
            "--category",
            "water",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    let report_id = report["report"]["report_id"].as_str().unwrap_or_else(|| panic!("{out}")).to_string();
    assert_eq!(report["report"]["status"], "received");

    let staff = cast.node.tokens.staff.clone();
    for (status, note) in [("referred", "转交区执法大队"), ("closed", "已责令整改")] {
        let (code, out, err) = ecovol(
            &cast,
            &staff,
            &["-o", "json", "supervision", "advance", &report_id, "--status", status, "--note", note],
        )
        .await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(json(&out)["report"]["status"], status);
    }
    // Going back is refused in plain words.
    let (code, _, err) =
        ecovol(&cast, &staff, &["supervision", "advance", &report_id, "--status", "referred", "--note", "again"]).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("refused"), "{err}");
    // The auditor cannot read reports at all.
    let (code, _, err) = ecovol(&cast, &cast.node.tokens.auditor, &["supervision", "get", &report_id]).await;
    assert_eq!(code, 1, "{err}");
}
