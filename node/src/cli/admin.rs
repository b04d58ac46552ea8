//! Running a node on this machine: `ecovol serve` and `ecovol admin …` (no network calls).

use std::path::PathBuf;

use super::account::load_config;
use ecovol_proto::v1 as pb;

use super::console::{Console, OutputFormat, Record};
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
    /// Back up the node's store: a running node over --node (operators; the file is written on the node's
    /// machine, in store.backup_dir), or a STOPPED node with --config and --out.
    Backup(BackupArgs),
    /// Restore a backup into the store of a STOPPED node: its data folder must be empty (or --force moves it
    /// aside). Checks the file's checksum, node code and node key first.
    Restore(RestoreArgs),
}

/// Arguments of `admin backup`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Back up the STOPPED node configured by this file instead of calling --node.
    #[arg(long, value_name = "FILE", requires = "out")]
    pub config: Option<PathBuf>,

    /// With --config: the backup file to write (refused if it exists).
    #[arg(long, value_name = "FILE", requires = "config")]
    pub out: Option<PathBuf>,

    // The global connection options, declared again so `admin backup` sees them (as `up` does with --output):
    // `admin` commands work on this machine and are not handed the connection.
    #[command(flatten)]
    pub connection: super::connection::ConnectionArgs,
}

/// Arguments of `admin restore`.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// The STOPPED node's configuration: its store.path receives the backup, its store.key_file must be the key
    /// the backup was made with.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// The backup file (`ecovol admin backup`).
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,

    /// Move a data folder that is not empty aside (to `<data>.before-restore-<time>`) instead of refusing.
    #[arg(long)]
    pub force: bool,
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
        AdminCommand::Backup(args) => backup(args, console),
        AdminCommand::Restore(args) => restore(args, console),
    }
}

fn backup_failure(error: crate::backup::BackupError) -> Failure {
    match error {
        crate::backup::BackupError::Refused(message) => Failure::Usage(message),
        other => Failure::Failed(other.to_string()),
    }
}

fn backup(args: BackupArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let record = match (&args.config, &args.out) {
        (Some(config), Some(out)) => {
            let config = load_config(config)?;
            let written = crate::backup::write_offline(&config, out).map_err(backup_failure)?;
            Record::new()
                .field("path", written.path.display().to_string())
                .field("entries", written.entries)
                .field("bytes", written.bytes)
                .field("sha256", written.sha256)
                .field("created_at", written.created_at.to_rfc3339())
                .field("duration_ms", written.duration.as_millis() as u64)
        }
        _ => {
            let connection = args.connection.clone();
            let (response, notes) = call_node(async move {
                let (mut out, mut err) = (Vec::new(), Vec::new());
                let node = {
                    let mut quiet = Console::new(&mut out, &mut err, OutputFormat::Table);
                    super::connection::Node::connect(&connection, &mut quiet).await?
                };
                let response = node.node().create_backup(pb::CreateBackupRequest {}).await?.into_inner();
                Ok((response, String::from_utf8_lossy(&err).into_owned()))
            })?;
            for note in notes.lines() {
                console.note(note);
            }
            Record::new()
                .field("path", response.path)
                .field("entries", response.entries)
                .field("bytes", response.bytes)
                .field("sha256", response.sha256)
                .field("created_at", super::console::timestamp(response.created_at.as_ref()))
                .field("duration_ms", response.duration_ms)
        }
    };
    if console.is_json() {
        console.json(&record.to_json());
    } else {
        console.print(&super::console::render_record(&record));
    }
    console.note(
        "keep the node key (store.key_file) with the backup, apart from it: a restore needs that very key, and \
         the backup is as sensitive as the data folder",
    );
    Ok(())
}

/// Runs a call to a node from this synchronous command: on a multi-threaded runtime (the `ecovol` binary) in
/// place, else on a thread of its own with a runtime of its own.
fn call_node<T: Send + 'static>(
    call: impl std::future::Future<Output = Result<T, Failure>> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(call))
        }
        _ => std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| Failure::Failed(error.to_string()))?
                .block_on(call)
        })
        .join()
        .map_err(|_| Failure::Failed("the call to the node failed".into()))?,
    }
}

fn restore(args: RestoreArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let config = load_config(&args.config)?;
    let restored = crate::backup::restore(&config, &args.from, args.force).map_err(backup_failure)?;
    let header = &restored.header;
    let record = Record::new()
        .field("node_code", header.node_code.clone())
        .field("entries", header.entries)
        .field("schema_version", header.schema_version)
        .field("backup_created_at", header.created_at.to_rfc3339())
        .field("sha256", restored.sha256.clone())
        .field("store_path", restored.store_path.display().to_string())
        .field("moved_aside", restored.moved_aside.as_ref().map(|path| path.display().to_string()).unwrap_or_default());
    if console.is_json() {
        console.json(&record.to_json());
    } else {
        console.print(&super::console::render_record(&record));
    }
    console.note(
        "restored; start the node (ecovol serve): it resumes sending to its parent from the restored positions. \
         Changes made after the backup are not in it; see docs/OPERATIONS.md, Backups, before restoring a node \
         of a federation",
    );
    Ok(())
}
