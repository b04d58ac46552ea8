//! The seeded deterministic simulation of the federation's protocols (tests/src/sim.rs, docs/RELIABILITY.md).
//!
//! - 500 seeds by default, in four blocks that nextest runs in parallel; `ECOVOL_SIM_SEEDS=20000` runs more.
//! - `ECOVOL_SIM_SEED=n` replays one seed in `replay` (with `--no-capture` it prints what the run did).
//! - Mutation tests switch a known bug on in the coordinator (`InboxFault`, `UplinkFault`) and require that some
//!   seed catches it, naming the invariant it breaks.
//!
//! Totals of the injected faults are printed; see them with `--no-capture`.

use ecovol_coordinator::replication::{InboxFault, UplinkFault};
use ecovol_tests::sim::{self, Invariant, Settings, Stats};

/// Seeds of the normal run.
const DEFAULT_SEEDS: u64 = 500;
/// Blocks the seeds are split into (one test each, so they run in parallel).
const BLOCKS: u64 = 4;
/// The seed `replay` runs when `ECOVOL_SIM_SEED` is not set.
const PINNED_SEED: u64 = 20_261_205;
/// Seeds a mutation test may try before it must have caught the bug.
const MUTATION_SEEDS_MAX: u64 = 60;

fn run_block(block: u64) {
    let seeds = sim::seed_count(DEFAULT_SEEDS);
    let (from, to) = (seeds * block / BLOCKS, seeds * (block + 1) / BLOCKS);
    match sim::run_seeds(from..to, &Settings::default()) {
        Ok(stats) => println!("simulation seeds {from}..{to}: every invariant held; {stats}"),
        Err(failure) => panic!("{failure}"),
    }
}

#[test]
fn seeds_block_0_keep_every_invariant() {
    run_block(0);
}

#[test]
fn seeds_block_1_keep_every_invariant() {
    run_block(1);
}

#[test]
fn seeds_block_2_keep_every_invariant() {
    run_block(2);
}

#[test]
fn seeds_block_3_keep_every_invariant() {
    run_block(3);
}

/// One seed (the pinned one, or `ECOVOL_SIM_SEED`) runs twice to the same end, after faults of every kind.
#[test]
fn replay() {
    let seed = sim::replay_seed().unwrap_or(PINNED_SEED);
    let settings = Settings::default();
    let first = sim::run(seed, &settings).unwrap_or_else(|failure| panic!("{failure}"));
    let again = sim::run(seed, &settings).unwrap_or_else(|failure| panic!("{failure}"));
    println!("simulation seed {seed}: {}", first.stats);
    assert_eq!(first.stats, again.stats, "seed {seed} did different things on a second run");
    assert_eq!(first.digest, again.digest, "seed {seed} ended in different stores on a second run");
    if seed == PINNED_SEED {
        let s: &Stats = &first.stats;
        let kinds = [
            ("dropped", s.dropped),
            ("duplicated", s.duplicated),
            ("delayed", s.delayed),
            ("partitions", s.partitions),
            ("crashes", s.crashes),
            ("store failures", s.store_failures),
            ("forged batches refused", s.forged_refused),
            ("RPC timeouts", s.rpc_timeouts),
            ("plans issued", s.plans_issued),
            ("plan copies received", s.copies_received),
            ("plan reports", s.plan_reports),
        ];
        for (kind, count) in kinds {
            assert!(count > 0, "the pinned seed should exercise {kind}: {s}");
        }
    }
}

/// The first seed that catches `settings`' bug, and what it broke.
fn caught(settings: &Settings) -> Option<(u64, Invariant, String)> {
    (0..MUTATION_SEEDS_MAX).find_map(|seed| sim::run(seed, settings).err().map(|f| (seed, f.invariant, f.to_string())))
}

fn check_mutation(settings: Settings, expected: &[Invariant]) {
    let Some((seed, invariant, report)) = caught(&settings) else {
        panic!("no seed among the first {MUTATION_SEEDS_MAX} caught {settings:?}");
    };
    println!("caught by seed {seed}:\n{report}");
    assert!(
        report.contains(&format!("ECOVOL_SIM_SEED={seed}")) && report.contains("last "),
        "a failure names its seed and the last steps: {report}"
    );
    assert!(expected.contains(&invariant), "seed {seed} caught the bug as {invariant}, expected one of {expected:?}");
}

#[test]
fn mutation_inbox_acknowledging_before_persisting_is_caught() {
    let settings = Settings { inbox_fault: Some(InboxFault::AcksBeforePersist), ..Settings::default() };
    check_mutation(settings, &[Invariant::Rep1, Invariant::NoDoubleCount]);
}

#[test]
fn mutation_inbox_not_deduplicating_is_caught() {
    let settings = Settings { inbox_fault: Some(InboxFault::ReappliesDuplicates), ..Settings::default() };
    check_mutation(settings, &[Invariant::NoDoubleCount]);
}

#[test]
fn mutation_uplink_forgetting_to_resend_is_caught() {
    let settings = Settings { uplink_fault: Some(UplinkFault::ForgetsResend), ..Settings::default() };
    check_mutation(settings, &[Invariant::Rep2]);
}
