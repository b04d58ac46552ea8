//! `ecovol.v1.PlanService`: joint work plans (domain in `crate::plan`). Every transition is one audited write.

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::plan_service_server::PlanService;
use tonic::{Request, Response, Status};

use super::{caller, status};
use crate::app::App;
use crate::audit::AuditContext;
use crate::plan::{self, PlanCommandKind};

pub struct PlanApi {
    pub app: Arc<App>,
}

impl PlanApi {
    /// Runs a plan transition as one audited write and answers the plan with its progress.
    async fn transition<F>(
        &self,
        request_caller: crate::auth::Caller,
        operation: &'static str,
        id: &str,
        use_case: F,
    ) -> Result<Response<pb::PlanResponse>, Status>
    where
        F: FnOnce(&mut crate::commit::Txn<'_>, &crate::auth::Caller) -> Result<pb::Plan, crate::error::DomainError>
            + Send
            + 'static,
    {
        let context = AuditContext::new(&request_caller, operation, id);
        let caller = request_caller.clone();
        let plan = self.app.committer.write(context, move |txn| use_case(txn, &caller)).await.map_err(status)?;
        let app = self.app.clone();
        let id = plan.plan_id.clone();
        let answer = tokio::task::spawn_blocking(move || plan::get(&app, &request_caller, &id))
            .await
            .map_err(|error| Status::internal(format!("plan task failed: {error}")))?
            .map_err(status)?;
        Ok(Response::new(answer))
    }
}

#[tonic::async_trait]
impl PlanService for PlanApi {
    async fn draft_plan(&self, request: Request<pb::DraftPlanRequest>) -> Result<Response<pb::PlanResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let id = request.plan_id.clone();
        self.transition(caller, "PlanService/DraftPlan", &id, move |txn, caller| plan::draft(txn, caller, request))
            .await
    }

    async fn submit_plan(&self, request: Request<pb::PlanRequest>) -> Result<Response<pb::PlanResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let id = request.into_inner().plan_id;
        let target = id.clone();
        self.transition(caller, "PlanService/SubmitPlan", &target, move |txn, caller| {
            plan::command(txn, caller, &id, PlanCommandKind::Submit)
        })
        .await
    }

    async fn sign_plan(&self, request: Request<pb::PlanRequest>) -> Result<Response<pb::PlanResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let id = request.into_inner().plan_id;
        let target = id.clone();
        self.transition(caller, "PlanService/SignPlan", &target, move |txn, caller| {
            plan::command(txn, caller, &id, PlanCommandKind::Sign)
        })
        .await
    }

    async fn return_plan(&self, request: Request<pb::ReturnPlanRequest>) -> Result<Response<pb::PlanResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let target = request.plan_id.clone();
        self.transition(caller, "PlanService/ReturnPlan", &target, move |txn, caller| {
            plan::command(txn, caller, &request.plan_id, PlanCommandKind::Return(request.comment))
        })
        .await
    }

    async fn issue_plan(&self, request: Request<pb::PlanRequest>) -> Result<Response<pb::PlanResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let id = request.into_inner().plan_id;
        let target = id.clone();
        self.transition(caller, "PlanService/IssuePlan", &target, move |txn, caller| {
            plan::command(txn, caller, &id, PlanCommandKind::Issue)
        })
        .await
    }

    async fn adopt_plan(&self, request: Request<pb::AdoptPlanRequest>) -> Result<Response<pb::PlanResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let target = request.plan_id.clone();
        self.transition(caller, "PlanService/AdoptPlan", &target, move |txn, caller| plan::adopt(txn, caller, request))
            .await
    }

    async fn report_task(&self, request: Request<pb::ReportTaskRequest>) -> Result<Response<pb::PlanResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let target = request.plan_id.clone();
        self.transition(caller, "PlanService/ReportTask", &target, move |txn, caller| {
            plan::report_task(txn, caller, request)
        })
        .await
    }

    async fn close_plan(&self, request: Request<pb::ClosePlanRequest>) -> Result<Response<pb::PlanResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let target = request.plan_id.clone();
        self.transition(caller, "PlanService/ClosePlan", &target, move |txn, caller| plan::close(txn, caller, request))
            .await
    }

    async fn get_plan(&self, request: Request<pb::PlanRequest>) -> Result<Response<pb::PlanResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let id = request.into_inner().plan_id;
        let app = self.app.clone();
        let answer = tokio::task::spawn_blocking(move || plan::get(&app, &caller, &id))
            .await
            .map_err(|error| Status::internal(format!("plan task failed: {error}")))?
            .map_err(status)?;
        Ok(Response::new(answer))
    }

    async fn list_plans(
        &self,
        request: Request<pb::ListPlansRequest>,
    ) -> Result<Response<pb::ListPlansResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let plans = plan::list(&*self.app.store, &caller).map_err(status)?;
        Ok(Response::new(pb::ListPlansResponse { plans }))
    }
}
