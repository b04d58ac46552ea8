//! Bad input over real gRPC, against a real node on loopback: the catalogue of docs/BAD_INPUT.md (oversized
//! messages, deep nesting, invalid UTF-8, huge page sizes, negative and absurd numbers, duplicate keys, times
//! far in the past or future), each with the answer it must get, then a barrage of generated hostile requests
//! at every unary method of every service. Records stored before are read back unchanged afterwards.
//!
//! Requests go out as raw bytes (a pass-through codec), so the node sees exactly what a broken or hostile
//! client could send, including bytes no generated client would produce. Longer barrage:
//! `ECOVOL_FUZZ_CASES=200 cargo nextest run -p ecovol-tests --test bad_input_grpc`.

#[path = "support/fuzz_input.rs"]
mod fuzz_input;

use std::collections::BTreeMap;

use ecovol_proto::v1 as pb;
use ecovol_tests::fixtures::adult;
use ecovol_tests::{NodeSpec, TestNode, violated_fields};
use fuzz_input::{Generator, Limits, Schema};
use prost::Message as _;
use prost::bytes::{Buf, BufMut};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;

/// Sends and receives protobuf bodies as they are, undecoded.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let length = src.remaining();
        Ok(Some(src.copy_to_bytes(length).to_vec()))
    }
}

/// One unary call with a raw body; the answer's raw body, or its status.
async fn call(node: &TestNode, token: &str, path: &str, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(node.channel.clone());
    grpc.ready().await.map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let mut request = tonic::Request::new(body);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let path = PathAndQuery::try_from(path.to_string()).unwrap();
    grpc.unary(request, path, RawCodec).await.map(tonic::Response::into_inner)
}

/// What a catalogue case must get back.
#[derive(Debug)]
enum Answer {
    /// Accepted.
    Ok,
    /// Refused with this code and exactly these violated fields (none for codes other than InvalidArgument).
    Refused(Code, &'static [&'static str]),
    /// Refused with this code and this many violations listed.
    Listed(Code, usize),
    /// Refused with one of these codes (the transport's answer to an oversized message varies by side).
    OneOf(&'static [Code]),
}

struct Case {
    what: &'static str,
    path: &'static str,
    body: Vec<u8>,
    answer: Answer,
}

fn case(what: &'static str, path: &'static str, body: Vec<u8>, answer: Answer) -> Case {
    Case { what, path, body, answer }
}

fn timestamp(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos })
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the RFC 3339 range of `google.protobuf.Timestamp`.
const YEAR_1: i64 = -62_135_596_800;
const YEAR_9999: i64 = 253_402_300_799;

fn record(start: Option<prost_types::Timestamp>, end: Option<prost_types::Timestamp>) -> Vec<u8> {
    pb::RecordServiceRequest {
        project_id: "330106-P000001".into(),
        volunteer_number: "330106-V000001".into(),
        method: 1,
        start_time: start,
        end_time: end,
        content: "清理河岸垃圾".into(),
        idempotency_key: "fuzz-1".into(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A team request with the `name` field sent twice: protobuf keeps the last value.
fn team_with_name_twice(first: &str, last: &str) -> Vec<u8> {
    let mut body = Vec::new();
    fuzz_input::put_bytes_field(&mut body, 1, first.as_bytes());
    fuzz_input::put_bytes_field(&mut body, 1, last.as_bytes());
    body.extend(pb::CreateTeamRequest { kind: 1, ..Default::default() }.encode_to_vec());
    body
}

fn catalogue(kept_volunteer: &str, kept_team: &str) -> Vec<Case> {
    use Answer::*;
    const REGISTER: &str = "/ecovol.v1.VolunteerService/RegisterVolunteer";
    const SEARCH: &str = "/ecovol.v1.VolunteerService/SearchVolunteers";
    const CREATE_TEAM: &str = "/ecovol.v1.TeamService/CreateTeam";
    const LIST_TEAMS: &str = "/ecovol.v1.TeamService/ListTeams";
    const RECORD: &str = "/ecovol.v1.ServiceRecordService/RecordService";
    const CREATE_PROJECT: &str = "/ecovol.v1.ProjectService/CreateProject";
    const STATS: &str = "/ecovol.v1.StatsService/GetStats";
    const SUBMIT_REPORT: &str = "/ecovol.v1.SupervisionService/SubmitReport";
    const RATE: &str = "/ecovol.v1.RecognitionService/RateVolunteer";
    let register = |request: pb::RegisterVolunteerRequest| request.encode_to_vec();
    let mut invalid_utf8_name = Vec::new();
    fuzz_input::put_bytes_field(&mut invalid_utf8_name, 1, b"\xe5\x90\x8d\xff");
    let project = |start: i64, end: i64, capacity: u32, min_age: u32| {
        pb::CreateProjectRequest {
            title: "河道清洁".into(),
            description: "清理河岸垃圾".into(),
            activity_kind: 4,
            start_at: timestamp(start, 0),
            end_at: timestamp(end, 0),
            capacity,
            min_age,
            organising_team_id: kept_team.into(),
            contact: "13900000001".into(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let now = chrono::Utc::now().timestamp();
    vec![
        // Size and shape.
        case(
            "message over office.message_bytes_max (5 MiB name)",
            REGISTER,
            register(pb::RegisterVolunteerRequest { name: "x".repeat(5 << 20), ..adult(90) }),
            OneOf(&[Code::OutOfRange, Code::ResourceExhausted]),
        ),
        case(
            "message just under the limit (a 4 MiB team name)",
            CREATE_TEAM,
            pb::CreateTeamRequest { name: "名".repeat(1_398_000), kind: 1, ..Default::default() }.encode_to_vec(),
            Refused(Code::InvalidArgument, &["name"]),
        ),
        case(
            "90 nested unknown groups before a valid registration",
            REGISTER,
            [
                fuzz_input::nested_unknown_groups(90),
                register(pb::RegisterVolunteerRequest { name: "a\0b".into(), ..adult(91) }),
            ]
            .concat(),
            Refused(Code::InvalidArgument, &["name", "name"]),
        ),
        case(
            "150 nested unknown groups (over prost's recursion limit of 100)",
            REGISTER,
            fuzz_input::nested_unknown_groups(150),
            Refused(Code::InvalidArgument, &[]),
        ),
        case("invalid UTF-8 in a string field", REGISTER, invalid_utf8_name, Refused(Code::InvalidArgument, &["name"])),
        case(
            "truncated message",
            REGISTER,
            register(adult(92))[..20].to_vec(),
            Refused(Code::InvalidArgument, &["identity_number"]),
        ),
        case(
            "empty message",
            REGISTER,
            Vec::new(),
            Refused(
                Code::InvalidArgument,
                &[
                    "name",
                    "identity_number",
                    "phone",
                    "political_status",
                    "consent_to_processing",
                    "home_division_code",
                ],
            ),
        ),
        case(
            "4 million unknown roles, packed (one byte each)",
            "/ecovol.v1.AccountService/CreateAccount",
            {
                let mut body = Vec::new();
                fuzz_input::put_bytes_field(&mut body, 3, &vec![99u8; 4_000_000]);
                body
            },
            Listed(Code::InvalidArgument, ecovol_node::error::VIOLATIONS_LISTED_MAX + 1),
        ),
        // Page sizes and tokens.
        case(
            "page_size i32::MAX (lowered to limits.page_size_max)",
            SEARCH,
            pb::SearchVolunteersRequest { page_size: i32::MAX, ..Default::default() }.encode_to_vec(),
            Ok,
        ),
        case(
            "page_size −1",
            SEARCH,
            pb::SearchVolunteersRequest { page_size: -1, ..Default::default() }.encode_to_vec(),
            Refused(Code::InvalidArgument, &["page_size"]),
        ),
        case(
            "page_size i32::MIN",
            LIST_TEAMS,
            pb::ListTeamsRequest { page_size: i32::MIN, ..Default::default() }.encode_to_vec(),
            Refused(Code::InvalidArgument, &["page_size"]),
        ),
        case(
            "page_token of 1 MiB",
            LIST_TEAMS,
            pb::ListTeamsRequest { page_token: "A".repeat(1 << 20), ..Default::default() }.encode_to_vec(),
            Refused(Code::InvalidArgument, &["page_token"]),
        ),
        // Negative and absurd numbers.
        case(
            "unknown enum value −1",
            REGISTER,
            register(pb::RegisterVolunteerRequest { political_status: -1, ..adult(93) }),
            Refused(Code::InvalidArgument, &["political_status"]),
        ),
        case(
            "enum value i32::MAX",
            CREATE_TEAM,
            pb::CreateTeamRequest { name: "河小青".into(), kind: i32::MAX, ..Default::default() }.encode_to_vec(),
            Refused(Code::InvalidArgument, &["kind"]),
        ),
        case(
            "capacity u32::MAX, min_age 4294967295",
            CREATE_PROJECT,
            project(now + 86_400, now + 90_000, u32::MAX, u32::MAX),
            Refused(Code::InvalidArgument, &["capacity", "min_age"]),
        ),
        case(
            "rating 4294967295",
            RATE,
            pb::RateVolunteerRequest {
                project_id: "330106-P000001".into(),
                volunteer_number: kept_volunteer.into(),
                rating: u32::MAX,
                ..Default::default()
            }
            .encode_to_vec(),
            Refused(Code::InvalidArgument, &["rating"]),
        ),
        // Times far in the past or future, and invalid timestamps.
        case(
            "service in year 1",
            RECORD,
            record(timestamp(YEAR_1, 0), timestamp(YEAR_1 + 3600, 0)),
            Refused(Code::InvalidArgument, &["start_time", "end_time"]),
        ),
        case(
            "service in year 9999 (the project is looked up before the times are checked against now)",
            RECORD,
            record(timestamp(YEAR_9999 - 3600, 0), timestamp(YEAR_9999, 0)),
            Refused(Code::NotFound, &[]),
        ),
        case(
            "timestamp seconds i64::MAX",
            RECORD,
            record(timestamp(now - 7200, 0), timestamp(i64::MAX, 0)),
            Refused(Code::InvalidArgument, &["end_time"]),
        ),
        case(
            "timestamp seconds i64::MIN, nanos −1",
            RECORD,
            record(timestamp(i64::MIN, -1), timestamp(now - 3600, 0)),
            Refused(Code::InvalidArgument, &["start_time"]),
        ),
        case(
            "end before start",
            RECORD,
            record(timestamp(now - 3600, 0), timestamp(now - 7200, 0)),
            Refused(Code::InvalidArgument, &["end_time"]),
        ),
        case(
            "project from year 1 to year 9999 (accepted: a weakness)",
            CREATE_PROJECT,
            project(YEAR_1, YEAR_9999, 10, 0),
            Ok,
        ),
        case(
            "report of damage seen in the future",
            SUBMIT_REPORT,
            pb::SubmitReportRequest {
                place: "西溪湿地".into(),
                occurred_at: timestamp(now + 86_400 * 365, 0),
                description: "倾倒垃圾".into(),
                category: 1,
                reporter_volunteer_number: kept_volunteer.into(),
            }
            .encode_to_vec(),
            Refused(Code::InvalidArgument, &["occurred_at"]),
        ),
        case(
            "statistics from year 1 to year 9999",
            STATS,
            pb::GetStatsRequest { start_date: "0001-01-01".into(), end_date: "9999-12-31".into() }.encode_to_vec(),
            Refused(Code::InvalidArgument, &["end_date"]),
        ),
        case(
            "statistics for 30 February",
            STATS,
            pb::GetStatsRequest { start_date: "2024-02-30".into(), end_date: "2024-03-01".into() }.encode_to_vec(),
            Refused(Code::InvalidArgument, &["start_date"]),
        ),
        // Duplicate keys.
        case(
            "name sent twice, the last valid (protobuf keeps the last)",
            CREATE_TEAM,
            team_with_name_twice("a\0b", "河小青护河队"),
            Ok,
        ),
        case(
            "name sent twice, the last invalid",
            CREATE_TEAM,
            team_with_name_twice("河小青护河队", "a\0b"),
            Refused(Code::InvalidArgument, &["name"]),
        ),
        case(
            "an identity number already registered",
            REGISTER,
            register(pb::RegisterVolunteerRequest { phone: "13900009999".into(), ..adult(1) }),
            Refused(Code::AlreadyExists, &[]),
        ),
    ]
}

#[tokio::test]
async fn the_catalogue_of_bad_inputs_gets_its_answers_and_loses_nothing() {
    let (node, kept, kept_team) = county_with_volunteer_and_team().await;
    let staff = node.tokens.staff.clone();

    let mut wrong = Vec::new();
    for case in catalogue(&kept.volunteer_number, &kept_team.team_id) {
        let answer = call(&node, &staff, case.path, case.body).await;
        let matches = match (&case.answer, &answer) {
            (Answer::Ok, Ok(_)) => true,
            (Answer::Refused(code, fields), Err(status)) => {
                let mut got = violated_fields(status);
                got.sort();
                let mut expected = fields.to_vec();
                expected.sort();
                status.code() == *code && got == expected && !status.message().is_empty()
            }
            (Answer::OneOf(codes), Err(status)) => codes.contains(&status.code()),
            (Answer::Listed(code, count), Err(status)) => {
                status.code() == *code && violated_fields(status).len() == *count
            }
            _ => false,
        };
        let got = match &answer {
            Ok(_) => "OK".to_string(),
            Err(status) => format!("{:?} {:?} {}", status.code(), violated_fields(status), status.message()),
        };
        println!("{} → {}", case.what, got.chars().take(200).collect::<String>());
        if !matches {
            wrong.push(format!("{}: expected {:?}, got {got}", case.what, case.answer));
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));

    assert_unchanged(&node, &kept, &kept_team).await;
}

/// The records stored before the bad input are all there, unchanged, and the node still takes writes.
async fn assert_unchanged(node: &TestNode, kept: &pb::Volunteer, kept_team: &pb::Team) {
    let staff = &node.tokens.staff;
    node.volunteers(staff).register_volunteer(adult(7)).await.expect("the node still takes writes");
    let volunteer = node
        .volunteers(staff)
        .get_volunteer(pb::GetVolunteerRequest { volunteer_number: kept.volunteer_number.clone() })
        .await
        .unwrap()
        .into_inner()
        .volunteer;
    assert_eq!(volunteer.as_ref(), Some(kept));
    let team = node
        .teams(staff)
        .get_team(pb::GetTeamRequest { team_id: kept_team.team_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .team;
    assert_eq!(team.as_ref(), Some(kept_team));
}

/// Codes a hostile request may get. `Internal`, `Unknown` and `DataLoss` never: a body prost cannot decode is
/// `InvalidArgument` too (ecovol's codec, see docs/BAD_INPUT.md), naming the field prost was in when there was one.
fn acceptable(status: &tonic::Status, undecodable: bool) -> Result<(), String> {
    match status.code() {
        Code::Unknown | Code::DataLoss => Err("a code no refusal should have".into()),
        Code::Internal => {
            Err("Internal for a hostile request: a fault inside the node, or the codec's old answer".into())
        }
        // tonic's own answer for a service this port does not serve (the federation's, on the office port).
        Code::Unimplemented => Ok(()),
        Code::InvalidArgument if undecodable && status.message().starts_with("cannot decode the message: ") => Ok(()),
        Code::InvalidArgument if violated_fields(status).is_empty() => {
            Err("InvalidArgument without field violations".into())
        }
        _ if status.message().trim().is_empty() => Err("a refusal without a message".into()),
        _ => Ok(()),
    }
}

#[tokio::test]
async fn every_method_survives_a_barrage_of_generated_requests() {
    let (node, kept, kept_team) = county_with_volunteer_and_team().await;
    let tokens = [
        node.tokens.staff.clone(),
        node.tokens.operator.clone(),
        node.tokens.auditor.clone(),
        node.tokens.staff_civil_affairs.clone(),
    ];

    let schema = Schema::ecovol();
    let cases: u64 = std::env::var("ECOVOL_FUZZ_CASES").ok().and_then(|text| text.parse().ok()).unwrap_or(6);
    let seed: u64 = std::env::var("ECOVOL_FUZZ_SEED").ok().and_then(|text| text.parse().ok()).unwrap_or(0xEC0_6090);
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut sent = 0;
    let methods: Vec<_> = schema.methods().iter().filter(|method| !method.streaming).collect();
    for (method_index, method) in methods.iter().enumerate() {
        for case in 0..cases {
            let case_seed = seed ^ ((method_index as u64) << 32) ^ case;
            let mut generator = Generator::new(&schema, case_seed, Limits { invalid_utf8: true, ..Limits::default() });
            let body = generator.message(&method.input_type);
            let undecodable = generator.wrote_invalid_utf8;
            let token = &tokens[(case as usize) % tokens.len()];
            let answer = call(&node, token, &method.path, body).await;
            sent += 1;
            let code = match &answer {
                Ok(_) => "OK".to_string(),
                Err(status) => {
                    if let Err(why) = acceptable(status, undecodable) {
                        failures.push(format!(
                            "{} seed {case_seed}: {why}: {:?} {}",
                            method.path,
                            status.code(),
                            status.message()
                        ));
                    }
                    format!("{:?}", status.code())
                }
            };
            *codes.entry(code).or_default() += 1;
        }
    }
    println!("{sent} requests at {} methods: {codes:?}", methods.len());
    assert!(failures.is_empty(), "bad answers:\n{}", failures.join("\n"));
    assert!(methods.len() >= 90, "the descriptor set lists {} unary methods", methods.len());

    // The node still serves, and nothing stored before the barrage was lost or changed.
    assert_unchanged(&node, &kept, &kept_team).await;
    let dir = node.stop().await.unwrap();
    drop(dir);
}

/// A project whose window reaches the ends of what the node can represent must not break the recording of
/// hours (the window check adds `window_tolerance_minutes` to the project's start and end).
#[tokio::test]
async fn a_project_at_the_ends_of_time_is_refused_or_harmless() {
    let (node, kept, team) = county_with_volunteer_and_team().await;
    let staff = node.tokens.staff.clone();
    let now = chrono::Utc::now().timestamp();
    let ends = [
        (
            "chrono's first and last instants",
            chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp(),
            chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp(),
        ),
        ("year 1 to year 9999", YEAR_1, YEAR_9999),
    ];
    for (what, start, end) in ends {
        let created = call(
            &node,
            &staff,
            "/ecovol.v1.ProjectService/CreateProject",
            pb::CreateProjectRequest {
                title: "河道清洁".into(),
                activity_kind: 4,
                organising_team_id: team.team_id.clone(),
                start_at: timestamp(start, 0),
                end_at: timestamp(end, 0),
                capacity: 10,
                ..Default::default()
            }
            .encode_to_vec(),
        )
        .await;
        let project = match created {
            Err(status) => {
                println!("{what}: project refused: {:?} {:?}", status.code(), violated_fields(&status));
                assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
                continue;
            }
            Ok(body) => pb::CreateProjectResponse::decode(&body[..]).unwrap().project.unwrap(),
        };
        let published = call(
            &node,
            &staff,
            "/ecovol.v1.ProjectService/PublishProject",
            pb::PublishProjectRequest { project_id: project.project_id.clone() }.encode_to_vec(),
        )
        .await;
        println!("{what}: project accepted; publish: {:?}", published.as_ref().err().map(|status| status.code()));
        let recorded = call(
            &node,
            &staff,
            "/ecovol.v1.ServiceRecordService/RecordService",
            pb::RecordServiceRequest {
                project_id: project.project_id.clone(),
                volunteer_number: kept.volunteer_number.clone(),
                method: 1,
                start_time: timestamp(now - 7200, 0),
                end_time: timestamp(now - 3600, 0),
                content: "清理河岸垃圾".into(),
                walk_in: true,
                idempotency_key: format!("ends-{start}"),
            }
            .encode_to_vec(),
        )
        .await;
        let answer = recorded.as_ref().map(|_| ()).map_err(|status| (status.code(), status.message().to_string()));
        println!("{what}: recording → {answer:?}");
        if let Err((code, message)) = &answer {
            assert!(![Code::Internal, Code::Unknown].contains(code), "{what}: recording broke: {code:?} {message}");
        }
    }
    // The node still serves.
    node.volunteers(&staff)
        .get_volunteer(pb::GetVolunteerRequest { volunteer_number: kept.volunteer_number.clone() })
        .await
        .unwrap();
}

/// A county node holding one volunteer and one team registered by its staff.
async fn county_with_volunteer_and_team() -> (TestNode, pb::Volunteer, pb::Team) {
    let node = TestNode::start(NodeSpec::county("330106")).await.unwrap();
    let staff = node.tokens.staff.clone();
    let volunteer = node.volunteers(&staff).register_volunteer(adult(1)).await.unwrap().into_inner().volunteer.unwrap();
    let team = node
        .teams(&staff)
        .create_team(pb::CreateTeamRequest { name: "护河志愿队".into(), kind: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    (node, volunteer, team)
}
