//! `ecovol node info`: who the node is (`NodeService`).

use ecovol_proto::v1 as pb;

use super::connection::{ConnectionArgs, Node};
use super::console::{Console, Record, name, timestamp};
use super::failure::Failure;
use super::vocabulary::level_name;

/// Node commands.
#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// Show the node's division code, level, name, release and start time.
    Info,
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
    let NodeCommand::Info = command;
    let node = Node::connect(connection, console).await?;
    let info = node.node().get_node_info(pb::GetNodeInfoRequest {}).await?.into_inner();
    let record = record(&info);
    if console.is_json() {
        console.json(&record.to_json());
    } else {
        console.print(&super::console::render_record(&record));
    }
    Ok(())
}
