//! The `ecovol` command line: run a node (`ecovol serve`), prepare one (`ecovol admin`, offline `ecovol account`),
//! and work with a running one over gRPC (`ecovol volunteer|team|site|account|audit|node`).
//!
//! Exit codes: 0 done; 1 the node refused or the call failed (or the node could not be reached); 2 the command
//! line or a configuration file is wrong. Results go to standard output (`--output table|json`); notes,
//! warnings and errors to standard error.

pub mod account;
pub mod admin;
pub mod audit;
pub mod campaign;
pub mod certificate;
pub mod certs;
pub mod connection;
pub mod console;
pub mod exchange;
pub mod export;
pub mod failure;
pub mod health;
pub mod hours;
pub mod import;
pub mod node;
pub mod plan;
pub mod project;
pub mod recognition;
pub mod signup;
pub mod site;
pub mod stats;
pub mod supervision;
pub mod team;
pub mod vocabulary;
pub mod volunteer;

use std::io::Write;

use clap::Parser;

use self::connection::ConnectionArgs;
use self::console::{Console, OutputFormat};
use self::failure::{EXIT_OK, Failure};

/// Command line of an ecovol node: eco-environment volunteer service for one office of the federation.
#[derive(Debug, clap::Parser)]
#[command(name = "ecovol", version, propagate_version = true)]
pub struct Cli {
    /// How to print results.
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        default_value_t = OutputFormat::Table,
        help_heading = "Global options"
    )]
    pub output: OutputFormat,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start a whole local federation (1 province, 2 cities, 4 counties) with synthetic data and keep serving.
    Up(admin::UpArgs),
    /// Run the node configured by --config until SIGTERM or Ctrl-C.
    Serve(admin::ServeArgs),
    /// Prepare a node on this machine (key files).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Department accounts and their tokens (offline with --config, else on --node).
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// The register of volunteers.
    #[command(subcommand)]
    Volunteer(volunteer::VolunteerCommand),
    /// Volunteer teams and their members.
    #[command(subcommand)]
    Team(team::TeamCommand),
    /// Service sites.
    #[command(subcommand)]
    Site(site::SiteCommand),
    /// Projects and the project library.
    #[command(subcommand)]
    Project(project::ProjectCommand),
    /// Joint work plans of the departments: draft, countersign, issue, adopt, report, follow progress, close.
    #[command(subcommand)]
    Plan(plan::PlanCommand),
    /// Selection campaigns (honours): issue, set quotas, nominate, review, select, show.
    #[command(subcommand)]
    Campaign(campaign::CampaignCommand),
    /// Sign-ups to projects and their waitlists.
    #[command(subcommand)]
    Signup(signup::SignupCommand),
    /// Service hours: record, confirm, correct, amend, revoke.
    #[command(subcommand)]
    Hours(hours::HoursCommand),
    /// Evaluation: rate a volunteer's service, record a project's outcome.
    #[command(subcommand)]
    Evaluation(recognition::EvaluationCommand),
    /// Training sessions and their attendance.
    #[command(subcommand)]
    Training(recognition::TrainingCommand),
    /// A volunteer's recognition: confirmed hours, ratings, trainings, star and star events.
    Profile(recognition::ProfileArgs),
    /// Service certificates: issue, verify, show.
    #[command(subcommand)]
    Certificate(certificate::CertificateCommand),
    /// Federation certificates and keys on this machine: the CA, node certificates, the pseudonym key.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Social supervision reports of damage to the environment.
    #[command(subcommand)]
    Supervision(supervision::SupervisionCommand),
    /// Statistics of this node by month and activity kind (staff, auditors).
    Stats(stats::StatsArgs),
    /// The audit trail (auditors only).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The node itself.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Ask a node whether it serves (gRPC health); exit 0 if it does, 1 if not (for container health checks).
    Health(health::HealthArgs),
    /// Import a spreadsheet (.csv or .xlsx) of volunteers, teams or hours (docs/SPREADSHEETS.md).
    Import(import::ImportArgs),
    /// Export volunteers, teams, projects, hours, statistics or plan progress to .xlsx or .csv.
    Export(export::ExportArgs),
    /// The exchange with the national volunteer platform: consent, export, recognition (docs/EXCHANGE.md).
    #[command(subcommand)]
    Exchange(exchange::ExchangeCommand),
}

/// Runs the command line of this process; returns the exit code.
pub async fn run() -> i32 {
    run_from(std::env::args()).await
}

/// Runs the command line `args` (the first item is the program name, as in `std::env::args`), printing to this
/// process's standard output and error; returns the exit code.
pub async fn run_from<I: IntoIterator<Item = String>>(args: I) -> i32 {
    match Cli::try_parse_from(args) {
        Ok(cli) => execute(cli, &mut std::io::stdout(), &mut std::io::stderr()).await,
        Err(error) => {
            // clap colours its own message on a terminal, and `--help` / `--version` go to standard output.
            let _ = error.print();
            error.exit_code()
        }
    }
}

/// As `run_from`, with standard output and error captured in `out` and `err` (for tests).
pub async fn run_with<I: IntoIterator<Item = String>>(
    args: I,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> i32 {
    match Cli::try_parse_from(args) {
        Ok(cli) => execute(cli, out, err).await,
        Err(error) => {
            let text = error.render().to_string();
            let _ = if error.use_stderr() { err.write_all(text.as_bytes()) } else { out.write_all(text.as_bytes()) };
            error.exit_code()
        }
    }
}

/// Runs a parsed command line.
pub async fn execute(cli: Cli, out: &mut (dyn Write + Send), err: &mut (dyn Write + Send)) -> i32 {
    let mut console = Console::new(out, err, cli.output);
    match dispatch(cli.command, &cli.connection, &mut console).await {
        Ok(()) => EXIT_OK,
        Err(failure) => {
            console.note(&failure.describe());
            failure.exit_code()
        }
    }
}

async fn dispatch(command: Command, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    match command {
        Command::Up(args) => admin::up(args).await,
        Command::Serve(args) => admin::serve(args).await,
        Command::Admin(command) => admin::run(command, console),
        Command::Account(command) => account::run(command, connection, console).await,
        Command::Volunteer(command) => volunteer::run(command, connection, console).await,
        Command::Team(command) => team::run(command, connection, console).await,
        Command::Site(command) => site::run(command, connection, console).await,
        Command::Project(command) => project::run(command, connection, console).await,
        Command::Plan(command) => plan::run(command, connection, console).await,
        Command::Campaign(command) => campaign::run(command, connection, console).await,
        Command::Signup(command) => signup::run(command, connection, console).await,
        Command::Hours(command) => hours::run(command, connection, console).await,
        Command::Evaluation(command) => recognition::run_evaluation(command, connection, console).await,
        Command::Training(command) => recognition::run_training(command, connection, console).await,
        Command::Profile(args) => recognition::run_profile(args, connection, console).await,
        Command::Certificate(command) => certificate::run(command, connection, console).await,
        Command::Certs(command) => certs::run(command, console),
        Command::Supervision(command) => supervision::run(command, connection, console).await,
        Command::Stats(args) => stats::run(args, connection, console).await,
        Command::Audit(command) => audit::run(command, connection, console).await,
        Command::Node(command) => node::run(command, connection, console).await,
        Command::Health(args) => health::run(args, connection, console).await,
        Command::Import(args) => import::run(args, connection, console).await,
        Command::Export(args) => export::run(args, connection, console).await,
        Command::Exchange(command) => exchange::run(command, connection, console).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::*;
    use crate::cli::vocabulary::{Department, PoliticalStatus, Role, SiteKind, TeamKind};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ecovol").chain(args.iter().copied()))
    }

    fn refused(args: &[&str]) -> ErrorKind {
        match parse(args) {
            Ok(cli) => panic!("{args:?} parsed as {cli:?}"),
            Err(error) => error.kind(),
        }
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_argument_has_help_text() {
        fn check(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} {id} has no help text");
            }
            for sub in command.get_subcommands() {
                assert!(sub.get_about().is_some(), "{path} {} has no about", sub.get_name());
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Cli::command(), "ecovol");
    }

    #[test]
    fn serve_needs_a_config() {
        let cli = parse(&["serve", "--config", "node.toml", "--log-json"]).unwrap();
        let Command::Serve(args) = cli.command else { panic!("not serve") };
        assert_eq!(args.config.to_str(), Some("node.toml"));
        assert!(args.log_json);
        assert_eq!(refused(&["serve"]), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn account_create_offline_with_several_roles() {
        let cli = parse(&[
            "account",
            "create",
            "--config",
            "node.toml",
            "--name",
            "ops",
            "--department",
            "ecology-bureau",
            "--role",
            "staff",
            "--role",
            "team-manager",
            "--team-id",
            "330106-T000001",
        ])
        .unwrap();
        let Command::Account(account::AccountCommand::Create(args)) = cli.command else { panic!("not account create") };
        assert!(args.offline.config.is_some());
        assert_eq!(args.department, Department::EcologyBureau);
        assert_eq!(args.roles, vec![Role::Staff, Role::TeamManager]);
        assert_eq!(args.team_id.as_deref(), Some("330106-T000001"));
    }

    #[test]
    fn account_create_refuses_missing_role_and_unknown_department() {
        assert_eq!(
            refused(&["account", "create", "--name", "ops", "--department", "other"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused(&["account", "create", "--name", "ops", "--department", "police", "--role", "staff"]),
            ErrorKind::InvalidValue
        );
    }

    #[test]
    fn volunteer_register_reads_every_field() {
        let cli = parse(&[
            "--node",
            "http://127.0.0.1:17070",
            "--token",
            "t0k",
            "volunteer",
            "register",
            "--name",
            "张三",
            "--identity-number",
            "11010519491231002X",
            "--phone",
            "13800138000",
            "--gender",
            "female",
            "--skill",
            "first aid",
            "--skill",
            "birds",
            "--political-status",
            "masses",
            "--consent",
            "--home-division-code",
            "330106",
        ])
        .unwrap();
        assert_eq!(cli.connection.node, "http://127.0.0.1:17070");
        assert_eq!(cli.connection.token.as_deref(), Some("t0k"));
        let Command::Volunteer(volunteer::VolunteerCommand::Register(args)) = cli.command else {
            panic!("not volunteer register")
        };
        assert_eq!(args.skills, vec!["first aid", "birds"]);
        assert_eq!(args.political_status, PoliticalStatus::Masses);
        assert!(args.consent && !args.self_supporting);
    }

    #[test]
    fn volunteer_register_refuses_missing_fields() {
        assert_eq!(
            refused(&[
                "volunteer",
                "register",
                "--name",
                "张三",
                "--phone",
                "13800138000",
                "--political-status",
                "masses",
                "--consent",
                "--home-division-code",
                "330106",
            ]),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn global_options_go_after_the_subcommand_too() {
        let cli = parse(&[
            "volunteer",
            "search",
            "--name-prefix",
            "张",
            "--all",
            "--output",
            "json",
            "--node",
            "https://node.example:7070",
        ])
        .unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(cli.connection.node, "https://node.example:7070");
        let Command::Volunteer(volunteer::VolunteerCommand::Search(args)) = cli.command else {
            panic!("not volunteer search")
        };
        assert!(args.page.all);
        assert_eq!(args.name_prefix.as_deref(), Some("张"));
        assert_eq!(refused(&["volunteer", "search", "--page-size", "0"]), ErrorKind::ValueValidation);
    }

    #[test]
    fn volunteer_update_needs_a_change_and_a_reason() {
        let cli = parse(&[
            "volunteer",
            "update",
            "330106-00000001",
            "--reason",
            "moved",
            "--self-supporting",
            "true",
            "--clear-skills",
        ])
        .unwrap();
        let Command::Volunteer(volunteer::VolunteerCommand::Update(args)) = cli.command else {
            panic!("not volunteer update")
        };
        assert_eq!(args.changes.self_supporting, Some(true));
        assert!(args.changes.clear_skills);
        assert_eq!(
            refused(&["volunteer", "update", "330106-00000001", "--reason", "x"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused(&["volunteer", "update", "330106-00000001", "--name", "x"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused(&["volunteer", "update", "330106-00000001", "--reason", "x", "--skill", "a", "--clear-skills"]),
            ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn team_create_registered_needs_a_credit_code() {
        let cli = parse(&[
            "team",
            "create",
            "--name",
            "西湖护水队",
            "--kind",
            "social-organisation",
            "--registered",
            "--credit-code",
            "51330106MJ0000000X",
            "--hub",
        ])
        .unwrap();
        let Command::Team(team::TeamCommand::Create(args)) = cli.command else { panic!("not team create") };
        assert_eq!(args.kind, TeamKind::SocialOrganisation);
        assert!(args.registered && args.hub && !args.support);
        assert_eq!(
            refused(&["team", "create", "--name", "x", "--kind", "agency", "--registered"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused(&["team", "add-member", "330106-T000001", "330106-00000001"]),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn site_coordinates_come_in_pairs() {
        let cli = parse(&[
            "site",
            "create",
            "--name",
            "西溪湿地",
            "--kind",
            "nature-reserve",
            "--address",
            "杭州市西湖区天目山路518号",
            "--latitude",
            "30.27",
            "--longitude",
            "-120.06",
        ])
        .unwrap();
        let Command::Site(site::SiteCommand::Create(args)) = cli.command else { panic!("not site create") };
        assert_eq!(args.kind, SiteKind::NatureReserve);
        assert_eq!(args.location.longitude, Some(-120.06));
        assert_eq!(
            refused(&["site", "create", "--name", "x", "--kind", "other", "--address", "y", "--latitude", "30"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused(&["site", "update", "330106-S000001", "--clear-location", "--latitude", "1", "--longitude", "2"]),
            ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn audit_times_must_be_rfc3339() {
        let cli = parse(&["audit", "list", "--since", "2025-06-05T00:00:00+08:00"]).unwrap();
        let Command::Audit(audit::AuditCommand::List(args)) = cli.command else { panic!("not audit list") };
        assert_eq!(args.since.map(|time| time.timestamp()), Some(1_749_052_800));
        assert_eq!(refused(&["audit", "list", "--since", "yesterday"]), ErrorKind::ValueValidation);
    }

    #[tokio::test]
    async fn usage_errors_exit_2_and_help_exits_0() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(["ecovol", "volunteer", "get"].map(String::from), &mut out, &mut err).await;
        assert_eq!(code, 2);
        assert!(String::from_utf8_lossy(&err).contains("NUMBER"));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(["ecovol", "--help"].map(String::from), &mut out, &mut err).await;
        assert_eq!(code, 0);
        assert!(String::from_utf8_lossy(&out).contains("volunteer"));
    }

    #[tokio::test]
    async fn an_unreachable_node_exits_1_with_a_plain_message() {
        // Port 9 (discard) on localhost: nothing listens there in a test environment.
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code =
            run_with(["ecovol", "--node", "http://127.0.0.1:9", "node", "info"].map(String::from), &mut out, &mut err)
                .await;
        assert_eq!(code, 1);
        let err = String::from_utf8_lossy(&err);
        assert!(
            err.contains("cannot reach the node at http://127.0.0.1:9: ") && err.contains("is it running?"),
            "{err}"
        );
    }

    #[test]
    fn the_command_future_can_be_spawned() {
        fn spawnable<T: Send>(_: &T) {}
        spawnable(&run_from(Vec::<String>::new()));
    }
}
