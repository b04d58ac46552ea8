//! `ecovol-bench <scenario>|all [--short] [--no-baseline]`: the benchmarks of `docs/BENCHMARKS.md` (see `ecovol_tests::bench`).
//! `ecovol-bench serve --config FILE` runs a node, as `ecovol serve` does (the footprint scenario measures it as
//! a process of its own).

use ecovol_tests::bench::{self, SCENARIOS, Size};

#[global_allocator]
static ALLOCATOR: ecovol_node::Allocator = ecovol_node::Allocator;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
        let code = match runtime {
            Ok(runtime) => runtime.block_on(ecovol_node::cli::run_from(args)),
            Err(error) => {
                eprintln!("cannot start the runtime: {error}");
                1
            }
        };
        std::process::exit(code);
    }
    let short = args.iter().any(|arg| arg == "--short");
    let scenario = args.iter().skip(1).find(|arg| !arg.starts_with("--")).cloned();
    let Some(scenario) = scenario else {
        eprintln!("usage: ecovol-bench <{}|all> [--short] [--no-baseline]", SCENARIOS.join("|"));
        std::process::exit(2);
    };
    let size = if short { Size::Short } else { Size::Full };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            std::process::exit(1);
        }
    };
    let baselines = !args.iter().any(|arg| arg == "--no-baseline");
    match runtime.block_on(bench::run(&scenario, size, baselines)) {
        Ok(report) => {
            println!("\n{}", report.table());
            for (name, value) in &report.checks {
                println!("check {name} = {value}");
            }
        }
        Err(error) => {
            eprintln!("benchmark failed: {error:#}");
            std::process::exit(1);
        }
    }
}
