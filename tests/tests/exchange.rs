//! The national-platform exchange end to end against a real node: consent, the incremental export through the
//! file adapter (`ecovol exchange export`), its repeatability, its role check and audit, and the recognition
//! import of another platform's service records, de-duplicated by source and source record id.

use std::collections::BTreeSet;
use std::path::Path;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::audit_service_client::AuditServiceClient;
use ecovol_proto::v1::exchange_service_client::ExchangeServiceClient;
use ecovol_proto::v1::service_record_service_client::ServiceRecordServiceClient;
use ecovol_tests::fixtures::adult;
use ecovol_tests::scenario::{Cast, authed, served_cast};
use serde_json::Value;
use tonic::Code;

/// A week's window tolerance so the scenario's records of two days ago fit its project.
const HOURS_TOML: &str = "[hours]\nwindow_tolerance_minutes = 10080\n";

async fn ecovol(cast: &Cast, token: &str, args: &[&str]) -> (i32, String, String) {
    ecovol_tests::run_ecovol_on(cast.node.address, token, args).await
}

/// Runs `ecovol exchange export` into `dir` (since `since`); returns the watermark.
async fn export(cast: &Cast, dir: &Path, since: Option<&str>) -> String {
    let dir_arg = dir.display().to_string();
    let mut args = vec!["-o", "json", "exchange", "export", "--out", &dir_arg];
    if let Some(since) = since {
        args.extend(["--since", since]);
    }
    let (code, out, err) = ecovol(cast, &cast.node.tokens.staff, &args).await;
    assert_eq!(code, 0, "{err}");
    let printed: Value = serde_json::from_str(&out).unwrap_or_else(|error| panic!("{error}: {out}"));
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).expect("manifest")).expect("JSON");
    assert_eq!(manifest["watermark"], printed["watermark"]);
    printed["watermark"].as_str().expect("watermark").to_string()
}

/// The items of one kind in an export folder.
fn items(dir: &Path, kind: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join(format!("{kind}.jsonl"))).expect("file of the kind");
    text.lines().map(|line| serde_json::from_str(line).expect("a JSON object per line")).collect()
}

fn ids(dir: &Path, kind: &str, key: &str) -> BTreeSet<String> {
    items(dir, kind).iter().map(|item| item[key].as_str().unwrap_or_default().to_string()).collect()
}

async fn consent(cast: &Cast, volunteer_number: &str, consent: bool) -> pb::SetExchangeConsentResponse {
    let request = pb::SetExchangeConsentRequest {
        volunteer_number: volunteer_number.into(),
        consent,
        evidence: "书面同意书 2026-03-01".into(),
    };
    let mut exchange = ExchangeServiceClient::new(authed(&cast.node, &cast.node.tokens.staff));
    exchange.set_exchange_consent(request).await.expect("consent recorded").into_inner()
}

#[tokio::test]
async fn the_export_is_incremental_repeatable_and_only_for_consenting_volunteers() {
    let cast = served_cast(HOURS_TOML).await;
    let folders = tempfile::tempdir().expect("folder");
    let dir = |name: &str| folders.path().join(name);

    // Nobody consented yet: teams and projects go, no volunteer and no record.
    let first = export(&cast, &dir("0"), None).await;
    assert!(items(&dir("0"), "volunteers").is_empty());
    assert!(items(&dir("0"), "service_records").is_empty());
    assert_eq!(items(&dir("0"), "teams").len(), 1);
    assert_eq!(items(&dir("0"), "projects").len(), 1);

    // The served volunteer consents: they and their confirmed record go, with the standard's items.
    assert!(consent(&cast, &cast.served, true).await.changed);
    assert!(!consent(&cast, &cast.served, true).await.changed, "the same consent again changes nothing");
    let second = export(&cast, &dir("1"), Some(&first)).await;
    let volunteers = items(&dir("1"), "volunteers");
    assert_eq!(volunteers.len(), 1, "{volunteers:?}");
    let served = &volunteers[0];
    assert_eq!(served["volunteer_number"], cast.served.as_str());
    assert_eq!(served["consent"], true);
    assert_eq!(served["name"], adult(1).name.as_str());
    assert_eq!(served["id_type"], "resident_identity_card");
    assert_eq!(served["id_number"], adult(1).identity_number.as_str());
    assert_eq!(served["phone"], adult(1).phone.as_str());
    let records = items(&dir("1"), "service_records");
    assert_eq!(records.len(), 1, "only the confirmed record of the consenting volunteer");
    assert_eq!(records[0]["volunteer_number"], cast.served.as_str());
    assert_eq!(records[0]["hours"], "3.25");
    assert_eq!(records[0]["state"], "confirmed");
    assert!(items(&dir("1"), "teams").is_empty(), "unchanged since the first export");

    // Nothing changed: an empty export, and the same folder cannot be used twice.
    let third = export(&cast, &dir("2"), Some(&second)).await;
    assert!(
        ["volunteers", "teams", "projects", "service_records"].iter().all(|kind| items(&dir("2"), kind).is_empty())
    );
    let (code, _, err) =
        ecovol(&cast, &cast.node.tokens.staff, &["exchange", "export", "--out", &dir("2").display().to_string()]).await;
    assert_eq!(code, 2, "{err}");

    // The other volunteer consents and their record is confirmed: both go in the next export.
    consent(&cast, &cast.unconfirmed, true).await;
    let mut hours = ServiceRecordServiceClient::new(authed(&cast.node, &cast.node.tokens.staff));
    let list = pb::ListServiceRecordsRequest { volunteer_number: cast.unconfirmed.clone(), ..Default::default() };
    let record_id = hours.list_service_records(list).await.expect("list").into_inner().records[0].record_id.clone();
    hours.confirm_service_record(pb::ConfirmServiceRecordRequest { record_id: record_id.clone() }).await.expect("ok");
    let fourth = export(&cast, &dir("3"), Some(&third)).await;
    assert_eq!(ids(&dir("3"), "volunteers", "volunteer_number"), BTreeSet::from([cast.unconfirmed.clone()]));
    assert_eq!(ids(&dir("3"), "service_records", "record_id"), BTreeSet::from([record_id.clone()]));

    // Repeating an export from the same watermark gives the same items under the same ids: no duplicates.
    export(&cast, &dir("3-again"), Some(&third)).await;
    for (kind, key) in [("volunteers", "volunteer_number"), ("service_records", "record_id")] {
        assert_eq!(ids(&dir("3"), kind, key), ids(&dir("3-again"), kind, key), "{kind}");
    }
    // Everything since the start: each item once.
    export(&cast, &dir("all"), None).await;
    assert_eq!(items(&dir("all"), "volunteers").len(), 2);
    assert_eq!(items(&dir("all"), "service_records").len(), 2);

    // A withdrawal goes once, without personal information (recorded from the command line).
    let args = ["exchange", "consent", &cast.served, "--withdraw", "--evidence", "本人电话撤回"];
    let (code, out, err) = ecovol(&cast, &cast.node.tokens.staff, &args).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("changed:") && out.contains("yes"), "{out}");
    export(&cast, &dir("4"), Some(&fourth)).await;
    let withdrawn = items(&dir("4"), "volunteers");
    assert_eq!(withdrawn.len(), 1);
    assert_eq!(withdrawn[0]["consent"], false);
    assert_eq!(withdrawn[0]["name"], Value::Null);
    assert_eq!(withdrawn[0]["id_number"], Value::Null);
    assert!(items(&dir("4"), "service_records").is_empty());

    // CSV has the same items, the keys as headers.
    let csv_dir = dir("csv");
    let args = ["exchange", "export", "--format", "csv", "--out", &csv_dir.display().to_string()];
    let (code, _, err) = ecovol(&cast, &cast.node.tokens.staff, &args).await;
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(csv_dir.join("service_records.csv")).expect("CSV");
    assert!(text.trim_start_matches('\u{FEFF}').starts_with("record_id,volunteer_number,"), "{text}");
    assert_eq!(text.lines().count(), 2, "the header and the record of the still consenting volunteer");

    // Only staff export, and every export is in the audit trail, the refused one too.
    let (code, _, err) =
        ecovol(&cast, &cast.node.tokens.auditor, &["exchange", "export", "--out", &dir("x").display().to_string()])
            .await;
    assert_eq!(code, 1);
    assert!(err.contains("staff"), "{err}");
    let mut audit = AuditServiceClient::new(authed(&cast.node, &cast.node.tokens.auditor));
    let request = pb::ListAuditEntriesRequest { page_size: 500, ..Default::default() };
    let entries = audit.list_audit_entries(request).await.expect("audit").into_inner().entries;
    let exports = entries.iter().filter(|entry| entry.operation == "ExchangeService/ExportExchange").count();
    assert_eq!(exports, 9, "eight exports by staff and the auditor's refused one");
}

#[tokio::test]
async fn recognised_records_are_validated_deduplicated_and_marked_with_their_source() {
    let cast = served_cast(HOURS_TOML).await;
    let served = adult(1);
    let day = cast.day.with_timezone(&ecovol_node::wire::china()).format("%Y-%m-%d").to_string();
    let row = |id: &str, id_number: &str, name: &str, hours: &str| {
        serde_json::json!({
            "source_record_id": id,
            "id_number": id_number,
            "name": name,
            "organisation": "杭州市志愿者协会",
            "project_title": "钱塘江护水",
            "activity_kind": "green_low_carbon",
            "start_time": format!("{day} 14:00"),
            "end_time": format!("{day} 16:00"),
            "hours": hours,
            "content": "江岸垃圾清理",
        })
        .to_string()
    };
    let lines = [
        row("ZJ-0001", &served.identity_number, &served.name, "2.00"),
        row("ZJ-0001", &served.identity_number, &served.name, "2.00"),
        row("ZJ-0002", "15000019970319128X", &served.name, "1.00"),
        row("ZJ-0003", &served.identity_number, "别人", "1.00"),
        row("ZJ-0004", &served.identity_number, &served.name, "5.00"),
        row("ZJ-0005", &adult(99).identity_number, &adult(99).name, "1.00"),
    ];
    let folder = tempfile::tempdir().expect("folder");
    let file = folder.path().join("zj.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").expect("written");
    let staff = cast.node.tokens.staff.clone();
    let args = ["exchange", "import-records", "--source", "zj-volunteer", &file.display().to_string()];
    let (code, out, err) = ecovol(&cast, &staff, &args).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("1 recognised, 1 already recognised, 4 refused"), "{out}");
    let report = std::fs::read_to_string(folder.path().join("zj.jsonl.errors.csv")).expect("report");
    for expected in ["3,id_number,", "4,name,", "5,hours,", "6,id_number,no volunteer"] {
        assert!(report.contains(expected), "{expected}: {report}");
    }

    // Again: nothing is stored twice.
    let (code, out, _) = ecovol(&cast, &staff, &args).await;
    assert_eq!(code, 1);
    assert!(out.contains("0 recognised, 2 already recognised, 4 refused"), "{out}");
    // The same id from another source is another record.
    let mut exchange = ExchangeServiceClient::new(authed(&cast.node, &staff));
    let other = pb::ImportRecognisedRecordsRequest {
        source: "national".into(),
        records: vec![pb::ExternalServiceRecord {
            source_record_id: "ZJ-0001".into(),
            id_number: served.identity_number.clone(),
            name: served.name.clone(),
            start_time: Some(ecovol_tests::scenario::timestamp(cast.day + chrono::Duration::hours(20))),
            end_time: Some(ecovol_tests::scenario::timestamp(cast.day + chrono::Duration::hours(21))),
            hours_x100: 100,
            content: "夜间宣讲".into(),
            ..Default::default()
        }],
    };
    let response = exchange.import_recognised_records(other).await.expect("imported").into_inner();
    assert_eq!(response.created_count, 1);

    let list = pb::ListRecognisedRecordsRequest { volunteer_number: cast.served.clone() };
    let recognised = exchange.list_recognised_records(list.clone()).await.expect("list").into_inner();
    let sources: Vec<&str> = recognised.records.iter().map(|record| record.recognised_id.as_str()).collect();
    assert_eq!(sources, ["zj-volunteer/ZJ-0001", "national/ZJ-0001"]);
    assert_eq!(recognised.hours_x100_total, 300);
    assert_eq!(recognised.records[0].organisation, "杭州市志愿者协会");

    let (code, out, err) = ecovol(&cast, &staff, &["exchange", "records", &cast.served]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("zj-volunteer/ZJ-0001") && out.contains("national/ZJ-0001"), "{out}");
    assert!(err.contains("total: 3.00 h"), "{err}");

    // The volunteer reads their own; another volunteer's account does not; a bad source is refused whole.
    let own = ExchangeServiceClient::new(authed(&cast.node, &cast.served_token)).list_recognised_records(list).await;
    assert_eq!(own.expect("own records").into_inner().records.len(), 2);
    let bad = pb::ImportRecognisedRecordsRequest { source: "Bad Source".into(), records: Vec::new() };
    assert_eq!(exchange.import_recognised_records(bad).await.expect_err("refused").code(), Code::InvalidArgument);
    let someone = pb::ListRecognisedRecordsRequest { volunteer_number: cast.unconfirmed.clone() };
    let refused =
        ExchangeServiceClient::new(authed(&cast.node, &cast.served_token)).list_recognised_records(someone).await;
    assert_eq!(refused.expect_err("not theirs").code(), Code::PermissionDenied);
}
