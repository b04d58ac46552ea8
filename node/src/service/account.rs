//! `ecovol.v1.AccountService`.

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::account_service_server::AccountService;
use tonic::{Request, Response, Status};

use super::{caller, page, status};
use crate::account::{self, CreateAccount};
use crate::app::App;
use crate::audit::AuditContext;
use crate::auth;
use crate::error::{DomainError, Violations};
use crate::store;

pub struct AccountApi {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl AccountService for AccountApi {
    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::CreateAccountResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let context = AuditContext::new(&caller, "AccountService/CreateAccount", "");
        let command = CreateAccount::try_from(request.into_inner());
        let (account, token) = self
            .app
            .committer
            .write(context, move |txn| account::create(txn, Some(&caller), command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateAccountResponse { account: Some(account::to_pb(&account)), token }))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let page = page(&self.app, request.page_size, &request.page_token)?;
        let found = account::list(&*self.app.store, Some(&caller), request.include_revoked, &page).map_err(status)?;
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: found.items.iter().map(account::to_pb).collect(),
            next_page_token: found.next_page_token,
        }))
    }

    async fn revoke_account(
        &self,
        request: Request<pb::RevokeAccountRequest>,
    ) -> Result<Response<pb::RevokeAccountResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "AccountService/RevokeAccount", &request.account_id);
        let mut violations = Violations::new();
        violations.text("account_id", &request.account_id, 32);
        violations.text("reason", &request.reason, 500);
        let checked = violations.into_result();
        let account = self
            .app
            .committer
            .write(context, move |txn| {
                checked?;
                account::revoke(txn, Some(&caller), &request.account_id, request.reason)
            })
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RevokeAccountResponse { account: Some(account::to_pb(&account)) }))
    }

    async fn who_am_i(&self, request: Request<pb::WhoAmIRequest>) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let account: auth::Account =
            store::get_json(&*self.app.store, auth::account_key(&caller.account_id).as_bytes())
                .map_err(|error| status(error.into()))?
                .ok_or_else(|| status(DomainError::not_found("account", caller.account_id.clone())))?;
        Ok(Response::new(pb::WhoAmIResponse { account: Some(account::to_pb(&account)) }))
    }
}
