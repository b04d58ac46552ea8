//! `ecovol.v1.AuditService`: read-only, auditors only.

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::audit_service_server::AuditService;
use tonic::{Request, Response, Status};

use super::{caller, page, status};
use crate::account::department_to_pb;
use crate::app::App;
use crate::audit::{self, AuditEntry, AuditQuery, Outcome};
use crate::auth::Role;
use crate::error::DomainError;
use crate::wire;

pub struct AuditApi {
    pub app: Arc<App>,
}

fn to_pb(entry: &AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        sequence: entry.sequence,
        time: Some(wire::timestamp(entry.time)),
        account_id: entry.account_id.clone(),
        account_name: entry.account_name.clone(),
        department: department_to_pb(entry.department) as i32,
        operation: entry.operation.clone(),
        target: entry.target.clone(),
        outcome: match entry.outcome {
            Outcome::Ok => pb::Outcome::Ok,
            Outcome::Denied => pb::Outcome::Denied,
            Outcome::Invalid => pb::Outcome::Invalid,
            Outcome::NotFound => pb::Outcome::NotFound,
            Outcome::Conflict => pb::Outcome::Conflict,
            Outcome::Failed => pb::Outcome::Failed,
        } as i32,
        detail: entry.detail.clone(),
        request_id: entry.request_id.clone(),
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        caller.require_any(&[Role::Auditor], "reading the audit trail").map_err(status)?;
        let request = request.into_inner();
        let time = |field: &str, value: &Option<prost_types::Timestamp>| match value {
            None => Ok(None),
            Some(timestamp) => wire::from_timestamp(timestamp)
                .map(Some)
                .ok_or_else(|| status(DomainError::invalid(field, "is not a valid time"))),
        };
        let query = AuditQuery {
            start: time("start_time", &request.start_time)?,
            end: time("end_time", &request.end_time)?,
            account_id: (!request.account_id.is_empty()).then(|| request.account_id.clone()),
        };
        if let (Some(start), Some(end)) = (query.start, query.end)
            && end <= start
        {
            return Err(status(DomainError::invalid("end_time", "must be after start_time")));
        }
        if request.account_id.len() > 32 || request.account_id.contains('/') {
            return Err(status(DomainError::invalid("account_id", "is not an account id")));
        }
        let page = page(&self.app, request.page_size, &request.page_token)?;
        let found = audit::list(&*self.app.store, &query, &page).map_err(status)?;
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries: found.items.iter().map(to_pb).collect(),
            next_page_token: found.next_page_token,
        }))
    }
}
