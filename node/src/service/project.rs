//! `ecovol.v1.ProjectService`.

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::project_service_server::ProjectService;
use tonic::{Request, Response, Status};

use super::{caller, page, status};
use crate::app::App;
use crate::audit::AuditContext;
use crate::project::{
    self, CancelProject, CreateProject, MarkProject, ProjectRecord, ProjectRef, SearchProjects, SetProjectCapacity,
    UpdateProject,
};

/// The project service: projects and the project library.
pub struct ProjectApi {
    pub app: Arc<App>,
}

fn answer(record: &ProjectRecord) -> Option<pb::Project> {
    Some(record.to_pb())
}

#[tonic::async_trait]
impl ProjectService for ProjectApi {
    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::CreateProjectResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let context = AuditContext::new(&caller, "ProjectService/CreateProject", "");
        let command = CreateProject::try_from(request.into_inner());
        let app = self.app.clone();
        let created = self
            .app
            .committer
            .write(context, move |txn| project::create(txn, app.node_code(), &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateProjectResponse { project: answer(&created) }))
    }

    async fn update_project(
        &self,
        request: Request<pb::UpdateProjectRequest>,
    ) -> Result<Response<pb::UpdateProjectResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ProjectService/UpdateProject", &request.project_id);
        let command = UpdateProject::try_from(request);
        let updated = self
            .app
            .committer
            .write(context, move |txn| project::update(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::UpdateProjectResponse { project: answer(&updated) }))
    }

    async fn publish_project(
        &self,
        request: Request<pb::PublishProjectRequest>,
    ) -> Result<Response<pb::PublishProjectResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ProjectService/PublishProject", &request.project_id);
        let command = ProjectRef::try_from(request);
        let published = self
            .app
            .committer
            .write(context, move |txn| project::publish(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::PublishProjectResponse { project: answer(&published) }))
    }

    async fn close_project(
        &self,
        request: Request<pb::CloseProjectRequest>,
    ) -> Result<Response<pb::CloseProjectResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ProjectService/CloseProject", &request.project_id);
        let command = ProjectRef::try_from(request);
        let closed = self
            .app
            .committer
            .write(context, move |txn| project::close(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CloseProjectResponse { project: answer(&closed) }))
    }

    async fn cancel_project(
        &self,
        request: Request<pb::CancelProjectRequest>,
    ) -> Result<Response<pb::CancelProjectResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ProjectService/CancelProject", &request.project_id);
        let command = CancelProject::try_from(request);
        let cancelled = self
            .app
            .committer
            .write(context, move |txn| project::cancel(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CancelProjectResponse { project: answer(&cancelled) }))
    }

    async fn get_project(
        &self,
        request: Request<pb::GetProjectRequest>,
    ) -> Result<Response<pb::GetProjectResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let query = ProjectRef::try_from(request.into_inner()).map_err(status)?;
        let record = project::get(&*self.app.store, &caller, &query.project_id).map_err(status)?;
        Ok(Response::new(pb::GetProjectResponse { project: answer(&record) }))
    }

    async fn search_projects(
        &self,
        request: Request<pb::SearchProjectsRequest>,
    ) -> Result<Response<pb::SearchProjectsResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let query = SearchProjects::try_from(&request).map_err(status)?;
        let page = page(&self.app, request.page_size, &request.page_token)?;
        let found = project::search(&*self.app.store, &caller, &query, &page).map_err(status)?;
        Ok(Response::new(pb::SearchProjectsResponse {
            projects: found.items.iter().map(ProjectRecord::to_pb).collect(),
            next_page_token: found.next_page_token,
        }))
    }

    async fn mark_project(
        &self,
        request: Request<pb::MarkProjectRequest>,
    ) -> Result<Response<pb::MarkProjectResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ProjectService/MarkProject", &request.project_id);
        let command = MarkProject::try_from(request);
        let marked = self
            .app
            .committer
            .write(context, move |txn| project::mark(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::MarkProjectResponse { project: answer(&marked) }))
    }

    async fn set_project_capacity(
        &self,
        request: Request<pb::SetProjectCapacityRequest>,
    ) -> Result<Response<pb::SetProjectCapacityResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "ProjectService/SetProjectCapacity", &request.project_id);
        let command = SetProjectCapacity::try_from(request);
        let changed = self
            .app
            .committer
            .write(context, move |txn| project::set_capacity(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SetProjectCapacityResponse {
            project: answer(&changed.project),
            promoted_volunteer_numbers: changed.promoted,
        }))
    }
}
