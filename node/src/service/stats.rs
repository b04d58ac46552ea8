//! `ecovol.v1.StatsService`: the statistics of this node (definitions in `crate::stats`).

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::stats_service_server::StatsService;
use tonic::{Request, Response, Status};

use super::{caller, status};
use crate::app::App;
use crate::stats::{self, StatsRange};

/// The statistics service: read-only figures for staff and auditors.
pub struct StatsApi {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl StatsService for StatsApi {
    async fn get_stats(&self, request: Request<pb::GetStatsRequest>) -> Result<Response<pb::GetStatsResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let range = StatsRange::try_from(request.into_inner()).map_err(status)?;
        let app = self.app.clone();
        // A scan of the whole store: keep it off the async workers.
        let stats = tokio::task::spawn_blocking(move || stats::get(&*app.store, &caller, range))
            .await
            .map_err(|error| Status::internal(format!("statistics task failed: {error}")))?
            .map_err(status)?;
        Ok(Response::new(pb::GetStatsResponse::from(&stats)))
    }

    async fn get_region_stats(
        &self,
        request: Request<pb::GetRegionStatsRequest>,
    ) -> Result<Response<pb::GetRegionStatsResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let app = self.app.clone();
        let answer = tokio::task::spawn_blocking(move || crate::federation::region::get(&app, &caller, request))
            .await
            .map_err(|error| Status::internal(format!("statistics task failed: {error}")))?
            .map_err(status)?;
        Ok(Response::new(answer))
    }
}
