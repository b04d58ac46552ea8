//! `ecovol.v1.ServiceRecordService`: service hours.

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::service_record_service_server::ServiceRecordService;
use tonic::{Request, Response, Status};

use super::{caller, page, status};
use crate::app::App;
use crate::audit::AuditContext;
use crate::hours::{
    self, AmendServiceRecord, ListServiceRecords, RecordService, RecordServiceBulk, RecordTarget, RejectCorrection,
    RequestCorrection, RevokeServiceRecord,
};

/// The service-hours service: recording, certification, corrections and revocation of service records.
pub struct ServiceRecordApi {
    pub app: Arc<App>,
}

fn record_pb(record: &hours::ServiceRecord) -> Option<pb::ServiceRecord> {
    Some(pb::ServiceRecord::from(record))
}

#[tonic::async_trait]
impl ServiceRecordService for ServiceRecordApi {
    async fn record_service(
        &self,
        request: Request<pb::RecordServiceRequest>,
    ) -> Result<Response<pb::RecordServiceResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ServiceRecordService/RecordService", &request.project_id);
        let command = RecordService::try_from(request);
        let app = self.app.clone();
        let recorded = self
            .app
            .committer
            .write(context, move |txn| hours::record(txn, app.node_code(), &app.config.hours, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RecordServiceResponse {
            record: record_pb(&recorded.record),
            replayed: recorded.replayed,
        }))
    }

    async fn record_service_bulk(
        &self,
        request: Request<pb::RecordServiceBulkRequest>,
    ) -> Result<Response<pb::RecordServiceBulkResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ServiceRecordService/RecordServiceBulk", &request.project_id);
        let command = RecordServiceBulk::try_from(request);
        let app = self.app.clone();
        let recorded = self
            .app
            .committer
            .write(context, move |txn| hours::record_bulk(txn, app.node_code(), &app.config.hours, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RecordServiceBulkResponse {
            records: recorded.iter().map(|row| pb::ServiceRecord::from(&row.record)).collect(),
            replayed_count: recorded.iter().filter(|row| row.replayed).count() as u32,
        }))
    }

    async fn confirm_service_record(
        &self,
        request: Request<pb::ConfirmServiceRecordRequest>,
    ) -> Result<Response<pb::ConfirmServiceRecordResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ServiceRecordService/ConfirmServiceRecord", &request.record_id);
        let command = RecordTarget::try_from(request);
        let record = self
            .app
            .committer
            .write(context, move |txn| hours::confirm(txn, &caller, &command?.record_id))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ConfirmServiceRecordResponse { record: record_pb(&record) }))
    }

    async fn request_correction(
        &self,
        request: Request<pb::RequestCorrectionRequest>,
    ) -> Result<Response<pb::RequestCorrectionResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ServiceRecordService/RequestCorrection", &request.record_id);
        let command = RequestCorrection::try_from(request);
        let record = self
            .app
            .committer
            .write(context, move |txn| hours::request_correction(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RequestCorrectionResponse { record: record_pb(&record) }))
    }

    async fn reject_correction(
        &self,
        request: Request<pb::RejectCorrectionRequest>,
    ) -> Result<Response<pb::RejectCorrectionResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ServiceRecordService/RejectCorrection", &request.record_id);
        let command = RejectCorrection::try_from(request);
        let record = self
            .app
            .committer
            .write(context, move |txn| hours::reject_correction(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RejectCorrectionResponse { record: record_pb(&record) }))
    }

    async fn amend_service_record(
        &self,
        request: Request<pb::AmendServiceRecordRequest>,
    ) -> Result<Response<pb::AmendServiceRecordResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ServiceRecordService/AmendServiceRecord", &request.record_id);
        let command = AmendServiceRecord::try_from(request);
        let app = self.app.clone();
        let record = self
            .app
            .committer
            .write(context, move |txn| hours::amend(txn, &app.config.hours, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::AmendServiceRecordResponse { record: record_pb(&record) }))
    }

    async fn revoke_service_record(
        &self,
        request: Request<pb::RevokeServiceRecordRequest>,
    ) -> Result<Response<pb::RevokeServiceRecordResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ServiceRecordService/RevokeServiceRecord", &request.record_id);
        let command = RevokeServiceRecord::try_from(request);
        let record = self
            .app
            .committer
            .write(context, move |txn| hours::revoke(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RevokeServiceRecordResponse { record: record_pb(&record) }))
    }

    async fn get_service_record(
        &self,
        request: Request<pb::GetServiceRecordRequest>,
    ) -> Result<Response<pb::GetServiceRecordResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let query = RecordTarget::try_from(request.into_inner()).map_err(status)?;
        let (record, versions) = hours::get(&*self.app.store, &caller, &query.record_id).map_err(status)?;
        Ok(Response::new(pb::GetServiceRecordResponse {
            record: record_pb(&record),
            versions: versions.iter().map(pb::ServiceRecordVersion::from).collect(),
        }))
    }

    async fn list_service_records(
        &self,
        request: Request<pb::ListServiceRecordsRequest>,
    ) -> Result<Response<pb::ListServiceRecordsResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let query = ListServiceRecords::try_from(&request).map_err(status)?;
        let page = page(&self.app, request.page_size, &request.page_token)?;
        let found = hours::list(&*self.app.store, &caller, &query, &page).map_err(status)?;
        Ok(Response::new(pb::ListServiceRecordsResponse {
            records: found.items.iter().map(pb::ServiceRecord::from).collect(),
            next_page_token: found.next_page_token,
        }))
    }
}
