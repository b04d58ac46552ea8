//! `ecovol.v1.TeamService`.

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::team_service_server::TeamService;
use tonic::{Request, Response, Status};

use super::{caller, page, status};
use crate::app::App;
use crate::audit::AuditContext;
use crate::registry::team::{
    self, AddTeamMember, CreateTeam, GetTeam, ListTeamMembers, ListTeams, RemoveTeamMember, UpdateTeam,
};

/// The team service: teams, federations of teams and their members.
pub struct TeamApi {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl TeamService for TeamApi {
    async fn create_team(
        &self,
        request: Request<pb::CreateTeamRequest>,
    ) -> Result<Response<pb::CreateTeamResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let context = AuditContext::new(&caller, "TeamService/CreateTeam", "");
        let command = CreateTeam::try_from(request.into_inner());
        let app = self.app.clone();
        let created = self
            .app
            .committer
            .write(context, move |txn| team::create(txn, app.node_code(), &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateTeamResponse { team: Some(created.team.to_pb()), warnings: created.warnings }))
    }

    async fn get_team(&self, request: Request<pb::GetTeamRequest>) -> Result<Response<pb::GetTeamResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let query = GetTeam::try_from(request.into_inner()).map_err(status)?;
        let record = team::get(&*self.app.store, &caller, &query.team_id).map_err(status)?;
        Ok(Response::new(pb::GetTeamResponse { team: Some(record.to_pb()) }))
    }

    async fn list_teams(
        &self,
        request: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let query = ListTeams::try_from(&request).map_err(status)?;
        let page = page(&self.app, request.page_size, &request.page_token)?;
        let found = team::list(&*self.app.store, &caller, &query, &page).map_err(status)?;
        Ok(Response::new(pb::ListTeamsResponse {
            teams: found.items.iter().map(team::TeamRecord::to_pb).collect(),
            next_page_token: found.next_page_token,
        }))
    }

    async fn update_team(
        &self,
        request: Request<pb::UpdateTeamRequest>,
    ) -> Result<Response<pb::UpdateTeamResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "TeamService/UpdateTeam", &request.team_id);
        let command = UpdateTeam::try_from(request);
        let updated =
            self.app.committer.write(context, move |txn| team::update(txn, &caller, command?)).await.map_err(status)?;
        Ok(Response::new(pb::UpdateTeamResponse { team: Some(updated.team.to_pb()), warnings: updated.warnings }))
    }

    async fn add_team_member(
        &self,
        request: Request<pb::AddTeamMemberRequest>,
    ) -> Result<Response<pb::AddTeamMemberResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "TeamService/AddTeamMember", &request.team_id);
        let command = AddTeamMember::try_from(request);
        let member = self
            .app
            .committer
            .write(context, move |txn| team::add_member(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::AddTeamMemberResponse { member: Some(member.to_pb()) }))
    }

    async fn remove_team_member(
        &self,
        request: Request<pb::RemoveTeamMemberRequest>,
    ) -> Result<Response<pb::RemoveTeamMemberResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let context = AuditContext::new(&caller, "TeamService/RemoveTeamMember", &request.team_id);
        let command = RemoveTeamMember::try_from(request);
        let member = self
            .app
            .committer
            .write(context, move |txn| team::remove_member(txn, &caller, command?))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RemoveTeamMemberResponse { member: Some(member.to_pb()) }))
    }

    async fn list_team_members(
        &self,
        request: Request<pb::ListTeamMembersRequest>,
    ) -> Result<Response<pb::ListTeamMembersResponse>, Status> {
        let caller = caller(&self.app, &request)?;
        let request = request.into_inner();
        let query = ListTeamMembers::try_from(&request).map_err(status)?;
        let page = page(&self.app, request.page_size, &request.page_token)?;
        let found = team::members(&*self.app.store, &caller, &query, &page).map_err(status)?;
        Ok(Response::new(pb::ListTeamMembersResponse {
            members: found.items.iter().map(team::TeamMember::to_pb).collect(),
            next_page_token: found.next_page_token,
        }))
    }
}
