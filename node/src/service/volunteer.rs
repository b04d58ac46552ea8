//! `ecovol.v1.VolunteerService`.

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::register_volunteer_result::Result::{AlreadyRegistered, Refused, Registered};
use ecovol_proto::v1::volunteer_service_server::VolunteerService;
use tonic::{Request, Response, Status};

use super::{caller, page, status};
use crate::app::App;
use crate::audit::AuditContext;
use crate::error::{DomainError, Violations};
use crate::registry::volunteer::{self, RegisterVolunteer, RowRegistration, SearchVolunteers, UpdateVolunteer};

pub struct VolunteerApi {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl VolunteerService for VolunteerApi {
    async fn register_volunteer(
        &self,
        request: Request<pb::RegisterVolunteerRequest>,
    ) -> Result<Response<pb::RegisterVolunteerResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let context = AuditContext::new(&caller, "VolunteerService/RegisterVolunteer", "");
        let command = RegisterVolunteer::try_from(request.into_inner());
        let app = self.app.clone();
        let record = self
            .app
            .committer
            .write(context, move |txn| volunteer::register(txn, &app.keys, app.node_code(), &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RegisterVolunteerResponse { volunteer: Some(record.to_pb(&self.app.keys)) }))
    }

    async fn register_volunteers(
        &self,
        request: Request<pb::RegisterVolunteersRequest>,
    ) -> Result<Response<pb::RegisterVolunteersResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        if request.volunteers.len() > volunteer::REGISTER_BULK_ROWS_MAX {
            let rule = format!("at most {} rows per call", volunteer::REGISTER_BULK_ROWS_MAX);
            return Err(status(DomainError::invalid("volunteers", rule)));
        }
        let context = AuditContext::new(&caller, "VolunteerService/RegisterVolunteers", "");
        let row_audit = AuditContext::new(&caller, "VolunteerService/RegisterVolunteer", "");
        let rows: Vec<_> = request.volunteers.into_iter().map(RegisterVolunteer::try_from).collect();
        let app = self.app.clone();
        let outcomes = self
            .app
            .committer
            .write(context, move |txn| {
                volunteer::register_bulk(txn, &app.keys, app.node_code(), &caller, rows, &row_audit)
            })
            .await
            .map_err(status)?;
        let results = outcomes
            .into_iter()
            .map(|outcome| pb::RegisterVolunteerResult {
                result: Some(match outcome {
                    RowRegistration::Registered(record) => Registered(record.to_pb(&self.app.keys)),
                    RowRegistration::AlreadyRegistered(number) => AlreadyRegistered(number),
                    RowRegistration::Refused(error) => Refused(row_refusal(error)),
                }),
            })
            .collect();
        Ok(Response::new(pb::RegisterVolunteersResponse { results }))
    }

    async fn get_volunteer(
        &self,
        request: Request<pb::GetVolunteerRequest>,
    ) -> Result<Response<pb::GetVolunteerResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let number = volunteer::parse_volunteer_number(&request.get_ref().volunteer_number).map_err(status)?;
        let record = volunteer::get(&*self.app.store, &caller, &number).map_err(status)?;
        Ok(Response::new(pb::GetVolunteerResponse { volunteer: Some(record.to_pb(&self.app.keys)) }))
    }

    async fn search_volunteers(
        &self,
        request: Request<pb::SearchVolunteersRequest>,
    ) -> Result<Response<pb::SearchVolunteersResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let query = SearchVolunteers::try_from(&request).map_err(status)?;
        let page = page(&self.app, request.page_size, &request.page_token)?;
        let found = volunteer::search(&*self.app.store, &self.app.keys, &caller, query, &page).map_err(status)?;
        Ok(Response::new(pb::SearchVolunteersResponse {
            volunteers: found.items.iter().map(|record| record.to_pb(&self.app.keys)).collect(),
            next_page_token: found.next_page_token,
        }))
    }

    async fn update_volunteer(
        &self,
        request: Request<pb::UpdateVolunteerRequest>,
    ) -> Result<Response<pb::UpdateVolunteerResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "VolunteerService/UpdateVolunteer", &request.volunteer_number);
        let command = UpdateVolunteer::try_from(request);
        let app = self.app.clone();
        let today = crate::wire::today_china();
        let record = self
            .app
            .committer
            .write(context, move |txn| volunteer::update(txn, &app.keys, &caller, command?, today))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::UpdateVolunteerResponse { volunteer: Some(record.to_pb(&self.app.keys)) }))
    }

    async fn deactivate_volunteer(
        &self,
        request: Request<pb::DeactivateVolunteerRequest>,
    ) -> Result<Response<pb::DeactivateVolunteerResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "VolunteerService/DeactivateVolunteer", &request.volunteer_number);
        let mut violations = Violations::new();
        volunteer::check_reason(&mut violations, &request.reason);
        let checked = volunteer::parse_volunteer_number(&request.volunteer_number)
            .and_then(|number| violations.into_result().map(|()| number));
        let record = self
            .app
            .committer
            .write(context, move |txn| volunteer::deactivate(txn, &caller, &checked?, request.reason))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeactivateVolunteerResponse { volunteer: Some(record.to_pb(&self.app.keys)) }))
    }

    async fn list_volunteer_versions(
        &self,
        request: Request<pb::ListVolunteerVersionsRequest>,
    ) -> Result<Response<pb::ListVolunteerVersionsResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let number = volunteer::parse_volunteer_number(&request.volunteer_number).map_err(status)?;
        let page = page(&self.app, request.page_size, &request.page_token)?;
        let found = volunteer::versions(&*self.app.store, &caller, &number, &page).map_err(status)?;
        Ok(Response::new(pb::ListVolunteerVersionsResponse {
            versions: found.items.iter().map(|record| record.to_version_pb(&self.app.keys)).collect(),
            next_page_token: found.next_page_token,
        }))
    }

    async fn reveal_identity_number(
        &self,
        request: Request<pb::RevealIdentityNumberRequest>,
    ) -> Result<Response<pb::RevealIdentityNumberResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "VolunteerService/RevealIdentityNumber", &request.volunteer_number);
        let mut violations = Violations::new();
        volunteer::check_reason(&mut violations, &request.reason);
        let checked = volunteer::parse_volunteer_number(&request.volunteer_number)
            .and_then(|number| violations.into_result().map(|()| number));
        let app = self.app.clone();
        let identity_number = self
            .app
            .committer
            .write(context, move |txn| volunteer::reveal_identity(txn, &app.keys, &caller, &checked?, request.reason))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RevealIdentityNumberResponse { identity_number }))
    }
}

/// A refused row of a bulk call as the single call's answer: its code, message and field violations.
fn row_refusal(error: DomainError) -> pb::RowRefusal {
    let violations = match &error {
        DomainError::Invalid(violations) => violations
            .iter()
            .map(|violation| pb::RowFieldViolation {
                field: violation.field.clone(),
                description: violation.description.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let answer = status(error);
    pb::RowRefusal { code: answer.code() as i32, message: answer.message().to_string(), violations }
}
