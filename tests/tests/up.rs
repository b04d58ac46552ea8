//! `ecovol up`, the README's first command: a whole federation (province, two cities, four counties) from nothing,
//! run as the real binary; the province's roll-up must hold exactly what the counties hold, and a second run
//! reuses the folder.

use std::path::Path;
use std::process::Command;

use ecovol_tests::ecovol_binary;
use serde_json::Value;

const CODES: [&str; 7] = ["320000", "320100", "320200", "320102", "320104", "320205", "320206"];
const COUNTIES: [&str; 4] = ["320102", "320104", "320205", "320206"];

/// Runs `ecovol <args>` to the end and parses the JSON it printed.
fn run_up(args: &[&str], dir: &Path) -> Value {
    let output = Command::new(ecovol_binary!())
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("ecovol runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "ecovol up failed ({}):\n{stderr}\n{stdout}", output.status);
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("not JSON ({error}):\n{stdout}\n{stderr}"))
}

/// "12.25" → 1225.
fn hours_x100(value: &Value) -> u64 {
    let text = value.as_str().unwrap_or_else(|| panic!("hours are text: {value}"));
    let (whole, fraction) = text.split_once('.').expect("two decimals");
    whole.parse::<u64>().unwrap() * 100 + fraction.parse::<u64>().unwrap()
}

fn number(value: &Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("not a count: {value}"))
}

/// The part of a region answer with `code`.
fn part<'a>(region: &'a Value, code: &str) -> &'a Value {
    region["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|part| part["code"] == code)
        .unwrap_or_else(|| panic!("no part {code} in {region}"))
}

#[test]
fn up_starts_a_federation_whose_province_holds_what_the_counties_hold_and_reuses_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let first = run_up(&["up", "--volunteers", "6", "--seed", "7", "--exit-after-load", "--output", "json"], &demo);
    assert_eq!(first["loaded_now"], true, "{first}");
    assert_eq!(first["converged"], true);
    assert_eq!(first["differences"], serde_json::json!([]));

    // The province's rolled-up totals equal the sum of the counties' own statistics (GetStats on each county,
    // computed from its records: a definition independent of the roll-up).
    let province = &first["province"];
    assert_eq!(province["region"], "320000");
    let counties = first["counties"].as_array().unwrap();
    assert_eq!(counties.iter().map(|county| county["code"].as_str().unwrap()).collect::<Vec<_>>(), COUNTIES);
    let sum = |field: &str| counties.iter().map(|county| number(&county["totals"][field])).sum::<u64>();
    for field in [
        "registered_volunteers",
        "teams",
        "projects_published",
        "sign_ups_accepted",
        "trainings",
        "trainees",
        "rating_count",
    ] {
        assert_eq!(number(&province["totals"][field]), sum(field), "{field}");
    }
    let hours: u64 = counties.iter().map(|county| hours_x100(&county["totals"]["confirmed_hours"])).sum();
    assert_eq!(hours_x100(&province["totals"]["confirmed_hours"]), hours);
    // 6 volunteers in each county, plus two mobile people registered in each.
    assert_eq!(number(&province["totals"]["registered_volunteers"]), 4 * (6 + 2));
    assert!(hours > 0 && sum("sign_ups_accepted") > 0 && sum("projects_published") >= 4 * 14);
    assert!(province["month_kinds"].as_array().unwrap().len() >= 5, "spread over months and kinds");

    // By city: the province's part for each city is that city's whole area, as the city itself sees it.
    assert_eq!(part(province, "320000")["own"], true);
    let cities = first["cities"].as_array().unwrap();
    assert_eq!(cities.len(), 2);
    for city in cities {
        let code = city["region"].as_str().unwrap();
        let seen_above = part(province, code);
        assert_eq!(seen_above["own"], false);
        assert_eq!(seen_above["totals"], city["totals"], "{code}");
        assert_eq!(seen_above["freshness"]["stale"], false);
        assert!(seen_above["freshness"]["last_contact"].is_string());
        let children: Vec<&str> = city["parts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["own"] == false)
            .map(|p| p["code"].as_str().unwrap())
            .collect();
        let expected: Vec<&str> = COUNTIES.iter().copied().filter(|county| county[..4] == code[..4]).collect();
        assert_eq!(children, expected);
    }

    // Mutual recognition: each mobile person's hours in one county are known in the other.
    let recognition = first["mutual_recognition"].as_array().unwrap();
    assert_eq!(recognition.len(), 4);
    for person in recognition {
        assert_eq!(person["complete"], true, "{person}");
        let registrations = person["registrations"].as_array().unwrap();
        assert_eq!(registrations.len(), 2);
        assert_eq!(registrations[0]["elsewhere_minutes"], registrations[1]["confirmed_minutes"]);
        assert!(number(&registrations[0]["confirmed_minutes"]) > 0);
    }

    // Seven nodes, each with its own folder, config, key, store and tokens; one CA for all.
    let nodes = first["nodes"].as_array().unwrap();
    assert_eq!(nodes.iter().map(|node| node["code"].as_str().unwrap()).collect::<Vec<_>>(), CODES);
    for code in CODES {
        let folder = demo.join(code);
        for file in ["node.toml", "node.key", "tokens.txt"] {
            assert!(folder.join(file).is_file(), "{code}/{file}");
        }
        let store_files = ecovol_tests::files_under(&folder.join("data"));
        assert!(!store_files.is_empty(), "{code} has its own sled data");
        assert!(demo.join("certs").join(format!("{code}.pem")).is_file());
    }
    assert!(demo.join("certs/ca.pem").is_file() && demo.join("certs/federation.key").is_file());
    for county in COUNTIES {
        // Identity numbers stay encrypted at rest, in every store.
        assert!(ecovol_tests::bytes_occur_under(&demo.join(county).join("data"), b"\"identity_number\"").is_none());
    }

    // Run again (with the global form of --output): the same folder, ports, accounts and data; nothing loaded twice.
    let second = run_up(&["--output", "json", "up", "--exit-after-load"], &demo);
    assert_eq!(second["loaded_now"], false, "{second}");
    assert_eq!(second["converged"], true);
    assert_eq!(second["nodes"], first["nodes"], "same addresses and tokens");
    assert_eq!(second["province"]["totals"], first["province"]["totals"]);
    assert_eq!(second["volunteers_per_county"], 6);
}

#[test]
fn up_refuses_a_folder_that_is_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("thesis.docx"), b"precious").unwrap();
    assert!(ecovol_node::demo::check_folder(dir.path()).is_err());
    assert!(ecovol_node::demo::check_folder(&dir.path().join("new")).is_ok());
    // The single-county demo of earlier releases: named as such.
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    std::fs::write(old.join("node.toml"), b"[node]\n").unwrap();
    let error = ecovol_node::demo::check_folder(&old).unwrap_err().to_string();
    assert!(error.contains("single-county demo"), "{error}");
}
