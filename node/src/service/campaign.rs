//! `ecovol.v1.CampaignService`: selection campaigns (domain in `crate::campaign`). Every step is one audited write.

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::campaign_service_server::CampaignService;
use tonic::{Request, Response, Status};

use super::{caller, status};
use crate::app::App;
use crate::audit::AuditContext;
use crate::campaign;
use crate::federation::apply::Router;

pub struct CampaignApi {
    pub app: Arc<App>,
}

impl CampaignApi {
    async fn answer(&self, caller: crate::auth::Caller, id: String) -> Result<Response<pb::CampaignResponse>, Status> {
        let app = self.app.clone();
        let answer = tokio::task::spawn_blocking(move || campaign::get(&*app.store, &caller, &id))
            .await
            .map_err(|error| Status::internal(format!("campaign task failed: {error}")))?
            .map_err(status)?;
        Ok(Response::new(answer))
    }
}

#[tonic::async_trait]
impl CampaignService for CampaignApi {
    async fn issue_campaign(
        &self,
        request: Request<pb::IssueCampaignRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let router = Router::of(&self.app);
        let context = AuditContext::new(&caller, "CampaignService/IssueCampaign", "new campaign");
        let who = caller.clone();
        let issued = self
            .app
            .committer
            .write(context, move |txn| campaign::issue(txn, &who, &router, request))
            .await
            .map_err(status)?;
        self.answer(caller, issued.campaign_id).await
    }

    async fn set_quotas(
        &self,
        request: Request<pb::SetQuotasRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let id = request.campaign_id.clone();
        let router = Router::of(&self.app);
        let context = AuditContext::new(&caller, "CampaignService/SetQuotas", &id);
        let who = caller.clone();
        self.app
            .committer
            .write(context, move |txn| campaign::set_quotas(txn, &who, &router, request))
            .await
            .map_err(status)?;
        self.answer(caller, id).await
    }

    async fn nominate(&self, request: Request<pb::NominateRequest>) -> Result<Response<pb::CampaignResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let id = request.campaign_id.clone();
        let router = Router::of(&self.app);
        let context = AuditContext::new(&caller, "CampaignService/Nominate", &id);
        let who = caller.clone();
        self.app
            .committer
            .write(context, move |txn| campaign::nominate(txn, &who, &router, request))
            .await
            .map_err(status)?;
        self.answer(caller, id).await
    }

    async fn review(&self, request: Request<pb::ReviewRequest>) -> Result<Response<pb::CampaignResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let id = request.campaign_id.clone();
        let router = Router::of(&self.app);
        let context = AuditContext::new(&caller, "CampaignService/Review", &id);
        let who = caller.clone();
        self.app
            .committer
            .write(context, move |txn| campaign::review(txn, &who, &router, request))
            .await
            .map_err(status)?;
        self.answer(caller, id).await
    }

    async fn select(&self, request: Request<pb::SelectRequest>) -> Result<Response<pb::CampaignResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let id = request.campaign_id.clone();
        let router = Router::of(&self.app);
        let context = AuditContext::new(&caller, "CampaignService/Select", &id);
        let who = caller.clone();
        self.app
            .committer
            .write(context, move |txn| campaign::select(txn, &who, &router, request))
            .await
            .map_err(status)?;
        self.answer(caller, id).await
    }

    async fn get_campaign(
        &self,
        request: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        self.answer(caller, request.into_inner().campaign_id).await
    }

    async fn list_campaigns(
        &self,
        request: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let campaigns = campaign::list(&*self.app.store, &caller).map_err(status)?;
        Ok(Response::new(pb::ListCampaignsResponse { campaigns }))
    }
}
