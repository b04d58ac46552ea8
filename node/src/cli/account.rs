//! `ecovol account …`: department accounts. With `--config` the command works directly on the store of a stopped
//! node (how the first operator account comes to exist); without it, it calls `AccountService` on `--node`.

use std::path::{Path, PathBuf};

use ecovol_proto::v1 as pb;

use super::connection::{ConnectionArgs, Node, pages};
use super::console::{Console, Record, name, optional, timestamp};
use super::failure::Failure;
use super::vocabulary::{Department, Role, department_name, role_name};
use crate::account::{self, CreateAccount};
use crate::config::Config;

/// Account commands.
#[derive(Debug, clap::Subcommand)]
pub enum AccountCommand {
    /// Create a department account and print its bearer token (shown only once).
    Create(CreateArgs),
    /// List the accounts of the node.
    List(ListArgs),
    /// Revoke an account: its token and client certificate stop working at once; the record stays.
    Revoke(RevokeArgs),
    /// Show the account that --token belongs to, with its roles.
    Whoami,
}

/// Selects offline mode.
#[derive(Debug, Clone, clap::Args)]
pub struct OfflineArgs {
    /// Work directly on the store of the STOPPED node configured by this file instead of calling --node (this is
    /// how the first operator account is created).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Arguments of `account create`.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub offline: OfflineArgs,

    /// Name of the person or desk that will use the account.
    #[arg(long)]
    pub name: String,

    /// Department the account belongs to.
    #[arg(long, value_enum)]
    pub department: Department,

    /// A role of the account; repeat for several (operator and auditor cannot be combined with other roles).
    #[arg(long = "role", value_enum, required = true, value_name = "ROLE")]
    pub roles: Vec<Role>,

    /// The team managed (required with --role team-manager, and only with it).
    #[arg(long, value_name = "TEAM_ID")]
    pub team_id: Option<String>,

    /// The volunteer's own number (required with --role volunteer, and only with it).
    #[arg(long, value_name = "NUMBER")]
    pub volunteer_number: Option<String>,

    /// SHA-256 (64 hex characters) of a client certificate (DER) that also authenticates as this account.
    #[arg(long, value_name = "HEX")]
    pub client_cert_sha256: Option<String>,
}

/// Arguments of `account list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub offline: OfflineArgs,

    /// Also list revoked accounts.
    #[arg(long)]
    pub include_revoked: bool,
}

/// Arguments of `account revoke`.
#[derive(Debug, Clone, clap::Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub offline: OfflineArgs,

    /// The account to revoke, e.g. acct-000003.
    pub account_id: String,

    /// Why the account is revoked (written to the audit trail).
    #[arg(long)]
    pub reason: String,
}

/// An account as printed.
pub fn record(account: &pb::Account) -> Record {
    Record::new()
        .field("account_id", account.account_id.clone())
        .field("name", account.name.clone())
        .field("department", name(department_name(account.department)))
        .field("roles", account.roles.iter().map(|role| name(role_name(*role))).collect::<Vec<_>>())
        .field("team_id", optional(&account.team_id))
        .field("volunteer_number", optional(&account.volunteer_number))
        .field("client_cert_sha256", optional(&account.client_cert_sha256))
        .field("created_at", timestamp(account.created_at.as_ref()))
        .field("revoked_at", timestamp(account.revoked_at.as_ref()))
}

const LIST_COLUMNS: &[&str] = &["account_id", "name", "department", "roles", "team_id", "created_at", "revoked_at"];

/// Loads a node's configuration for offline work; a broken file is a usage error.
pub fn load_config(path: &Path) -> Result<Config, Failure> {
    Config::load(Some(path)).map_err(|error| Failure::Usage(format!("{}: {error}", path.display())))
}

pub async fn run(
    command: AccountCommand,
    connection: &ConnectionArgs,
    console: &mut Console<'_>,
) -> Result<(), Failure> {
    match command {
        AccountCommand::Create(args) => create(args, connection, console).await,
        AccountCommand::List(args) => list(args, connection, console).await,
        AccountCommand::Revoke(args) => revoke(args, connection, console).await,
        AccountCommand::Whoami => {
            let node = Node::connect(connection, console).await?;
            let response = node.accounts().who_am_i(pb::WhoAmIRequest {}).await?.into_inner();
            console.single("account", &record(&response.account.unwrap_or_default()));
            Ok(())
        }
    }
}

async fn create(args: CreateArgs, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let request = pb::CreateAccountRequest {
        name: args.name,
        department: args.department.wire(),
        roles: args.roles.iter().map(|role| role.wire()).collect(),
        team_id: args.team_id.unwrap_or_default(),
        volunteer_number: args.volunteer_number.unwrap_or_default(),
        client_cert_sha256: args.client_cert_sha256.unwrap_or_default(),
    };
    let (account, token) = match &args.offline.config {
        Some(path) => {
            let config = load_config(path)?;
            // The same validation the node applies to CreateAccount.
            let command = CreateAccount::try_from(request)?;
            let (account, token) = account::offline::create(&config, command).await?;
            (account::to_pb(&account), token)
        }
        None => {
            let node = Node::connect(connection, console).await?;
            let response = node.accounts().create_account(request).await?.into_inner();
            (response.account.unwrap_or_default(), response.token)
        }
    };
    let notice = "the token is shown only once: store it now (a password manager, not a shared file); the node \
                  keeps only its hash";
    if console.is_json() {
        console.json(&serde_json::json!({ "account": record(&account).to_json(), "token": token }));
        console.note(notice);
    } else {
        console.single("account", &record(&account).field("token", token));
        console.print(&format!("{notice}\n"));
    }
    Ok(())
}

async fn list(args: ListArgs, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let accounts = match &args.offline.config {
        Some(path) => {
            let config = load_config(path)?;
            account::offline::list(&config, args.include_revoked)?.iter().map(account::to_pb).collect()
        }
        None => {
            let node = Node::connect(connection, console).await?;
            let client = node.accounts();
            // Accounts are few: always every page.
            let (accounts, _) = pages(true, String::new(), |page_token| {
                let mut client = client.clone();
                let request =
                    pb::ListAccountsRequest { include_revoked: args.include_revoked, page_size: 0, page_token };
                async move {
                    let response = client.list_accounts(request).await?.into_inner();
                    Ok((response.accounts, response.next_page_token))
                }
            })
            .await?;
            accounts
        }
    };
    let records: Vec<Record> = accounts.iter().map(record).collect();
    console.list("accounts", &records, LIST_COLUMNS, "");
    Ok(())
}

async fn revoke(args: RevokeArgs, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let account = match &args.offline.config {
        Some(path) => {
            let config = load_config(path)?;
            let account = account::offline::revoke(&config, args.account_id.clone(), args.reason).await?;
            account::to_pb(&account)
        }
        None => {
            let node = Node::connect(connection, console).await?;
            node.accounts()
                .revoke_account(pb::RevokeAccountRequest { account_id: args.account_id.clone(), reason: args.reason })
                .await?
                .into_inner()
                .account
                .unwrap_or_default()
        }
    };
    console.single("account", &record(&account));
    console
        .note(&format!("account {} is revoked: its token and client certificate no longer work", account.account_id));
    Ok(())
}
