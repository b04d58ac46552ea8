//! `ecovol.v1.RecognitionService`: evaluation, training and the volunteer's recognition profile.

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::recognition_service_server::RecognitionService;
use tonic::{Request, Response, Status};

use super::{caller, page, status};
use crate::app::App;
use crate::audit::AuditContext;
use crate::evaluation::{self, ProfileQuery, RateVolunteer, RecordOutcome};
use crate::training::{self, Attendance, CreateTraining};

/// The recognition service: ratings, project outcomes, trainings and attendance, volunteer profiles.
pub struct RecognitionApi {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl RecognitionService for RecognitionApi {
    async fn rate_volunteer(
        &self,
        request: Request<pb::RateVolunteerRequest>,
    ) -> Result<Response<pb::RateVolunteerResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "RecognitionService/RateVolunteer", &request.project_id);
        let command = RateVolunteer::try_from(request);
        let evaluation = self
            .app
            .committer
            .write(context, move |txn| evaluation::rate(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RateVolunteerResponse { evaluation: Some(pb::Evaluation::from(&evaluation)) }))
    }

    async fn record_project_outcome(
        &self,
        request: Request<pb::RecordProjectOutcomeRequest>,
    ) -> Result<Response<pb::RecordProjectOutcomeResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "RecognitionService/RecordProjectOutcome", &request.project_id);
        let command = RecordOutcome::try_from(request);
        let outcome = self
            .app
            .committer
            .write(context, move |txn| evaluation::record_outcome(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RecordProjectOutcomeResponse { outcome: Some(pb::ProjectOutcome::from(&outcome)) }))
    }

    async fn get_project_outcome(
        &self,
        request: Request<pb::GetProjectOutcomeRequest>,
    ) -> Result<Response<pb::GetProjectOutcomeResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let project_id = evaluation::parse_project_id(&request.into_inner().project_id).map_err(status)?;
        let (outcome, evaluations) = evaluation::get_outcome(&*self.app.store, &caller, &project_id).map_err(status)?;
        Ok(Response::new(pb::GetProjectOutcomeResponse {
            outcome: outcome.as_ref().map(pb::ProjectOutcome::from),
            evaluations: evaluations.iter().map(pb::Evaluation::from).collect(),
        }))
    }

    async fn create_training(
        &self,
        request: Request<pb::CreateTrainingRequest>,
    ) -> Result<Response<pb::CreateTrainingResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "RecognitionService/CreateTraining", &request.title);
        let command = CreateTraining::try_from(request);
        let app = self.app.clone();
        let training = self
            .app
            .committer
            .write(context, move |txn| training::create(txn, app.node_code(), &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateTrainingResponse { training: Some(pb::Training::from(&training)) }))
    }

    async fn add_training_attendance(
        &self,
        request: Request<pb::AddTrainingAttendanceRequest>,
    ) -> Result<Response<pb::AddTrainingAttendanceResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "RecognitionService/AddTrainingAttendance", &request.training_id);
        let command = Attendance::try_from(request);
        let training = self
            .app
            .committer
            .write(context, move |txn| training::add_attendance(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::AddTrainingAttendanceResponse { training: Some(pb::Training::from(&training)) }))
    }

    async fn remove_training_attendance(
        &self,
        request: Request<pb::RemoveTrainingAttendanceRequest>,
    ) -> Result<Response<pb::RemoveTrainingAttendanceResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "RecognitionService/RemoveTrainingAttendance", &request.training_id);
        let command = Attendance::try_from(request);
        let training = self
            .app
            .committer
            .write(context, move |txn| training::remove_attendance(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RemoveTrainingAttendanceResponse { training: Some(pb::Training::from(&training)) }))
    }

    async fn get_training(
        &self,
        request: Request<pb::GetTrainingRequest>,
    ) -> Result<Response<pb::GetTrainingResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let training_id = training::parse_training_id(&request.into_inner().training_id).map_err(status)?;
        let (training, attendees) = training::get(&*self.app.store, &caller, &training_id).map_err(status)?;
        Ok(Response::new(pb::GetTrainingResponse {
            training: Some(pb::Training::from(&training)),
            attendee_volunteer_numbers: attendees,
        }))
    }

    async fn list_trainings(
        &self,
        request: Request<pb::ListTrainingsRequest>,
    ) -> Result<Response<pb::ListTrainingsResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let page = page(&self.app, request.page_size, &request.page_token)?;
        let found = training::list(&*self.app.store, &caller, &page).map_err(status)?;
        Ok(Response::new(pb::ListTrainingsResponse {
            trainings: found.items.iter().map(pb::Training::from).collect(),
            next_page_token: found.next_page_token,
        }))
    }

    async fn get_volunteer_profile(
        &self,
        request: Request<pb::GetVolunteerProfileRequest>,
    ) -> Result<Response<pb::GetVolunteerProfileResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let query = ProfileQuery::try_from(request.get_ref()).map_err(status)?;
        let profile = evaluation::profile(&*self.app.store, &caller, &query).map_err(status)?;
        Ok(Response::new(pb::GetVolunteerProfileResponse::from(&profile)))
    }

    async fn get_federation_minutes(
        &self,
        request: Request<pb::GetFederationMinutesRequest>,
    ) -> Result<Response<pb::GetFederationMinutesResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let number = request.into_inner().volunteer_number;
        let answer =
            crate::federation::link::volunteer_federation_minutes(&self.app, &caller, &number).await.map_err(status)?;
        Ok(Response::new(answer))
    }
}
