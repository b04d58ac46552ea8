//! `ecovol audit list`: read the append-only audit trail (`AuditService`, auditors only).

use chrono::{DateTime, FixedOffset};
use ecovol_proto::v1 as pb;

use super::connection::{ConnectionArgs, Node, PageArgs, pages};
use super::console::{Console, Record, name, optional, timestamp};
use super::failure::Failure;
use super::vocabulary::{department_name, outcome_name};

/// Audit commands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List audit entries in order, oldest first.
    List(ListArgs),
}

/// Arguments of `audit list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Entries at or after this time (RFC 3339, e.g. 2025-06-05T00:00:00+08:00).
    #[arg(long, value_name = "TIME", value_parser = DateTime::parse_from_rfc3339)]
    pub since: Option<DateTime<FixedOffset>>,

    /// Entries before this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = DateTime::parse_from_rfc3339)]
    pub until: Option<DateTime<FixedOffset>>,

    /// Only this account's entries, e.g. acct-000003.
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub account: Option<String>,

    #[command(flatten)]
    pub page: PageArgs,
}

fn wire_time(time: &DateTime<FixedOffset>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}

/// An audit entry as printed.
pub fn record(entry: &pb::AuditEntry) -> Record {
    Record::new()
        .field("sequence", entry.sequence)
        .field("time", timestamp(entry.time.as_ref()))
        .field("account_id", entry.account_id.clone())
        .field("account_name", entry.account_name.clone())
        .field("department", name(department_name(entry.department)))
        .field("operation", entry.operation.clone())
        .field("target", optional(&entry.target))
        .field("outcome", name(outcome_name(entry.outcome)))
        .field("detail", optional(&entry.detail))
        .field("request_id", entry.request_id.clone())
}

const LIST_COLUMNS: &[&str] =
    &["sequence", "time", "account_id", "operation", "target", "outcome", "request_id", "detail"];

pub async fn run(command: AuditCommand, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let AuditCommand::List(args) = command;
    if let (Some(since), Some(until)) = (&args.since, &args.until)
        && since >= until
    {
        return Err(Failure::Usage("--since must be before --until".into()));
    }
    let node = Node::connect(connection, console).await?;
    let client = node.audit();
    let (entries, next) = pages(args.page.all, args.page.start(), |page_token| {
        let mut client = client.clone();
        let request = pb::ListAuditEntriesRequest {
            start_time: args.since.as_ref().map(wire_time),
            end_time: args.until.as_ref().map(wire_time),
            account_id: args.account.clone().unwrap_or_default(),
            page_size: args.page.size(),
            page_token,
        };
        async move {
            let response = client.list_audit_entries(request).await?.into_inner();
            Ok((response.entries, response.next_page_token))
        }
    })
    .await?;
    let records: Vec<Record> = entries.iter().map(record).collect();
    console.list("entries", &records, LIST_COLUMNS, &next);
    Ok(())
}
