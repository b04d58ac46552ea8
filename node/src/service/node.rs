//! `ecovol.v1.NodeService`: who this node is, its links, and backups of its store.

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::node_service_server::NodeService;
use tonic::{Request, Response, Status};

use super::caller;
use crate::app::{App, SCHEMA_VERSION};
use crate::config::Level;
use crate::wire;

pub struct NodeApi {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl NodeService for NodeApi {
    async fn get_node_info(
        &self,
        request: Request<pb::GetNodeInfoRequest>,
    ) -> Result<Response<pb::GetNodeInfoResponse>, Status> {
        caller(&self.app, &request)?;
        let node = &self.app.config.node;
        Ok(Response::new(pb::GetNodeInfoResponse {
            division_code: node.code.clone(),
            level: match node.level {
                Level::Province => pb::Level::Province,
                Level::City => pb::Level::City,
                Level::County => pb::Level::County,
            } as i32,
            display_name: node.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: Some(wire::timestamp(self.app.started_at)),
            schema_version: SCHEMA_VERSION,
        }))
    }

    async fn get_federation_status(
        &self,
        request: Request<pb::GetFederationStatusRequest>,
    ) -> Result<Response<pb::GetFederationStatusResponse>, Status> {
        caller(&self.app, &request)?;
        Ok(Response::new(crate::federation::link::status(&self.app)))
    }

    async fn create_backup(
        &self,
        request: Request<pb::CreateBackupRequest>,
    ) -> Result<Response<pb::CreateBackupResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let written = crate::backup::create(&self.app, &caller).await.map_err(super::status)?;
        Ok(Response::new(pb::CreateBackupResponse {
            path: written.path.display().to_string(),
            entries: written.entries,
            bytes: written.bytes,
            sha256: written.sha256,
            created_at: Some(wire::timestamp(written.created_at)),
            duration_ms: written.duration.as_millis() as u64,
        }))
    }
}
