//! The benchmark driver's smoke test: `ecovol-bench all --short` runs every scenario at a tiny size as a real
//! process, and what it reports must be right — every ingested record present, exactly the seats accepted in
//! the rush, every sign-up answered. No timing is asserted here: speed belongs in `docs/BENCHMARKS.md`.

use std::collections::BTreeMap;
use std::process::Command;

fn checks(stdout: &str) -> BTreeMap<String, u64> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("check "))
        .filter_map(|line| line.split_once(" = "))
        .filter_map(|(name, value)| Some((name.to_string(), value.trim().parse().ok()?)))
        .collect()
}

#[test]
fn every_scenario_runs_short_and_its_counts_are_right() {
    let output = Command::new(env!("CARGO_BIN_EXE_ecovol-bench"))
        .args(["all", "--short"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("ecovol-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ecovol-bench all --short failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let checks = checks(&stdout);
    let get = |name: &str| *checks.get(name).unwrap_or_else(|| panic!("no check {name:?} in:\n{stdout}"));
    assert!(get("baseline echo calls") > 0);
    assert_eq!(get("ingest records present"), get("ingest records sent"), "every acknowledged record is there");
    assert_eq!(get("bulk records present"), get("bulk records sent"));
    assert_eq!(get("rush accepted"), get("rush seats"), "exactly the seats are accepted (CAP-1)");
    assert_eq!(get("rush answered"), get("rush sent"), "every sign-up is answered");
    assert_eq!(get("rush waitlisted"), get("rush sent") - get("rush seats"));
    assert_eq!(get("query records 200 rolled up"), 1, "the province's roll-up equals the county's own figures");
    assert_eq!(get("freshness writes acknowledged"), get("freshness writes sent"));
    assert_eq!(get("freshness writes visible"), get("freshness writes sent"), "every write reached the province");
    assert_eq!(get("catchup province exact"), 1);
    for compression in ["none", "gzip", "zstd"] {
        assert_eq!(get(&format!("wire {compression} province exact")), 1, "a link with compression {compression}");
    }
    assert_eq!(get("footprint idle rss reported"), 1);
    assert!(stdout.contains("| scenario | measure |"), "the table is printed");
}
