//! `ecovol.v1.TeamService` (being written).

use std::sync::Arc;

use ecovol_proto::v1 as pb;
use ecovol_proto::v1::team_service_server::TeamService;
use tonic::{Request, Response, Status};

use crate::app::App;

pub struct TeamApi {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl TeamService for TeamApi {
    async fn create_team(
        &self,
        _: Request<pb::CreateTeamRequest>,
    ) -> Result<Response<pb::CreateTeamResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn get_team(
        &self,
        _: Request<pb::GetTeamRequest>,
    ) -> Result<Response<pb::GetTeamResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn list_teams(
        &self,
        _: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn update_team(
        &self,
        _: Request<pb::UpdateTeamRequest>,
    ) -> Result<Response<pb::UpdateTeamResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn add_team_member(
        &self,
        _: Request<pb::AddTeamMemberRequest>,
    ) -> Result<Response<pb::AddTeamMemberResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn remove_team_member(
        &self,
        _: Request<pb::RemoveTeamMemberRequest>,
    ) -> Result<Response<pb::RemoveTeamMemberResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn list_team_members(
        &self,
        _: Request<pb::ListTeamMembersRequest>,
    ) -> Result<Response<pb::ListTeamMembersResponse>, Status> {
        Err(Status::unimplemented(""))
    }
}
