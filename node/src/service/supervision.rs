//! `ecovol.v1.SupervisionService`: social supervision reports (rules in `crate::supervision`).

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::supervision_service_server::SupervisionService;
use tonic::{Request, Response, Status};

use super::{caller, page, status};
use crate::app::App;
use crate::audit::AuditContext;
use crate::auth::Caller;
use crate::auth::Role;
use crate::supervision::{self, AdvanceReport, SubmitReport, SupervisionReport};

/// The supervision service: reports of damage to the environment, their handling, and the reporter's
/// confidentiality (Environmental Protection Law art. 57).
pub struct SupervisionApi {
    pub app: Arc<App>,
}

impl SupervisionApi {
    /// The wire form, with the reporter only for callers allowed to see them.
    fn report_pb(&self, caller: &Caller, report: &SupervisionReport) -> Result<pb::SupervisionReport, Status> {
        let reporter = if supervision::sees_reporter(caller, report) {
            let name =
                supervision::reporter_name(&*self.app.store, &report.reporter_volunteer_number).map_err(status)?;
            Some((report.reporter_volunteer_number.clone(), name))
        } else {
            None
        };
        Ok(report.to_pb(reporter))
    }
}

/// How a caller appears in the audit entries of supervision reports. A volunteer (reporting as themself, or
/// trying anything else here) is named by a keyed pseudonym only: the reporter's identity is for this node's staff
/// alone (Environmental Protection Law art. 57), not for auditors. Staff appear as themselves.
fn confidential(app: &App, caller: &Caller) -> Caller {
    let mut audited = caller.clone();
    if caller.has(Role::Volunteer) && !caller.has(Role::Staff) {
        audited.account_id = format!("reporter-{}", app.keys.pseudonym("reporter", &caller.account_id));
        audited.name = "confidential reporter".into();
    }
    audited
}

#[tonic::async_trait]
impl SupervisionService for SupervisionApi {
    async fn submit_report(
        &self,
        request: Request<pb::SubmitReportRequest>,
    ) -> Result<Response<pb::SubmitReportResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        // The audit target is the new report's id, set by the use-case; never the reporter.
        let audited = confidential(&self.app, &caller);
        let context = AuditContext::new(&audited, "SupervisionService/SubmitReport", "new report");
        let command = SubmitReport::parse(request.into_inner(), chrono::Utc::now());
        let app = self.app.clone();
        let use_caller = caller.clone();
        let report = self
            .app
            .committer
            .write(context, move |txn| supervision::submit(txn, app.node_code(), &use_caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SubmitReportResponse { report: Some(self.report_pb(&caller, &report)?) }))
    }

    async fn advance_report(
        &self,
        request: Request<pb::AdvanceReportRequest>,
    ) -> Result<Response<pb::AdvanceReportResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(
            &confidential(&self.app, &caller),
            "SupervisionService/AdvanceReport",
            &request.report_id,
        );
        let command = AdvanceReport::try_from(request);
        let use_caller = caller.clone();
        let report = self
            .app
            .committer
            .write(context, move |txn| supervision::advance(txn, &use_caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::AdvanceReportResponse { report: Some(self.report_pb(&caller, &report)?) }))
    }

    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let report_id = supervision::parse_report_id(&request.into_inner().report_id).map_err(status)?;
        let report = supervision::get(&*self.app.store, &caller, &report_id).map_err(status)?;
        Ok(Response::new(pb::GetReportResponse { report: Some(self.report_pb(&caller, &report)?) }))
    }

    async fn list_reports(
        &self,
        request: Request<pb::ListReportsRequest>,
    ) -> Result<Response<pb::ListReportsResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let filter = supervision::parse_status_filter(request.status).map_err(status)?;
        let page = page(&self.app, request.page_size, &request.page_token)?;
        let found = supervision::list(&*self.app.store, &caller, filter, &page).map_err(status)?;
        let reports = found.items.iter().map(|report| self.report_pb(&caller, report)).collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListReportsResponse { reports, next_page_token: found.next_page_token }))
    }
}
