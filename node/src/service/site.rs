//! `ecovol.v1.SiteService` (being written).

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::site_service_server::SiteService;
use tonic::{Request, Response, Status};

use crate::app::App;

pub struct SiteApi {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl SiteService for SiteApi {
    async fn create_site(
        &self,
        _: Request<pb::CreateSiteRequest>,
    ) -> Result<Response<pb::CreateSiteResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn get_site(
        &self,
        _: Request<pb::GetSiteRequest>,
    ) -> Result<Response<pb::GetSiteResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn list_sites(
        &self,
        _: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn update_site(
        &self,
        _: Request<pb::UpdateSiteRequest>,
    ) -> Result<Response<pb::UpdateSiteResponse>, Status> {
        Err(Status::unimplemented(""))
    }
}
