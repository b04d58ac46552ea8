//! `ecovol.v1.ExchangeService`: the exchange with the national volunteer-service platform (see `crate::exchange`).

use std::ops::ControlFlow;
use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::exchange_service_server::ExchangeService;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{caller, status};
use crate::app::App;
use crate::audit::AuditContext;
use crate::error::DomainError;
use crate::exchange::{self, EXPORT_BATCH_ITEMS_DEFAULT, ExportWindow, SetConsent};
use crate::wire::{from_timestamp, timestamp};

/// Export messages buffered between the store scan and the network.
const EXPORT_BATCHES_IN_FLIGHT: usize = 4;

/// The exchange service: consent to sharing, export, recognition import.
pub struct ExchangeApi {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl ExchangeService for ExchangeApi {
    type ExportExchangeStream = ReceiverStream<Result<pb::ExportExchangeResponse, Status>>;

    async fn set_exchange_consent(
        &self,
        request: Request<pb::SetExchangeConsentRequest>,
    ) -> Result<Response<pb::SetExchangeConsentResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ExchangeService/SetExchangeConsent", &request.volunteer_number);
        let command = SetConsent::try_from(request);
        let (consent, changed) = self
            .app
            .committer
            .write(context, move |txn| exchange::set_consent(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SetExchangeConsentResponse {
            volunteer_number: consent.volunteer_number,
            consent: consent.consent,
            changed,
            changed_at: Some(timestamp(consent.changed_at)),
        }))
    }

    async fn export_exchange(
        &self,
        request: Request<pb::ExportExchangeRequest>,
    ) -> Result<Response<Self::ExportExchangeStream>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let since = match request.since.as_ref() {
            None => None,
            Some(since) => Some(
                from_timestamp(since)
                    .ok_or_else(|| status(DomainError::invalid("since", "is not a valid timestamp")))?,
            ),
        };
        let batch_items_max =
            if request.batch_items_max == 0 { EXPORT_BATCH_ITEMS_DEFAULT } else { request.batch_items_max as usize };
        // The audit entry is durable before anything is read, and its time is the watermark (see `exchange`).
        let context = AuditContext::new(&caller, "ExchangeService/ExportExchange", "national platform");
        let upto = self
            .app
            .committer
            .write(context, move |txn| exchange::begin_export(txn, &caller, since))
            .await
            .map_err(status)?;
        let window = ExportWindow { since, upto };
        let (sender, receiver) = tokio::sync::mpsc::channel(EXPORT_BATCHES_IN_FLIGHT);
        let app = self.app.clone();
        tokio::task::spawn_blocking(move || {
            let mut emit = |batch| {
                if sender.blocking_send(Ok(batch)).is_err() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            };
            match exchange::export(&*app.store, &app.keys, app.node_code(), window, batch_items_max, &mut emit) {
                Ok(counts) => tracing::info!(%counts, "exchange export"),
                Err(error) => {
                    let _ = sender.blocking_send(Err(status(error)));
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn import_recognised_records(
        &self,
        request: Request<pb::ImportRecognisedRecordsRequest>,
    ) -> Result<Response<pb::ImportRecognisedRecordsResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ExchangeService/ImportRecognisedRecords", &request.source);
        let app = self.app.clone();
        let response = self
            .app
            .committer
            .write(context, move |txn| exchange::import_recognised(txn, &app.keys, &caller, request))
            .await
            .map_err(status)?;
        Ok(Response::new(response))
    }

    async fn list_recognised_records(
        &self,
        request: Request<pb::ListRecognisedRecordsRequest>,
    ) -> Result<Response<pb::ListRecognisedRecordsResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let number = crate::registry::volunteer::parse_volunteer_number(&request.into_inner().volunteer_number)
            .map_err(status)?;
        let records = exchange::list_recognised(&*self.app.store, &caller, &number).map_err(status)?;
        Ok(Response::new(pb::ListRecognisedRecordsResponse {
            hours_x100_total: records.iter().map(|record| u64::from(record.hours_x100)).sum(),
            records: records.iter().map(pb::RecognisedRecord::from).collect(),
        }))
    }
}
