//! Running a node on this machine: `ecovol serve` and `ecovol admin …` (no network calls).

use std::path::PathBuf;

use super::account::load_config;
use super::console::{Console, OutputFormat};
use super::failure::Failure;
use crate::crypto::NodeKeys;

/// Arguments of `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The node's configuration file (TOML); `ECOVOL__SECTION__KEY` variables override it.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Log as JSON lines (for a log collector), whatever the configured format.
    #[arg(long)]
    pub log_json: bool,
}

/// Arguments of `up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// The demo's folder: certificates, and one folder per node with its config, key, data and the tokens of its
    /// demo accounts. Reused when run again (same ports, same accounts, same data).
    #[arg(long, value_name = "DIR", default_value = "ecovol-up")]
    pub dir: PathBuf,

    /// Office address of the province node on the first run (default: a free port, like every other node).
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<String>,

    /// Synthetic volunteers to register in each of the four counties on the first run (at most 100000).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub volunteers: u32,

    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,

    /// Stop after loading and printing the summary (for scripts and tests).
    #[arg(long)]
    pub exit_after_load: bool,

    /// How to print the summary: tables, or one JSON value (for scripts).
    // The global --output, declared again so `up` sees it: clap hands the value given before or after `up` to
    // both declarations (a global argument is not propagated to a subcommand that has its own of the same id).
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Runs the demo federation (see `crate::demo`).
pub async fn up(args: UpArgs) -> Result<(), Failure> {
    crate::demo::check_folder(&args.dir).map_err(|error| Failure::Usage(format!("{error:#}")))?;
    crate::telemetry::init(&crate::config::LogSection { filter: "warn".into(), ..Default::default() }, false);
    let options = crate::demo::UpOptions {
        dir: args.dir,
        listen: args.listen,
        volunteers_per_county: args.volunteers,
        exit_after_load: args.exit_after_load,
        seed: args.seed,
        json: args.output == OutputFormat::Json,
    };
    // Straight to standard output: the summary must show while the demo keeps serving.
    let result = crate::demo::up(options, &mut std::io::stdout()).await;
    result.map_err(|error| Failure::Failed(format!("{error:#}")))
}

/// Administration commands on this machine.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Write a new random node key (protects identity and phone numbers at rest); refuses to overwrite one.
    Keygen(KeygenArgs),
}

/// Arguments of `admin keygen`.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the key, e.g. the `store.key_file` of the node's configuration.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Serves until SIGTERM or Ctrl-C.
pub async fn serve(args: ServeArgs) -> Result<(), Failure> {
    // A broken configuration is the operator's to fix: report it as such (exit 2) before starting anything.
    load_config(&args.config)?;
    crate::server::serve(&args.config, args.log_json).await.map_err(|error| Failure::Failed(format!("{error:#}")))
}

pub fn run(command: AdminCommand, console: &mut Console<'_>) -> Result<(), Failure> {
    match command {
        AdminCommand::Keygen(args) => {
            NodeKeys::generate_file(&args.file).map_err(|error| Failure::Failed(error.to_string()))?;
            let reminder = "back it up now, and keep the backup apart from the data and its backups: without the key \
                            the identity and phone numbers in the store cannot be read, and anyone holding both \
                            can read them";
            if console.is_json() {
                console.json(&serde_json::json!({ "key_file": args.file.display().to_string() }));
                console.note(reminder);
            } else {
                console.print(&format!(
                    "wrote a new node key to {} (readable by its owner only)\n{reminder}\n",
                    args.file.display()
                ));
            }
            Ok(())
        }
    }
}
