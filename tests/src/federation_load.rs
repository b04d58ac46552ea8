//! Synthetic office work on the counties of a test cluster, and the ROL-1 comparison of roll-ups with the
//! counties' own statistics.

use chrono::{Datelike, Duration, NaiveDate, Utc};
use ecovol_proto::v1 as pb;
use ecovol_proto::v1::{
    project_service_client::ProjectServiceClient, recognition_service_client::RecognitionServiceClient,
    service_record_service_client::ServiceRecordServiceClient, stats_service_client::StatsServiceClient,
    team_service_client::TeamServiceClient, volunteer_service_client::VolunteerServiceClient,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::ClusterNode;
use crate::fixtures::identity_number;
use crate::scenario::timestamp;

/// A synthetic volunteer of `county`, the `index`-th of the whole test (distinct identity numbers and phones).
pub fn volunteer(county: &str, index: u32) -> pb::RegisterVolunteerRequest {
    let day = 1 + index % 28;
    let month = 1 + (index / 28) % 12;
    let year = 1970 + (index / 336) % 30;
    pb::RegisterVolunteerRequest {
        name: format!("测试志愿者{index}"),
        identity_number: identity_number(county, &format!("{year:04}{month:02}{day:02}"), 100 + index % 800),
        phone: format!("139{:08}", 10_000_000 + index),
        skills: vec!["垃圾分类".into()],
        political_status: pb::PoliticalStatus::Masses as i32,
        consent_to_processing: true,
        home_division_code: county.into(),
        ..Default::default()
    }
}

/// What `load_county` created, for later assertions.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    pub volunteers: Vec<(String, pb::RegisterVolunteerRequest)>,
    pub records: usize,
}

/// Registers volunteers, a team, projects of several kinds in the last few months, walk-in service hours
/// (confirmed, some amended or revoked), a training and ratings on `county`, chosen by `seed`.
pub async fn load_county(node: &ClusterNode, seed: u64, first_index: u32, volunteers: u32) -> anyhow::Result<Loaded> {
    let mut rng = StdRng::seed_from_u64(seed);
    let staff = node.staff();
    let mut loaded = Loaded::default();
    let mut registry = VolunteerServiceClient::new(staff.clone());
    for index in first_index..first_index + volunteers {
        let request = volunteer(&node.code, index);
        let answer = registry.register_volunteer(request.clone()).await?.into_inner();
        loaded.volunteers.push((answer.volunteer.unwrap_or_default().volunteer_number, request));
    }
    let team_request = pb::CreateTeamRequest {
        name: format!("护水队{}", node.code),
        kind: pb::TeamKind::SocialOrganisation as i32,
        ..Default::default()
    };
    let team_id = TeamServiceClient::new(staff.clone())
        .create_team(team_request)
        .await?
        .into_inner()
        .team
        .unwrap_or_default()
        .team_id;
    let mut projects = ProjectServiceClient::new(staff.clone());
    let mut hours = ServiceRecordServiceClient::new(staff.clone());
    let now = Utc::now();
    let window_start = now - Duration::days(75);
    let project_count = rng.random_range(2..=4);
    let mut day_used = std::collections::BTreeSet::new();
    for p in 0..project_count {
        let kind = rng.random_range(1..=5);
        let request = pb::CreateProjectRequest {
            title: format!("项目{p}"),
            activity_kind: kind,
            organising_team_id: team_id.clone(),
            start_at: Some(timestamp(window_start)),
            end_at: Some(timestamp(now - Duration::hours(1))),
            capacity: 50,
            ..Default::default()
        };
        let project_id = projects.create_project(request).await?.into_inner().project.unwrap_or_default().project_id;
        projects.publish_project(pb::PublishProjectRequest { project_id: project_id.clone() }).await?;
        for r in 0..rng.random_range(3..=8) {
            let who = rng.random_range(0..loaded.volunteers.len());
            let day = rng.random_range(1..74i64);
            if !day_used.insert((who, day)) {
                continue;
            }
            let start = window_start + Duration::days(day) + Duration::hours(1);
            let minutes = 30 * rng.random_range(1..=6i64);
            let request = pb::RecordServiceRequest {
                project_id: project_id.clone(),
                volunteer_number: loaded.volunteers[who].0.clone(),
                method: pb::RecordingMethod::CheckInOut as i32,
                start_time: Some(timestamp(start)),
                end_time: Some(timestamp(start + Duration::minutes(minutes))),
                content: "河道清理".into(),
                walk_in: true,
                idempotency_key: format!("{}-{seed}-{p}-{r}", node.code),
            };
            let record = hours.record_service(request).await?.into_inner().record.unwrap_or_default();
            if rng.random_bool(0.85) {
                hours
                    .confirm_service_record(pb::ConfirmServiceRecordRequest { record_id: record.record_id.clone() })
                    .await?;
                loaded.records += 1;
                if rng.random_bool(0.15) {
                    let request = pb::RevokeServiceRecordRequest {
                        record_id: record.record_id.clone(),
                        reason: "重复登记".into(),
                    };
                    hours.revoke_service_record(request).await?;
                } else if rng.random_bool(0.15) {
                    let request = pb::AmendServiceRecordRequest {
                        record_id: record.record_id.clone(),
                        start_time: Some(timestamp(start)),
                        end_time: Some(timestamp(start + Duration::minutes(minutes + 30))),
                        reason: "补记".into(),
                        ..Default::default()
                    };
                    hours.amend_service_record(request).await?;
                }
            }
        }
        if p == 0 {
            let mut recognition = RecognitionServiceClient::new(staff.clone());
            let rated = &loaded.volunteers[rng.random_range(0..loaded.volunteers.len())].0;
            let _ = recognition
                .rate_volunteer(pb::RateVolunteerRequest {
                    project_id: project_id.clone(),
                    volunteer_number: rated.clone(),
                    rating: rng.random_range(3..=5),
                    comment: String::new(),
                })
                .await;
        }
    }
    let mut recognition = RecognitionServiceClient::new(staff);
    let date = (now - Duration::days(rng.random_range(1..60))).with_timezone(&ecovol_node::wire::china()).date_naive();
    let training = recognition
        .create_training(pb::CreateTrainingRequest {
            title: "岗前培训".into(),
            tier: pb::TrainingTier::PreJobBasic as i32,
            audiences: vec![pb::TrainingAudience::Volunteers as i32],
            date: date.to_string(),
            organiser: "生态环境局".into(),
        })
        .await?
        .into_inner()
        .training
        .unwrap_or_default();
    let attendees: Vec<String> = loaded.volunteers.iter().take(3).map(|(number, _)| number.clone()).collect();
    recognition
        .add_training_attendance(pb::AddTrainingAttendanceRequest {
            training_id: training.training_id,
            volunteer_numbers: attendees,
        })
        .await?;
    Ok(loaded)
}

/// A range of whole China calendar months covering the loaded data: from three months ago to this month.
pub fn whole_months() -> (String, String) {
    let today = ecovol_node::wire::today_china();
    let back = today - Duration::days(100);
    let first = NaiveDate::from_ymd_opt(back.year(), back.month(), 1).unwrap_or(back);
    let next = if today.month() == 12 {
        NaiveDate::from_ymd_opt(today.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(today.year(), today.month() + 1, 1)
    };
    let last = next.and_then(|d| d.pred_opt()).unwrap_or(today);
    (first.to_string(), last.to_string())
}

/// A county's own statistics (the single-node definitions, computed from its records).
pub async fn own_stats(node: &ClusterNode) -> anyhow::Result<pb::GetStatsResponse> {
    let (start_date, end_date) = whole_months();
    Ok(StatsServiceClient::new(node.staff())
        .get_stats(pb::GetStatsRequest { start_date, end_date })
        .await?
        .into_inner())
}

/// `node`'s roll-up of `region` (empty: its whole territory).
pub async fn region_stats(node: &ClusterNode, region: &str) -> anyhow::Result<pb::GetRegionStatsResponse> {
    let (start_date, end_date) = whole_months();
    let request = pb::GetRegionStatsRequest { region: region.into(), start_date, end_date };
    Ok(StatsServiceClient::new(node.staff()).get_region_stats(request).await?.into_inner())
}

/// The figures a roll-up and the county's own statistics must agree on (ROL-1), in comparable form.
pub fn comparable_own(stats: &pb::GetStatsResponse) -> (Vec<pb::MonthStats>, Vec<pb::MonthKindStats>, Vec<u64>) {
    let totals = stats.totals.clone().unwrap_or_default();
    let months = stats
        .months
        .iter()
        .filter(|m| m.newly_registered_volunteers + m.active_volunteers + m.trainings + m.trainees > 0)
        .cloned()
        .collect();
    let kinds = stats
        .month_kinds
        .iter()
        .filter(|k| k.projects_published + k.sign_ups_accepted + k.confirmed_hours_x100 + k.active_volunteers > 0)
        .cloned()
        .collect();
    let figures = [
        totals.registered_volunteers,
        totals.newly_registered_volunteers,
        totals.teams,
        totals.projects_published,
        totals.sign_ups_accepted,
        totals.confirmed_hours_x100,
        totals.trainings,
        totals.trainees,
        totals.rating_sum,
        totals.rating_count,
    ];
    (months, kinds, figure_list(figures, &totals.star_distribution))
}

/// The totals both answers share, then the holders of 1★ … 5★.
fn figure_list(figures: [u64; 10], star_distribution: &[pb::StarCount]) -> Vec<u64> {
    let mut stars: Vec<u64> = vec![0; 5];
    for count in star_distribution {
        if let Some(slot) = (count.stars as usize).checked_sub(1).and_then(|index| stars.get_mut(index)) {
            *slot = count.volunteers;
        }
    }
    figures.into_iter().chain(stars).collect()
}

/// The same figures from a roll-up answer.
pub fn comparable_region(
    stats: &pb::GetRegionStatsResponse,
) -> (Vec<pb::MonthStats>, Vec<pb::MonthKindStats>, Vec<u64>) {
    let totals = stats.totals.clone().unwrap_or_default();
    let figures = [
        totals.registered_volunteers,
        totals.newly_registered_volunteers,
        totals.teams,
        totals.projects_published,
        totals.sign_ups_accepted,
        totals.confirmed_hours_x100,
        totals.trainings,
        totals.trainees,
        totals.rating_sum,
        totals.rating_count,
    ];
    (stats.months.clone(), stats.month_kinds.clone(), figure_list(figures, &totals.star_distribution))
}

/// A synthetic federation entry of `origin` at position `seq`: its figures for one cell of this month (confirmed
/// hours), at version `seq`, as a county's uplink would send it. For tests that speak the protocol by hand.
pub fn up_entry(origin: &str, seq: u64, hours_x100: i64) -> pb::UpEntry {
    let today = ecovol_node::wire::today_china();
    let month = chrono::Datelike::year(&today) as u32 * 100 + chrono::Datelike::month(&today);
    pb::UpEntry {
        origin: origin.into(),
        seq,
        kind: pb::ChangeKind::HoursConfirmed as i32,
        contributions: vec![pb::CellContribution {
            month,
            kind: 1,
            version: seq,
            figures: Some(pb::Figures { confirmed_hours_x100: hours_x100, ..Default::default() }),
        }],
        ..Default::default()
    }
}
