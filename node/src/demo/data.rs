//! The demo's synthetic data, entered through each county's office API as a county office would enter it: sites,
//! teams, volunteers and memberships; past projects of every activity kind with the hours served on them
//! (recorded, mostly confirmed, some rated) over the last five months; trainings; upcoming projects with their
//! sign-ups and waitlists. The cities and the province enter nothing: everything they know arrives through the
//! federation.
//!
//! A few people are registered in two counties of different cities and serve in both, so mutual recognition of
//! hours shows: each county learns, through the province, the hours its volunteer served in the other.
//!
//! All people are synthetic. Identity numbers carry a valid GB 11643 check character and the registering county's
//! code, so every county's numbers are distinct; the mobile people carry their home county's code in both.

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use ecovol_proto::v1 as pb;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::cluster::{DemoNode, LocalFederation, Place};
use crate::config::Level;
use crate::validate::identity_check_char;

/// What to load.
#[derive(Debug, Clone, Copy)]
pub struct DataPlan {
    /// Synthetic volunteers registered in each county (besides the mobile people).
    pub volunteers_per_county: u32,
    pub seed: u64,
    /// Today in China: the past months and upcoming projects are placed around it.
    pub today: NaiveDate,
}

/// What was loaded; kept in `<dir>/demo.json`, so a later run shows the same range and the same people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loaded {
    pub seed: u64,
    pub volunteers_per_county: u32,
    /// The months holding the data: the first day of the earliest, the last day of the latest.
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub loaded_at: DateTime<Utc>,
    /// People registered in two counties.
    pub mobile: Vec<MobileVolunteer>,
}

/// One person registered in two counties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MobileVolunteer {
    pub name: String,
    pub registrations: Vec<Registration>,
}

/// Where a mobile person is registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The county's division code.
    pub code: String,
    pub volunteer_number: String,
}

/// Counties whose offices both register the same people: one district of 南京市 with one of 无锡市.
pub const MOBILE_PAIRS: [(&str, &str); 2] = [("320102", "320205"), ("320104", "320206")];
/// Mobile people per pair.
const MOBILE_PER_PAIR: u32 = 2;
/// Months back in which past projects took place.
const PAST_MONTHS: u32 = 5;
/// Upcoming projects start this many days from today.
const UPCOMING_DAYS: [i64; 4] = [3, 10, 17, 24];

impl DataPlan {
    /// The first day of the earliest month and the last day of the latest month the data touches.
    pub fn range(&self) -> (NaiveDate, NaiveDate) {
        let start = month_start(self.today).checked_sub_months(Months::new(PAST_MONTHS)).unwrap_or(self.today);
        let last_upcoming = self.today + Duration::days(*UPCOMING_DAYS.last().unwrap_or(&0));
        (start, month_end(last_upcoming))
    }
}

fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

fn month_end(day: NaiveDate) -> NaiveDate {
    month_start(day).checked_add_months(Months::new(1)).and_then(|next| next.pred_opt()).unwrap_or(day)
}

/// `time` on `day`, China time, as a wire timestamp.
fn at(day: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    let time = NaiveTime::from_hms_opt(hour, minute, 0).unwrap_or(NaiveTime::MIN);
    crate::wire::china()
        .from_local_datetime(&day.and_time(time))
        .single()
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or_default()
}

fn timestamp(time: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(crate::wire::timestamp(time))
}

/// Loads the demo data into every county at once; returns what was loaded.
pub async fn load(federation: &LocalFederation, plan: DataPlan) -> anyhow::Result<Loaded> {
    let counties: Vec<DemoNode> = federation.at_level(Level::County).cloned().collect();
    let mut tasks = Vec::new();
    for (index, county) in counties.into_iter().enumerate() {
        let mobile = mobile_people(county.place.code, plan.seed);
        tasks.push(tokio::spawn(async move {
            let code = county.place.code;
            let registered = load_county(&county, index as u32, plan, mobile)
                .await
                .with_context(|| format!("loading the demo data of {code} {}", county.place.short_name))?;
            anyhow::Ok((code, registered))
        }));
    }
    let mut mobile: Vec<MobileVolunteer> = Vec::new();
    for task in tasks {
        let (code, registered) = task.await??;
        for (name, volunteer_number) in registered {
            let registration = Registration { code: code.to_string(), volunteer_number };
            match mobile.iter_mut().find(|person| person.name == name) {
                Some(person) => person.registrations.push(registration),
                None => mobile.push(MobileVolunteer { name, registrations: vec![registration] }),
            }
        }
    }
    let (start_date, end_date) = plan.range();
    Ok(Loaded {
        seed: plan.seed,
        volunteers_per_county: plan.volunteers_per_county,
        start_date,
        end_date,
        loaded_at: Utc::now(),
        mobile,
    })
}

/// The mobile people a county registers (those of the pairs it belongs to); the same requests in both counties.
fn mobile_people(code: &str, seed: u64) -> Vec<pb::RegisterVolunteerRequest> {
    const NAMES: [&str; 4] = ["周雨桐", "陈浩然", "林晓燕", "吴子轩"];
    let mut people = Vec::new();
    for (pair_index, (home, other)) in MOBILE_PAIRS.iter().enumerate() {
        if code != *home && code != *other {
            continue;
        }
        for k in 0..MOBILE_PER_PAIR {
            let index = pair_index as u32 * MOBILE_PER_PAIR + k;
            let mut rng = StdRng::seed_from_u64(seed ^ 0x6d6f_6269_6c65 ^ u64::from(index));
            let mut request = synthetic_volunteer(home, 900_000 + index, 9, &mut rng);
            request.name = NAMES[index as usize % NAMES.len()].to_string();
            people.push(request);
        }
    }
    people
}

struct Activity {
    kind: pb::ActivityKind,
    titles: [&'static str; 2],
    content: &'static str,
}

static ACTIVITIES: [Activity; 5] = [
    Activity {
        kind: pb::ActivityKind::TheoryPromotion,
        titles: ["习近平生态文明思想进社区宣讲", "“美丽中国，我是行动者”主题宣讲"],
        content: "社区宣讲、答疑与资料发放",
    },
    Activity {
        kind: pb::ActivityKind::PublicityEducation,
        titles: ["生态环境科普开放日", "六五环境日主题宣传"],
        content: "科普讲解、展板导览与互动问答",
    },
    Activity {
        kind: pb::ActivityKind::SocialSupervision,
        titles: ["河湖巡护志愿行动", "污染问题随手拍巡查"],
        content: "沿河巡查、问题线索记录与上报",
    },
    Activity {
        kind: pb::ActivityKind::GreenLowCarbon,
        titles: ["垃圾分类桶边督导", "植树护绿志愿活动"],
        content: "桶边督导、分类指导与清洁整理",
    },
    Activity {
        kind: pb::ActivityKind::InternationalExchange,
        titles: ["中外青年生态环保交流会", "国际生物多样性日外籍友人体验活动"],
        content: "交流接待、翻译与现场引导",
    },
];

const SURNAMES: &[&str] =
    &["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林"];
const GIVEN_MALE: &[&str] = &["伟", "强", "磊", "洋", "勇", "军", "杰", "涛", "明", "超", "浩然", "子轩"];
const GIVEN_FEMALE: &[&str] = &["芳", "娜", "敏", "静", "丽", "艳", "娟", "秀英", "雨桐", "欣怡", "晓燕", "婷"];
const SKILLS: &[&str] = &["垃圾分类", "水质监测", "鸟类观察", "环保宣讲", "急救", "摄影", "植树", "外语"];

fn teams(short: &str) -> [(String, pb::TeamKind); 6] {
    [
        (format!("{short}生态环境志愿服务总队"), pb::TeamKind::PeoplesOrganisation),
        (format!("{short}高校绿色社团联盟"), pb::TeamKind::UniversityClub),
        (format!("{short}护河志愿队"), pb::TeamKind::SocialOrganisation),
        (format!("{short}低碳生活宣讲团"), pb::TeamKind::Other),
        (format!("{short}生态环境局青年志愿者"), pb::TeamKind::Agency),
        (format!("{short}绿色企业志愿者联盟"), pb::TeamKind::Enterprise),
    ]
}

fn sites(short: &str) -> [(String, pb::SiteKind); 5] {
    [
        (format!("{short}新时代文明实践中心"), pb::SiteKind::CivilizationPracticeCentre),
        (format!("{short}生态环境科普馆"), pb::SiteKind::EcoEducationVenue),
        (format!("{short}污水处理厂公众开放点"), pb::SiteKind::OpenFacility),
        (format!("{short}生态研学基地"), pb::SiteKind::StudyBase),
        (format!("{short}街道志愿服务站"), pb::SiteKind::VolunteerStation),
    ]
}

/// Runs `calls` at once (concurrent writers share group commits) and returns their results in order.
async fn concurrently<T, F>(calls: Vec<F>) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let handles: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await??);
    }
    Ok(results)
}

/// Loads one county; returns the mobile people registered there as (name, volunteer number).
async fn load_county(
    county: &DemoNode,
    county_index: u32,
    plan: DataPlan,
    mobile: Vec<pb::RegisterVolunteerRequest>,
) -> anyhow::Result<Vec<(String, String)>> {
    let place = county.place;
    let city = Place::name_of(place.parent.unwrap_or_default());
    let seed = plan.seed ^ (u64::from(county_index) << 40);
    let mut rng = StdRng::seed_from_u64(seed);

    let (latitude, longitude) = if city == "南京市" { (32.05, 118.79) } else { (31.57, 120.30) };
    let site_calls = sites(place.short_name).into_iter().enumerate().map(|(index, (name, kind))| {
        let mut client = pb::site_service_client::SiteServiceClient::new(county.staff()?);
        let request = pb::CreateSiteRequest {
            name,
            kind: kind as i32,
            address: format!("江苏省{city}{}第{}号", place.short_name, 10 + index * 7),
            location: Some(pb::GeoPoint {
                latitude: latitude + 0.01 * f64::from(county_index) + 0.002 * index as f64,
                longitude: longitude + 0.01 * f64::from(county_index) - 0.003 * index as f64,
            }),
            opening_notes: "周二至周日 9:00–17:00".into(),
        };
        anyhow::Ok(async move {
            let site = client.create_site(request).await?.into_inner().site.context("no site in reply")?;
            anyhow::Ok(site.site_id)
        })
    });
    let site_ids = concurrently(site_calls.collect::<anyhow::Result<Vec<_>>>()?);
    let team_calls = teams(place.short_name).into_iter().map(|(name, kind)| {
        let mut client = pb::team_service_client::TeamServiceClient::new(county.staff()?);
        let request = pb::CreateTeamRequest { name, kind: kind as i32, ..Default::default() };
        anyhow::Ok(async move {
            let team = client.create_team(request).await?.into_inner().team.context("no team in reply")?;
            anyhow::Ok(team.team_id)
        })
    });
    let team_ids = concurrently(team_calls.collect::<anyhow::Result<Vec<_>>>()?);
    let (site_ids, team_ids) = tokio::try_join!(site_ids, team_ids)?;

    let mobile_calls = mobile.into_iter().map(|request| {
        let mut client = pb::volunteer_service_client::VolunteerServiceClient::new(county.staff()?);
        anyhow::Ok(async move {
            let name = request.name.clone();
            let volunteer = client.register_volunteer(request).await?.into_inner().volunteer;
            anyhow::Ok((name, volunteer.context("no volunteer in reply")?.volunteer_number))
        })
    });
    let mobile_numbers = concurrently(mobile_calls.collect::<anyhow::Result<Vec<_>>>()?);
    let numbers = register_volunteers(county, place.code, plan.volunteers_per_county, seed, &team_ids);
    let (mobile_numbers, numbers) = tokio::try_join!(mobile_numbers, numbers)?;
    let mobile_only: Vec<String> = mobile_numbers.iter().map(|(_, number)| number.clone()).collect();
    // The regular volunteers do the activities (with --volunteers 0, the mobile people do them all).
    let numbers = Arc::new(if numbers.is_empty() { mobile_only.clone() } else { numbers });
    let mobile_only = Arc::new(mobile_only);
    let site_ids = Arc::new(site_ids);
    let team_ids = Arc::new(team_ids);

    let mut tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>> = Vec::new();
    // Past projects: two a month over the last months, one more early this month; each kind in turn.
    let mut past_days = Vec::new();
    for months_back in (1..=PAST_MONTHS).rev() {
        let first = month_start(plan.today).checked_sub_months(Months::new(months_back)).unwrap_or(plan.today);
        for slot in 0..2u32 {
            past_days.push(first + Duration::days(i64::from(4 + slot * 9 + county_index * 2)));
        }
    }
    if plan.today.day() >= 5 {
        past_days.push(month_start(plan.today) + Duration::days(2));
    }
    for (index, day) in past_days.into_iter().enumerate() {
        let activity = &ACTIVITIES[(index + county_index as usize) % ACTIVITIES.len()];
        let title = format!("{}{}", place.short_name, activity.titles[(index / ACTIVITIES.len()) % 2]);
        let project = pb::CreateProjectRequest {
            title,
            description: format!("{}组织的{}活动。", place.office_name, activity.content),
            activity_kind: activity.kind as i32,
            organising_team_id: team_ids[index % team_ids.len()].clone(),
            site_id: site_ids[index % site_ids.len()].clone(),
            start_at: timestamp(at(day, 9, 0)),
            end_at: timestamp(at(day, 12, 0)),
            capacity: (plan.volunteers_per_county / 3).max(20),
            contact: format!("{}志愿服务科", place.short_name),
            ..Default::default()
        };
        let served = (plan.volunteers_per_county / 6).clamp(5, 200) as usize;
        let with_mobile = index < 2;
        let county = county.clone();
        let (numbers, mobile_only) = (numbers.clone(), mobile_only.clone());
        let project_seed = rng.random::<u64>();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(project_seed);
            let mut serving: Vec<String> = sample(&mut rng, numbers.len(), served.min(numbers.len()))
                .into_iter()
                .map(|i| numbers[i].clone())
                .collect();
            if with_mobile {
                for number in mobile_only.iter() {
                    if !serving.contains(number) {
                        serving.push(number.clone());
                    }
                }
            }
            past_project(&county, project, activity.content, day, serving, &mobile_only, &mut rng).await
        }));
    }
    // Upcoming projects, open for sign-up: more sign-ups than seats, so some wait on the list.
    for (index, days) in UPCOMING_DAYS.iter().enumerate() {
        let day = plan.today + Duration::days(*days);
        let activity = &ACTIVITIES[(index + 2 + county_index as usize) % ACTIVITIES.len()];
        let capacity = (plan.volunteers_per_county / 8).max(4);
        let project = pb::CreateProjectRequest {
            title: format!("{}{}（报名中）", place.short_name, activity.titles[index % 2]),
            description: format!("{}组织的{}活动，欢迎报名。", place.office_name, activity.content),
            activity_kind: activity.kind as i32,
            organising_team_id: team_ids[(index + 1) % team_ids.len()].clone(),
            site_id: site_ids[(index + 2) % site_ids.len()].clone(),
            start_at: timestamp(at(day, 14, 0)),
            end_at: timestamp(at(day, 17, 0)),
            capacity,
            contact: format!("{}志愿服务科", place.short_name),
            ..Default::default()
        };
        let wanted = ((capacity + capacity / 3) as usize).min(numbers.len());
        let county = county.clone();
        let numbers = numbers.clone();
        let project_seed = rng.random::<u64>();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(project_seed);
            let applicants: Vec<String> =
                sample(&mut rng, numbers.len(), wanted).into_iter().map(|i| numbers[i].clone()).collect();
            upcoming_project(&county, project, applicants).await
        }));
    }
    // Trainings held in past months, each attended by about a quarter of the volunteers.
    for (index, months_back) in [4u32, 2, 1].into_iter().enumerate() {
        let first = month_start(plan.today).checked_sub_months(Months::new(months_back)).unwrap_or(plan.today);
        let tiers =
            [pb::TrainingTier::PreJobBasic, pb::TrainingTier::ProjectSkills, pb::TrainingTier::BackboneManagement];
        let titles = ["志愿者岗前基础培训", "河湖巡护与水质快检技能培训", "志愿服务骨干管理培训"];
        let request = pb::CreateTrainingRequest {
            title: format!("{}{}", place.short_name, titles[index]),
            tier: tiers[index] as i32,
            audiences: vec![pb::TrainingAudience::Volunteers as i32],
            date: (first + Duration::days(24)).to_string(),
            organiser: place.office_name.to_string(),
        };
        let attendance = (numbers.len() / 4).max(1);
        let county = county.clone();
        let numbers = numbers.clone();
        let training_seed = rng.random::<u64>();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(training_seed);
            let mut recognition = pb::recognition_service_client::RecognitionServiceClient::new(county.staff()?);
            let training = recognition.create_training(request).await?.into_inner().training.context("no training")?;
            let attendees: Vec<String> =
                sample(&mut rng, numbers.len(), attendance).into_iter().map(|i| numbers[i].clone()).collect();
            recognition
                .add_training_attendance(pb::AddTrainingAttendanceRequest {
                    training_id: training.training_id,
                    volunteer_numbers: attendees,
                })
                .await?;
            Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(mobile_numbers)
}

/// Registers `count` synthetic volunteers in parallel (writers share group commits); about 70% join a team.
/// Returns their numbers.
async fn register_volunteers(
    county: &DemoNode,
    code: &'static str,
    count: u32,
    seed: u64,
    team_ids: &[String],
) -> anyhow::Result<Vec<String>> {
    let team_ids = Arc::new(team_ids.to_vec());
    let workers = 32u32;
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let county = county.clone();
        let team_ids = team_ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ u64::from(worker));
            let mut volunteers = pb::volunteer_service_client::VolunteerServiceClient::new(county.staff()?);
            let mut teams = pb::team_service_client::TeamServiceClient::new(county.staff()?);
            let mut numbers = Vec::new();
            for index in (worker..count).step_by(workers as usize) {
                let request = synthetic_volunteer(code, index, 0, &mut rng);
                let number = volunteers
                    .register_volunteer(request)
                    .await?
                    .into_inner()
                    .volunteer
                    .context("no volunteer in reply")?
                    .volunteer_number;
                if rng.random_bool(0.7) {
                    let team = team_ids[rng.random_range(0..team_ids.len())].clone();
                    let role = if rng.random_bool(0.1) { pb::MemberRole::Backbone } else { pb::MemberRole::Member };
                    teams
                        .add_team_member(pb::AddTeamMemberRequest {
                            team_id: team,
                            volunteer_number: number.clone(),
                            role: role as i32,
                        })
                        .await?;
                }
                numbers.push((index, number));
            }
            anyhow::Ok(numbers)
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.extend(task.await??);
    }
    numbers.sort();
    Ok(numbers.into_iter().map(|(_, number)| number).collect())
}

/// A past project: created, published, the hours of `serving` recorded as walk-ins (the project started before
/// anyone could sign up in the demo), most of them confirmed, some rated, then closed.
async fn past_project(
    county: &DemoNode,
    request: pb::CreateProjectRequest,
    content: &str,
    day: NaiveDate,
    serving: Vec<String>,
    always_confirmed: &[String],
    rng: &mut StdRng,
) -> anyhow::Result<()> {
    let mut projects = pb::project_service_client::ProjectServiceClient::new(county.staff()?);
    let project = projects.create_project(request).await?.into_inner().project.context("no project in reply")?;
    let project_id = project.project_id;
    projects.publish_project(pb::PublishProjectRequest { project_id: project_id.clone() }).await?;
    let rows: Vec<pb::ServiceRow> = serving
        .iter()
        .map(|number| {
            let start_minute = 15 * rng.random_range(0..=2u32);
            let minutes = 15 * rng.random_range(4..=10u32);
            let start = at(day, 9, start_minute);
            pb::ServiceRow {
                volunteer_number: number.clone(),
                method: pb::RecordingMethod::CheckInOut as i32,
                start_time: timestamp(start),
                end_time: timestamp(start + Duration::minutes(i64::from(minutes))),
                content: content.to_string(),
                walk_in: true,
                idempotency_key: format!("demo-{project_id}-{number}"),
            }
        })
        .collect();
    let hours = pb::service_record_service_client::ServiceRecordServiceClient::new(county.staff()?);
    let records = hours
        .clone()
        .record_service_bulk(pb::RecordServiceBulkRequest { project_id: project_id.clone(), rows })
        .await?
        .into_inner()
        .records;
    // A few records stay unconfirmed, as some always do at the end of a month.
    let confirmed: Vec<(String, String)> = records
        .into_iter()
        .filter(|record| always_confirmed.contains(&record.volunteer_number) || !rng.random_bool(0.1))
        .map(|record| (record.record_id, record.volunteer_number))
        .collect();
    let confirmations = confirmed.iter().map(|(record_id, _)| {
        let mut hours = hours.clone();
        let record_id = record_id.clone();
        async move {
            hours.confirm_service_record(pb::ConfirmServiceRecordRequest { record_id }).await?;
            anyhow::Ok(())
        }
    });
    concurrently(confirmations.collect()).await?;
    let recognition = pb::recognition_service_client::RecognitionServiceClient::new(county.staff()?);
    // About a third of the confirmed services are rated, mostly well.
    let mut rated = Vec::new();
    for (_, number) in &confirmed {
        if rng.random_bool(0.3) {
            rated.push((number.clone(), [5, 5, 5, 4, 4, 3][rng.random_range(0..6)]));
        }
    }
    let ratings = rated.into_iter().map(|(volunteer_number, rating)| {
        let mut recognition = recognition.clone();
        let request = pb::RateVolunteerRequest {
            project_id: project_id.clone(),
            volunteer_number,
            rating,
            comment: if rating == 5 { "认真负责，表现突出".into() } else { String::new() },
        };
        async move {
            recognition.rate_volunteer(request).await?;
            anyhow::Ok(())
        }
    });
    concurrently(ratings.collect()).await?;
    projects.close_project(pb::CloseProjectRequest { project_id }).await?;
    Ok(())
}

/// An upcoming project: created, published, and `applicants` signed up.
async fn upcoming_project(
    county: &DemoNode,
    request: pb::CreateProjectRequest,
    applicants: Vec<String>,
) -> anyhow::Result<()> {
    let mut projects = pb::project_service_client::ProjectServiceClient::new(county.staff()?);
    let project = projects.create_project(request).await?.into_inner().project.context("no project in reply")?;
    let project_id = project.project_id;
    projects.publish_project(pb::PublishProjectRequest { project_id: project_id.clone() }).await?;
    let sign_ups = pb::sign_up_service_client::SignUpServiceClient::new(county.staff()?);
    // All at once, as on the morning a popular project opens: the node keeps the order of arrival.
    let calls = applicants.into_iter().map(|number| {
        let mut sign_ups = sign_ups.clone();
        let request = pb::SignUpRequest {
            project_id: project_id.clone(),
            idempotency_key: format!("demo-{project_id}-{number}"),
            volunteer_number: number,
        };
        async move {
            sign_ups.sign_up(request).await?;
            anyhow::Ok(())
        }
    });
    concurrently(calls.collect()).await?;
    Ok(())
}

/// A synthetic adult volunteer of county `code`: the identity number is made with the GB 11643 check character and
/// is unique per `index` (the sequence digits carry `index % 1000`, the birth year and month `index / 1000`); the
/// phone number is unique per (`code`, `index`) below 10^6.
fn synthetic_volunteer(code: &str, index: u32, phone_block: u32, rng: &mut impl Rng) -> pb::RegisterVolunteerRequest {
    let year = 1960 + (index / 1000) % 45;
    let month = 1 + (index / 45_000) % 12;
    let day = rng.random_range(1..=28);
    let first17 = format!("{code}{year:04}{month:02}{day:02}{:03}", index % 1000);
    let check = identity_check_char(&first17).unwrap_or('0');
    // The 17th digit (the last of the sequence) is odd for men, even for women (GB 11643).
    let given = if index % 2 == 1 { GIVEN_MALE } else { GIVEN_FEMALE };
    let name = format!("{}{}", SURNAMES[rng.random_range(0..SURNAMES.len())], given[rng.random_range(0..given.len())]);
    let mut skills: Vec<String> =
        (0..rng.random_range(0..3)).map(|_| SKILLS[rng.random_range(0..SKILLS.len())].to_string()).collect();
    skills.sort();
    skills.dedup();
    // 19, a block digit (mobile people have their own), the county's last two digits, six of the index.
    let phone = format!("19{}{}{:06}", phone_block, &code[4..], index % 1_000_000);
    pb::RegisterVolunteerRequest {
        name,
        identity_number: format!("{first17}{check}"),
        phone,
        skills,
        political_status: [
            pb::PoliticalStatus::Masses,
            pb::PoliticalStatus::LeagueMember,
            pb::PoliticalStatus::PartyMember,
        ][rng.random_range(0..3)] as i32,
        consent_to_processing: true,
        home_division_code: code.into(),
        ..Default::default()
    }
}

/// How one mobile person's hours are recognised in each county where they are registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognition {
    pub name: String,
    pub counties: Vec<RecognisedIn>,
}

/// A mobile person as one of their counties sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecognisedIn {
    pub code: String,
    pub volunteer_number: String,
    /// Confirmed minutes served for this county.
    pub confirmed_minutes: u64,
    /// Minutes served elsewhere, as the federation told this county.
    pub elsewhere_minutes: u64,
}

impl Recognition {
    /// True once every county knows exactly the minutes served in the others.
    pub fn complete(&self) -> bool {
        let total: u64 = self.counties.iter().map(|county| county.confirmed_minutes).sum();
        self.counties.iter().all(|county| county.elsewhere_minutes == total - county.confirmed_minutes)
    }
}

/// Reads each mobile person's profile in each of their counties.
pub async fn recognition(federation: &LocalFederation, loaded: &Loaded) -> anyhow::Result<Vec<Recognition>> {
    let mut answer = Vec::new();
    for person in &loaded.mobile {
        let mut counties = Vec::new();
        for Registration { code, volunteer_number } in &person.registrations {
            let node = federation.node(code)?;
            let mut client = pb::recognition_service_client::RecognitionServiceClient::new(node.staff()?);
            let request =
                pb::GetVolunteerProfileRequest { volunteer_number: volunteer_number.clone(), evaluations_max: 1 };
            let profile = client.get_volunteer_profile(request).await?.into_inner();
            counties.push(RecognisedIn {
                code: code.clone(),
                volunteer_number: volunteer_number.clone(),
                confirmed_minutes: profile.confirmed_minutes,
                elsewhere_minutes: profile.elsewhere_minutes,
            });
        }
        answer.push(Recognition { name: person.name.clone(), counties });
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_identity_numbers_are_valid_and_distinct_across_counties() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ["320102", "320104", "320205", "320206"] {
            let mut rng = StdRng::seed_from_u64(1);
            for index in 0..300 {
                let request = synthetic_volunteer(code, index, 0, &mut rng);
                let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
                assert!(crate::validate::IdentityNumber::parse(&request.identity_number, today).is_ok(), "{index}");
                assert!(crate::validate::check_mobile(&request.phone).is_ok(), "{}", request.phone);
                assert!(seen.insert(request.identity_number.clone()));
                assert!(seen.insert(request.phone.clone()), "phone {} repeats", request.phone);
            }
        }
    }

    #[test]
    fn the_mobile_people_are_the_same_requests_in_both_counties() {
        for (home, other) in MOBILE_PAIRS {
            let here = mobile_people(home, 5);
            let there = mobile_people(other, 5);
            assert_eq!(here.len(), MOBILE_PER_PAIR as usize);
            assert_eq!(here, there);
            assert!(here.iter().all(|person| person.identity_number.starts_with(home)));
        }
    }

    #[test]
    fn the_range_spans_whole_months_around_today() {
        let plan =
            DataPlan { volunteers_per_county: 10, seed: 1, today: NaiveDate::from_ymd_opt(2026, 1, 20).unwrap() };
        let (start, end) = plan.range();
        assert_eq!(start, NaiveDate::from_ymd_opt(2025, 8, 1).unwrap());
        assert_eq!(end, NaiveDate::from_ymd_opt(2026, 2, 28).unwrap());
    }
}
