//! `ecovol node info`: who the node is, and `ecovol node federation`: its links to its parent and children
//! (`NodeService`).

use ecovol_proto::v1 as pb;
use serde_json::json;

use super::connection::{ConnectionArgs, Node};
use super::console::{Console, Record, name, optional, render_record, render_table, timestamp};
use super::failure::Failure;
use super::stats::china_time;
use super::vocabulary::level_name;

/// Node commands.
#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// Show the node's division code, level, name, release and start time.
    Info,
    /// Show the node's links (staff, auditors, operators): the uplink to its parent (changes waiting to be sent,
    /// the last acknowledgement, the last failure) and each child (last contact, stale, changes it still holds).
    Federation,
}

/// A node's description as printed.
pub fn record(info: &pb::GetNodeInfoResponse) -> Record {
    Record::new()
        .field("division_code", info.division_code.clone())
        .field("level", name(level_name(info.level)))
        .field("display_name", info.display_name.clone())
        .field("version", info.version.clone())
        .field("started_at", timestamp(info.started_at.as_ref()))
        .field("schema_version", info.schema_version)
}

pub async fn run(command: NodeCommand, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let node = Node::connect(connection, console).await?;
    match command {
        NodeCommand::Info => {
            let info = node.node().get_node_info(pb::GetNodeInfoRequest {}).await?.into_inner();
            let record = record(&info);
            if console.is_json() {
                console.json(&record.to_json());
            } else {
                console.print(&render_record(&record));
            }
        }
        NodeCommand::Federation => {
            let status = node.node().get_federation_status(pb::GetFederationStatusRequest {}).await?.into_inner();
            for note in federation_notes(&status) {
                console.note(&note);
            }
            if console.is_json() {
                console.json(&federation_json(&status));
            } else {
                console.print(&render_federation(&status));
            }
        }
    }
    Ok(())
}

fn uplink_record(uplink: &pb::UplinkStatus) -> Record {
    Record::new()
        .field("parent_code", uplink.parent_code.clone())
        .field("parent_address", uplink.parent_address.clone())
        .field("backlog", uplink.backlog)
        .field("backlog_max", uplink.backlog_max)
        .field("alarm", uplink.alarm)
        .field("last_ack", timestamp(uplink.last_ack.as_ref()))
        .field("last_error", optional(&uplink.last_error))
}

fn child_record(child: &pb::ChildStatus) -> Record {
    Record::new()
        .field("code", child.code.clone())
        .field("last_contact", timestamp(child.last_contact.as_ref()))
        .field("stale", child.stale)
        .field("backlog", child.backlog)
        .field("entries_applied", child.entries_applied)
}

/// The answer of `GetFederationStatus` as `ecovol node federation --output json` prints it.
pub fn federation_json(status: &pb::GetFederationStatusResponse) -> serde_json::Value {
    json!({
        "division_code": status.division_code,
        "level": name(level_name(status.level)),
        "federation_listen": optional(&status.federation_listen),
        "uplink": status.uplink.as_ref().map_or(serde_json::Value::Null, |uplink| uplink_record(uplink).to_json()),
        "children": status.children.iter().map(|child| child_record(child).to_json()).collect::<Vec<_>>(),
    })
}

/// The links in plain words: the node, its uplink, a table of its children.
pub fn render_federation(status: &pb::GetFederationStatusResponse) -> String {
    let level = level_name(status.level).unwrap_or_else(|| "-".into());
    let mut text = format!("node {} ({level})", status.division_code);
    if status.federation_listen.is_empty() {
        text.push_str(", no federation port (it takes no children)\n\n");
    } else {
        text.push_str(&format!(", federation port {}\n\n", status.federation_listen));
    }
    match &status.uplink {
        None => text.push_str("uplink: none, this is the top node of the federation\n\n"),
        Some(uplink) => {
            let last_ack = match china_time(uplink.last_ack.as_ref()) {
                serde_json::Value::String(time) => time,
                _ => "none since this node started".into(),
            };
            let record = Record::new()
                .field("parent", format!("{} at {}", uplink.parent_code, uplink.parent_address))
                .field("waiting_to_send", format!("{} changes (alarm at {})", uplink.backlog, uplink.backlog_max))
                .field(
                    "alarm",
                    if uplink.alarm { "ON: new changes are refused until the parent takes them" } else { "no" },
                )
                .field("last_ack", last_ack)
                .field("last_error", optional(&uplink.last_error));
            text.push_str("uplink to the parent:\n");
            text.push_str(&render_record(&record));
            text.push('\n');
        }
    }
    if status.children.is_empty() {
        text.push_str(if status.federation_listen.is_empty() {
            "children: none\n"
        } else {
            "children: none has linked yet\n"
        });
        return text;
    }
    text.push_str("children:\n");
    let rows: Vec<Vec<String>> = status
        .children
        .iter()
        .map(|child| {
            let last_contact = match china_time(child.last_contact.as_ref()) {
                serde_json::Value::String(time) => time,
                _ => "never".into(),
            };
            vec![
                child.code.clone(),
                last_contact,
                if child.stale { "yes" } else { "no" }.into(),
                child.backlog.to_string(),
                child.entries_applied.to_string(),
            ]
        })
        .collect();
    text.push_str(&render_table(&["CODE", "LAST_CONTACT", "STALE", "BACKLOG", "ENTRIES_APPLIED"], &rows));
    text
}

/// Plain-language warnings: the alarm, a failing uplink, stale children.
pub fn federation_notes(status: &pb::GetFederationStatusResponse) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(uplink) = &status.uplink {
        if uplink.alarm {
            notes.push(format!(
                "ALARM: {} changes are waiting for the parent {} (the limit is {}): this node refuses new changes \
                 until the link works again; nothing is lost",
                uplink.backlog, uplink.parent_code, uplink.backlog_max
            ));
        }
        if !uplink.last_error.is_empty() {
            notes.push(format!(
                "note: the last attempt to reach the parent {} failed: {}",
                uplink.parent_code, uplink.last_error
            ));
        }
    }
    for child in status.children.iter().filter(|child| child.stale) {
        notes.push(format!(
            "note: child {} has been silent too long (stale): its figures here may be out of date",
            child.code
        ));
    }
    notes
}
