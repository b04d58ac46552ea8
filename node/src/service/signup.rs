//! `ecovol.v1.SignUpService`.

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::sign_up_service_server::SignUpService;
use tonic::{Request, Response, Status};

use super::{caller, page, status};
use crate::app::App;
use crate::audit::AuditContext;
use crate::project::signup::{self, CancelSignUp, ListSignUps, SignUp, SignUpView};

/// The sign-up service: seats, waitlists and cancellations (CAP-1).
pub struct SignUpApi {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl SignUpService for SignUpApi {
    async fn sign_up(&self, request: Request<pb::SignUpRequest>) -> Result<Response<pb::SignUpResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "SignUpService/SignUp", &request.project_id);
        let command = SignUp::try_from(request);
        let answer = self
            .app
            .committer
            .write(context, move |txn| signup::sign_up(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SignUpResponse { sign_up: Some(answer.sign_up.to_pb()), already: answer.already }))
    }

    async fn cancel_sign_up(
        &self,
        request: Request<pb::CancelSignUpRequest>,
    ) -> Result<Response<pb::CancelSignUpResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "SignUpService/CancelSignUp", &request.project_id);
        let command = CancelSignUp::try_from(request);
        let answer = self
            .app
            .committer
            .write(context, move |txn| signup::cancel(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CancelSignUpResponse {
            sign_up: Some(answer.sign_up.to_pb()),
            promoted_volunteer_number: answer.promoted.unwrap_or_default(),
        }))
    }

    async fn list_sign_ups(
        &self,
        request: Request<pb::ListSignUpsRequest>,
    ) -> Result<Response<pb::ListSignUpsResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let query = ListSignUps::try_from(&request).map_err(status)?;
        let page = page(&self.app, request.page_size, &request.page_token)?;
        let found = signup::list(&*self.app.store, &caller, &query, &page).map_err(status)?;
        Ok(Response::new(pb::ListSignUpsResponse {
            sign_ups: found.items.iter().map(SignUpView::to_pb).collect(),
            next_page_token: found.next_page_token,
        }))
    }
}
