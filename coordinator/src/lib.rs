//! ecovol-coordinator: the federation's protocols as pure state machines — input in, state and output out.
//!
//! Nothing here does I/O, spawns tasks or reads a clock: time is passed in as `u64` unix milliseconds, and the
//! `node` crate drives these structs over gRPC and sled (STYLE.md "State machines are pure"; model: raft-rs
//! `raw_node.rs`). A test below fails if a runtime, transport, store or randomness crate appears in this crate's
//! `[dependencies]`.
//!
//! - [`region`]: GB/T 2260 division codes and the territory rule (copied from `node::validate` for now; the node
//!   will re-export [`region::DivisionCode`] from here when it adopts the coordinator).
//! - [`replication`]: the upward replication windows — [`replication::Uplink`] (child side) and
//!   [`replication::Inbox`] (parent side) — for REP-1, REP-2 and AUTH-1.
//! - [`rollup`]: the roll-up as a state-based CRDT (ROL-1).
//! - [`completeness`]: per-child freshness for `stats` answers.
//! - [`plan`]: the lifecycle of joint work plans (issuer's plan and receiving nodes' copies).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod completeness;
pub mod plan;
pub mod region;
pub mod replication;
pub mod rollup;

#[cfg(test)]
mod tests {
    /// Crates this crate must never depend on: runtimes, transports, stores, randomness, I/O.
    const FORBIDDEN: &[&str] = &[
        "tokio",
        "tonic",
        "sled",
        "rand",
        "mio",
        "hyper",
        "reqwest",
        "async-std",
        "smol",
        "futures",
        "tempfile",
        "prost",
        "rustls",
        "tower",
        "getrandom",
        "chrono",
    ];

    /// Names of the crates in the `[dependencies]` table of a Cargo.toml text (not dev-dependencies).
    fn dependency_names(manifest: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut in_dependencies = false;
        for line in manifest.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                // Only the inline `[dependencies]` table lists names; a `[dependencies.x]` table names `x`.
                in_dependencies = line == "[dependencies]";
                if let Some(name) = line.strip_prefix("[dependencies.") {
                    names.push(name.trim_end_matches(']').trim().to_string());
                }
                continue;
            }
            if in_dependencies && !line.is_empty() && !line.starts_with('#') {
                let key = line.split(['=', '.']).next().unwrap_or("").trim().trim_matches('"');
                names.push(key.to_string());
            }
        }
        names
    }

    fn is_forbidden(name: &str) -> bool {
        FORBIDDEN.iter().any(|f| name == *f || name.starts_with(&format!("{f}-")) || name.starts_with(&format!("{f}_")))
    }

    #[test]
    fn no_runtime_transport_store_or_randomness_dependency() {
        let names = dependency_names(include_str!("../Cargo.toml"));
        assert!(names.contains(&"serde".to_string()), "parser found {names:?}");
        let bad: Vec<&String> = names.iter().filter(|n| is_forbidden(n)).collect();
        assert!(bad.is_empty(), "the coordinator must stay pure, but [dependencies] names {bad:?}");
    }

    #[test]
    fn dependency_check_catches_forbidden_names() {
        let manifest = "[package]\nname = \"x\"\n[dependencies]\nserde.workspace = true\ntokio-stream = \"1\"\n\
                        \"rand\" = \"0.9\"\n[dev-dependencies]\nproptest = \"1\"\n[dependencies.sled]\nversion = \"0.34\"\n";
        let names = dependency_names(manifest);
        assert_eq!(names, ["serde", "tokio-stream", "rand", "sled"]);
        assert!(names.iter().filter(|n| is_forbidden(n)).count() == 3);
        assert!(!is_forbidden("serde") && !is_forbidden("thiserror") && !is_forbidden("random_thing"));
    }
}
