//! Upgrades and downgrades as an operator meets them: a release refuses, with a clear message and without
//! touching it, a store written by a newer release (docs/OPERATIONS.md, "Upgrades").

use std::process::{Command, Stdio};

use ecovol_node::app::SCHEMA_VERSION;
use ecovol_node::store::{SledStore, Store as _};
use ecovol_tests::{NodeSpec, write_node_files};

#[test]
fn an_older_release_refuses_a_newer_store_and_leaves_it_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_node_files(dir.path(), &NodeSpec::county("330106"), "127.0.0.1:0").unwrap();
    // A store as the next release would leave it: one schema version ahead.
    let newer = (SCHEMA_VERSION + 1).to_string();
    {
        let store = SledStore::open(&dir.path().join("data"), 16 << 20).unwrap();
        store.apply(&[(b"meta/schema_version".to_vec(), Some(newer.clone().into_bytes()))]).unwrap();
        store.flush().unwrap();
    }

    let output = Command::new(ecovol_tests::ecovol_binary!())
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the node must not start: {stderr}");
    let expected = format!(
        "the store has schema version {newer}, newer than this release understands ({SCHEMA_VERSION}): run a newer \
         ecovol, or restore a backup made by this release"
    );
    assert!(stderr.contains(&expected), "{stderr}");

    let store = SledStore::open(&dir.path().join("data"), 16 << 20).unwrap();
    assert_eq!(store.get(b"meta/schema_version").unwrap(), Some(newer.into_bytes()), "the store is left as it was");
}
