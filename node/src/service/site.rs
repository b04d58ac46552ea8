//! `ecovol.v1.SiteService`.

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::site_service_server::SiteService;
use tonic::{Request, Response, Status};

use super::{caller, page, status};
use crate::app::App;
use crate::audit::AuditContext;
use crate::registry::site::{self, CreateSite, GetSite, ListSites, UpdateSite};

/// The site service: the platforms where volunteers serve.
pub struct SiteApi {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl SiteService for SiteApi {
    async fn create_site(
        &self,
        request: Request<pb::CreateSiteRequest>,
    ) -> Result<Response<pb::CreateSiteResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let context = AuditContext::new(&caller, "SiteService/CreateSite", "");
        let command = CreateSite::try_from(request.into_inner());
        let app = self.app.clone();
        let record = self
            .app
            .committer
            .write(context, move |txn| site::create(txn, app.node_code(), &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateSiteResponse { site: Some(record.to_pb()) }))
    }

    async fn get_site(&self, request: Request<pb::GetSiteRequest>) -> Result<Response<pb::GetSiteResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let query = GetSite::try_from(request.into_inner()).map_err(status)?;
        let record = site::get(&*self.app.store, &caller, &query.site_id).map_err(status)?;
        Ok(Response::new(pb::GetSiteResponse { site: Some(record.to_pb()) }))
    }

    async fn list_sites(
        &self,
        request: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let query = ListSites::try_from(&request).map_err(status)?;
        let page = page(&self.app, request.page_size, &request.page_token)?;
        let found = site::list(&*self.app.store, &caller, &query, &page).map_err(status)?;
        Ok(Response::new(pb::ListSitesResponse {
            sites: found.items.iter().map(site::SiteRecord::to_pb).collect(),
            next_page_token: found.next_page_token,
        }))
    }

    async fn update_site(
        &self,
        request: Request<pb::UpdateSiteRequest>,
    ) -> Result<Response<pb::UpdateSiteResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "SiteService/UpdateSite", &request.site_id);
        let command = UpdateSite::try_from(request);
        let record =
            self.app.committer.write(context, move |txn| site::update(txn, &caller, command?)).await.map_err(status)?;
        Ok(Response::new(pb::UpdateSiteResponse { site: Some(record.to_pb()) }))
    }
}
