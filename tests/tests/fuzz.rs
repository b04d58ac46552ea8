//! Property-based fuzzing of every decode-and-validate path of the node, in process (no gRPC): each request
//! type's `TryFrom` (and the other request parsers) fed hostile protobuf messages, damaged messages and raw
//! bytes; the identity-number and credit-code validators; the config loader fed arbitrary and mutated TOML.
//!
//! Properties: nothing panics; a refusal is `DomainError::Invalid` whose violations name a real field of the
//! request with a lowercase rule and no trailing period (a config refusal names its key); and decoding plus
//! validating allocates at most a fixed multiple of the input's size (no length read from the input is
//! trusted before it is checked).
//!
//! Every run replays the committed seed corpus `tests/fuzz-corpus/<target>/*`, then runs each target briefly
//! from a fixed seed. A failing input is written into the corpus (`found-<seed>.bin`) so that, once fixed, it
//! is replayed forever. Long run (about 10^6 cases per target and mode; hours on 2 cores):
//!
//! ```text
//! ECOVOL_FUZZ_CASES=1000000 ECOVOL_FUZZ_SEED=$RANDOM cargo nextest run -p ecovol-tests --test fuzz --no-capture
//! ```

#[path = "support/fuzz_input.rs"]
mod fuzz_input;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use ecovol_node::account::CreateAccount;
use ecovol_node::certificate::{self, IssueCertificate};
use ecovol_node::config::{Config, ConfigError};
use ecovol_node::error::DomainError;
use ecovol_node::evaluation::{self, ProfileQuery, RateVolunteer, RecordOutcome};
use ecovol_node::hours::{
    AmendServiceRecord, ListServiceRecords, RecordService, RecordServiceBulk, RecordTarget, RejectCorrection,
    RequestCorrection, RevokeServiceRecord,
};
use ecovol_node::page::{PageLimits, PageRequest};
use ecovol_node::project::signup::{CancelSignUp, ListSignUps, SignUp};
use ecovol_node::project::{
    CancelProject, CreateProject, MarkProject, ProjectRef, SearchProjects, SetProjectCapacity, UpdateProject,
};
use ecovol_node::registry::site::{CreateSite, GetSite, ListSites, UpdateSite};
use ecovol_node::registry::team::{
    AddTeamMember, CreateTeam, GetTeam, ListTeamMembers, ListTeams, RemoveTeamMember, UpdateTeam,
};
use ecovol_node::registry::volunteer::{self, RegisterVolunteer, SearchVolunteers, UpdateVolunteer};
use ecovol_node::stats::StatsRange;
use ecovol_node::supervision::{self, AdvanceReport, SubmitReport};
use ecovol_node::training::{self, Attendance, CreateTraining};
use ecovol_node::validate::{
    CreditCodeCheck, IdentityNumber, check_credit_code, credit_check_char, identity_check_char,
};
use ecovol_proto::v1 as pb;
use fuzz_input::{Generator, Limits, Schema};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

// ---------------------------------------------------------------------------------------------------------
// Allocation accounting: bytes allocated by this thread, so a conversion's allocations can be bounded.
// ---------------------------------------------------------------------------------------------------------

struct CountingAllocator;

thread_local! {
    /// Bytes this thread holds now (allocated minus freed), and the most it held since `measured` began.
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<i64> = const { Cell::new(0) };
}

fn count(change: i64) {
    let _ = LIVE_BYTES.try_with(|live| {
        live.set(live.get() + change);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; only thread-local counters are added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as i64));
        // SAFETY: `ptr` came from `System` through this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as i64 - layout.size() as i64);
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `work` and returns its result with the most memory this thread held meanwhile above what it held before
/// (the input itself is already held).
fn measured<T>(work: impl FnOnce() -> T) -> (T, u64) {
    let before = LIVE_BYTES.with(Cell::get);
    PEAK_BYTES.with(|peak| peak.set(before));
    let result = work();
    (result, (PEAK_BYTES.with(Cell::get) - before).max(0) as u64)
}

/// Decoding and validating may hold this many bytes per input byte at once, plus `ALLOCATION_SLACK_BYTES`
/// (a packed repeated enum decodes each byte into a 4-byte `i32`, and a `Vec` may double while it grows).
/// Measured maximum over a long run: see docs/BAD_INPUT.md.
const ALLOCATION_BYTES_PER_INPUT_BYTE: u64 = 16;
const ALLOCATION_SLACK_BYTES: u64 = 256 << 10;

/// The most bytes held per input byte by any input of at least 4 KiB, in hundredths (reported by the run).
static HELD_PER_INPUT_BYTE_X100_MAX: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

// ---------------------------------------------------------------------------------------------------------
// Run settings
// ---------------------------------------------------------------------------------------------------------

/// Cases per target and mode: `ECOVOL_FUZZ_CASES`, else a short run that keeps the file to a few seconds.
fn cases(default: u32) -> u32 {
    std::env::var("ECOVOL_FUZZ_CASES").ok().and_then(|text| text.parse().ok()).unwrap_or(default)
}

/// Base seed: `ECOVOL_FUZZ_SEED`, else fixed, so the default run is the same every time.
fn base_seed() -> u64 {
    std::env::var("ECOVOL_FUZZ_SEED").ok().and_then(|text| text.parse().ok()).unwrap_or(0xEC0_F022)
}

fn seeded_runner(cases: u32, salt: &str) -> TestRunner {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&base_seed().to_le_bytes());
    for (slot, byte) in seed[8..].iter_mut().zip(salt.bytes().cycle()) {
        *slot = byte;
    }
    let config = RunnerConfig { cases, max_shrink_iters: 64, failure_persistence: None, ..RunnerConfig::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed))
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus")
}

/// Keeps a failing input in the corpus, so it is replayed by every later run.
fn keep_failure(target: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let dir = corpus_dir().join(target);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(name);
    let _ = std::fs::write(&path, bytes);
    path
}

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join(target))
        .map(|entries| entries.flatten().map(|entry| entry.path()).filter(|path| path.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------------------
// Request targets
// ---------------------------------------------------------------------------------------------------------

/// What a decode-and-validate path made of one input.
#[derive(Debug)]
enum Outcome {
    /// prost refused the bytes (the gRPC layer answers before the node's code runs).
    NotDecoded,
    Accepted,
    Refused(DomainError),
}

/// One decode-and-validate path: the bytes of a request, decoded with prost, then the node's parser.
struct Target {
    /// The request message name, `RegisterVolunteerRequest`; also the corpus folder.
    name: String,
    /// `.ecovol.v1.RegisterVolunteerRequest`.
    proto: String,
    run: fn(&[u8]) -> Outcome,
}

fn outcome<M: prost::Message + Default, T>(bytes: &[u8], parse: impl FnOnce(M) -> Result<T, DomainError>) -> Outcome {
    match M::decode(bytes) {
        Err(_) => Outcome::NotDecoded,
        Ok(message) => match parse(message) {
            Ok(_) => Outcome::Accepted,
            Err(error) => Outcome::Refused(error),
        },
    }
}

fn target<M: prost::Message + Default>(run: fn(&[u8]) -> Outcome) -> Target {
    let proto = fuzz_input::proto_name_of::<M>();
    let name = proto.rsplit('.').next().unwrap_or_default().to_string();
    Target { name, proto, run }
}

/// `TryFrom<pb::X> for T` as a target.
macro_rules! owned {
    ($pb:ty => $domain:ty) => {
        target::<$pb>(|bytes| outcome(bytes, |message: $pb| <$domain>::try_from(message)))
    };
}

/// `TryFrom<&pb::X> for T` as a target.
macro_rules! borrowed {
    ($pb:ty => $domain:ty) => {
        target::<$pb>(|bytes| outcome(bytes, |message: $pb| <$domain>::try_from(&message)))
    };
}

const PAGE_LIMITS: PageLimits = PageLimits { size_default: 50, size_max: 500 };

/// Every decode-and-validate path a request takes before the node touches its store. The plan and campaign
/// requests are validated inside their store transaction; they are fuzzed over gRPC (`bad_input_grpc.rs`).
fn targets() -> Vec<Target> {
    vec![
        owned!(pb::GetStatsRequest => StatsRange),
        owned!(pb::CreateProjectRequest => CreateProject),
        owned!(pb::UpdateProjectRequest => UpdateProject),
        owned!(pb::PublishProjectRequest => ProjectRef),
        owned!(pb::CloseProjectRequest => ProjectRef),
        owned!(pb::GetProjectRequest => ProjectRef),
        owned!(pb::CancelProjectRequest => CancelProject),
        owned!(pb::MarkProjectRequest => MarkProject),
        owned!(pb::SetProjectCapacityRequest => SetProjectCapacity),
        borrowed!(pb::SearchProjectsRequest => SearchProjects),
        owned!(pb::RecordServiceRequest => RecordService),
        owned!(pb::RecordServiceBulkRequest => RecordServiceBulk),
        owned!(pb::ConfirmServiceRecordRequest => RecordTarget),
        owned!(pb::GetServiceRecordRequest => RecordTarget),
        owned!(pb::RequestCorrectionRequest => RequestCorrection),
        owned!(pb::RejectCorrectionRequest => RejectCorrection),
        owned!(pb::AmendServiceRecordRequest => AmendServiceRecord),
        owned!(pb::RevokeServiceRecordRequest => RevokeServiceRecord),
        borrowed!(pb::ListServiceRecordsRequest => ListServiceRecords),
        owned!(pb::RateVolunteerRequest => RateVolunteer),
        owned!(pb::RecordProjectOutcomeRequest => RecordOutcome),
        borrowed!(pb::GetVolunteerProfileRequest => ProfileQuery),
        owned!(pb::CreateAccountRequest => CreateAccount),
        owned!(pb::AdvanceReportRequest => AdvanceReport),
        owned!(pb::SignUpRequest => SignUp),
        owned!(pb::CancelSignUpRequest => CancelSignUp),
        borrowed!(pb::ListSignUpsRequest => ListSignUps),
        owned!(pb::RegisterVolunteerRequest => RegisterVolunteer),
        owned!(pb::UpdateVolunteerRequest => UpdateVolunteer),
        borrowed!(pb::SearchVolunteersRequest => SearchVolunteers),
        owned!(pb::CreateTeamRequest => CreateTeam),
        owned!(pb::UpdateTeamRequest => UpdateTeam),
        owned!(pb::GetTeamRequest => GetTeam),
        borrowed!(pb::ListTeamsRequest => ListTeams),
        owned!(pb::AddTeamMemberRequest => AddTeamMember),
        owned!(pb::RemoveTeamMemberRequest => RemoveTeamMember),
        borrowed!(pb::ListTeamMembersRequest => ListTeamMembers),
        owned!(pb::CreateSiteRequest => CreateSite),
        owned!(pb::UpdateSiteRequest => UpdateSite),
        owned!(pb::GetSiteRequest => GetSite),
        borrowed!(pb::ListSitesRequest => ListSites),
        owned!(pb::CreateTrainingRequest => CreateTraining),
        owned!(pb::AddTrainingAttendanceRequest => Attendance),
        owned!(pb::RemoveTrainingAttendanceRequest => Attendance),
        owned!(pb::IssueCertificateRequest => IssueCertificate),
        // Parsers that are not `TryFrom` but take a whole request or one of its fields.
        target::<pb::SubmitReportRequest>(|bytes| {
            outcome(bytes, |message: pb::SubmitReportRequest| SubmitReport::parse(message, chrono::Utc::now()))
        }),
        target::<pb::ListReportsRequest>(|bytes| {
            outcome(bytes, |message: pb::ListReportsRequest| {
                supervision::parse_status_filter(message.status)?;
                PageRequest::parse(message.page_size, &message.page_token, PAGE_LIMITS)
            })
        }),
        target::<pb::GetReportRequest>(|bytes| {
            outcome(bytes, |message: pb::GetReportRequest| supervision::parse_report_id(&message.report_id))
        }),
        target::<pb::GetVolunteerRequest>(|bytes| {
            outcome(bytes, |message: pb::GetVolunteerRequest| {
                volunteer::parse_volunteer_number(&message.volunteer_number)
            })
        }),
        target::<pb::GetCertificateRequest>(|bytes| {
            outcome(bytes, |message: pb::GetCertificateRequest| {
                certificate::parse_certificate_number(&message.certificate_number)
            })
        }),
        target::<pb::GetProjectOutcomeRequest>(|bytes| {
            outcome(bytes, |message: pb::GetProjectOutcomeRequest| evaluation::parse_project_id(&message.project_id))
        }),
        target::<pb::GetTrainingRequest>(|bytes| {
            outcome(bytes, |message: pb::GetTrainingRequest| training::parse_training_id(&message.training_id))
        }),
    ]
}

/// The properties of one input: no panic (the runner catches it), a refusal is a clear field violation, and
/// allocation stays within a fixed multiple of the input.
fn check_request(schema: &Schema, target: &Target, bytes: &[u8]) -> Result<Outcome, String> {
    let (result, allocated) = measured(|| std::panic::catch_unwind(|| (target.run)(bytes)));
    let outcome = result.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_default();
        format!("panicked: {message}")
    })?;
    if bytes.len() >= 4096 {
        let ratio = allocated * 100 / bytes.len() as u64;
        HELD_PER_INPUT_BYTE_X100_MAX.fetch_max(ratio, std::sync::atomic::Ordering::Relaxed);
    }
    let allowed = ALLOCATION_BYTES_PER_INPUT_BYTE * bytes.len() as u64 + ALLOCATION_SLACK_BYTES;
    if allocated > allowed {
        return Err(format!("held {allocated} bytes at once for {} input bytes (allowed {allowed})", bytes.len()));
    }
    if let Outcome::Refused(error) = &outcome {
        check_refusal(&schema.field_names(&target.proto), error)?;
    }
    Ok(outcome)
}

fn check_refusal(fields: &[String], error: &DomainError) -> Result<(), String> {
    let DomainError::Invalid(violations) = error else {
        return Err(format!("refused with {error:?}, not a field violation (InvalidArgument)"));
    };
    if violations.is_empty() {
        return Err("refused with no field violation".into());
    }
    if violations.len() > ecovol_node::error::VIOLATIONS_LISTED_MAX + 1 {
        return Err(format!("{} violations listed: the answer must stay small", violations.len()));
    }
    for violation in violations {
        let root = violation.field.split(['[', '.']).next().unwrap_or_default();
        if !fields.iter().any(|field| field == root) {
            return Err(format!("violation names {:?}, which is not a field of the request", violation.field));
        }
        let description = &violation.description;
        if description.is_empty() || description.ends_with('.') {
            return Err(format!("{}: rule {description:?} is empty or ends with a period", violation.field));
        }
        if description.starts_with(|c: char| c.is_ascii_uppercase()) && !description.starts_with("GB") {
            return Err(format!("{}: rule {description:?} does not start in lowercase", violation.field));
        }
    }
    Ok(())
}

/// How a generated case is made from its seed.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// A hostile but wire-valid message.
    Structured,
    /// A hostile message with invalid UTF-8 allowed in strings, then damaged at the byte level.
    Damaged,
    /// Random bytes.
    Raw,
}

fn generate(schema: &Schema, target: &Target, mode: Mode, seed: u64) -> Vec<u8> {
    match mode {
        Mode::Structured => Generator::new(schema, seed, Limits::default()).message(&target.proto),
        Mode::Damaged => Generator::new(schema, seed, Limits { invalid_utf8: true, ..Limits::default() })
            .mutated_message(&target.proto),
        Mode::Raw => Generator::new(schema, seed, Limits::default()).raw_bytes(512),
    }
}

#[test]
fn every_request_parser_survives_the_seed_corpus() {
    let schema = Schema::ecovol();
    let mut replayed = 0;
    let mut failures = Vec::new();
    for target in targets() {
        for path in corpus_files(&target.name) {
            let bytes = std::fs::read(&path).unwrap();
            if let Err(why) = check_request(&schema, &target, &bytes) {
                failures.push(format!("{}: {why}", path.display()));
            }
            replayed += 1;
        }
    }
    assert!(failures.is_empty(), "corpus inputs fail:\n{}", failures.join("\n"));
    assert!(replayed >= targets().len() * 4, "the corpus has at least 4 inputs per target, found {replayed}");
}

#[test]
fn every_request_parser_survives_generated_input() {
    let schema = Schema::ecovol();
    let targets = targets();
    // Every request type with a node-side parser is a target, and every target is a real message type.
    for target in &targets {
        assert!(schema.message(&target.proto).is_some(), "{} is not in the descriptor set", target.proto);
    }
    let mut failures = Vec::new();
    // Per mode: not decoded, accepted, refused.
    let tally: [[Cell<usize>; 3]; 3] = Default::default();
    for target in &targets {
        for mode in [Mode::Structured, Mode::Damaged, Mode::Raw] {
            let mut runner = seeded_runner(cases(24), &format!("{}/{mode:?}", target.name));
            let result = runner.run(&any::<u64>(), |seed| {
                let bytes = generate(&schema, target, mode, seed);
                match check_request(&schema, target, &bytes) {
                    Ok(outcome) => {
                        let slot = &tally[mode as usize][match outcome {
                            Outcome::NotDecoded => 0,
                            Outcome::Accepted => 1,
                            Outcome::Refused(_) => 2,
                        }];
                        slot.set(slot.get() + 1);
                        Ok(())
                    }
                    Err(why) => Err(TestCaseError::fail(format!("seed {seed}: {why}"))),
                }
            });
            if let Err(failure) = result {
                let seed = failure_seed(&failure.to_string());
                let kept = seed.map(|seed| {
                    keep_failure(
                        &target.name,
                        &format!("found-{mode:?}-{seed}.bin"),
                        &generate(&schema, target, mode, seed),
                    )
                });
                failures.push(format!("{} ({mode:?}): {failure}; input kept in {kept:?}", target.name));
            }
        }
    }
    let tally = tally.map(|counts| counts.map(Cell::into_inner));
    for (mode, [not_decoded, accepted, refused]) in [Mode::Structured, Mode::Damaged, Mode::Raw].iter().zip(tally) {
        println!(
            "{mode:?}: {} targets, not decoded {not_decoded}, accepted {accepted}, refused {refused}",
            targets.len()
        );
    }
    let held = HELD_PER_INPUT_BYTE_X100_MAX.load(std::sync::atomic::Ordering::Relaxed);
    println!("most memory held per input byte (inputs of 4 KiB or more): {}.{:02}", held / 100, held % 100);
    assert!(failures.is_empty(), "fuzz failures:\n{}", failures.join("\n"));
    let [not_decoded, accepted, refused] = tally[Mode::Structured as usize];
    assert!(not_decoded == 0, "structured messages are valid protobuf: {not_decoded} were not");
    assert!(refused > accepted, "most hostile input is refused: {accepted} accepted, {refused} refused");
}

/// The seed in a failure message `seed N: …`.
fn failure_seed(message: &str) -> Option<u64> {
    let after = message.split("seed ").nth(1)?;
    after.split(':').next()?.trim().parse().ok()
}

/// Regenerates the edge-case inputs of the seed corpus (run by hand; the files are committed):
/// `cargo nextest run -p ecovol-tests --test fuzz write_seed_corpus --run-ignored only`.
#[test]
#[ignore = "writes tests/fuzz-corpus; run by hand when targets change"]
fn write_seed_corpus() {
    let schema = Schema::ecovol();
    for target in targets() {
        let dir = corpus_dir().join(&target.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("empty.bin"), b"").unwrap();
        std::fs::write(dir.join("deep-unknown-groups.bin"), fuzz_input::nested_unknown_groups(150)).unwrap();
        let message = schema.message(&target.proto).unwrap();
        if let Some(field) =
            message.field.iter().find(|field| field.r#type() == prost_types::field_descriptor_proto::Type::String)
        {
            let mut bytes = Vec::new();
            fuzz_input::put_bytes_field(&mut bytes, field.number() as u32, b"ab\xff");
            std::fs::write(dir.join("invalid-utf8.bin"), &bytes).unwrap();
            let mut twice = Vec::new();
            fuzz_input::put_bytes_field(&mut twice, field.number() as u32, "a\u{0}b".as_bytes());
            fuzz_input::put_bytes_field(&mut twice, field.number() as u32, "\u{202e}名".as_bytes());
            std::fs::write(dir.join("duplicate-key.bin"), &twice).unwrap();
        }
        // Thousands of bad elements in one packed list: the refusal must stay small (error::VIOLATIONS_LISTED_MAX).
        if let Some(field) = message.field.iter().find(|field| {
            field.label() == prost_types::field_descriptor_proto::Label::Repeated
                && field.r#type() == prost_types::field_descriptor_proto::Type::Enum
        }) {
            let mut bytes = Vec::new();
            fuzz_input::put_bytes_field(&mut bytes, field.number() as u32, &vec![99u8; 200_000]);
            std::fs::write(dir.join("many-violations.bin"), &bytes).unwrap();
        }
        for seed in 1..=3u64 {
            std::fs::write(
                dir.join(format!("generated-{seed}.bin")),
                generate(&schema, &target, Mode::Structured, seed),
            )
            .unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Identity numbers (GB 11643-1999) and unified social credit codes (GB 32100-2015)
// ---------------------------------------------------------------------------------------------------------

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 5).unwrap()
}

/// A valid identity number: any address code, a real birth date from 1900 to `today`, any sequence.
fn valid_identity() -> impl Strategy<Value = (String, NaiveDate)> {
    (0u32..1_000_000, 0i64..=(today() - NaiveDate::from_ymd_opt(1900, 1, 1).unwrap()).num_days(), 0u32..1000).prop_map(
        |(area, days, sequence)| {
            let birth = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::Days::new(days as u64);
            let first17 = format!("{area:06}{}{sequence:03}", birth.format("%Y%m%d"));
            let check = identity_check_char(&first17).unwrap();
            (format!("{first17}{check}"), birth)
        },
    )
}

const CREDIT_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

fn valid_credit_code() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[0-9A-HJ-NP-RT-UW-Y]{17}").unwrap().prop_map(|body| {
        let check = credit_check_char(&body).unwrap();
        format!("{body}{check}")
    })
}

/// Identity-number inputs of the corpus: one per line; `valid:` lines must parse, the others must not.
#[test]
fn identity_numbers_of_the_corpus() {
    let mut replayed = 0;
    for path in corpus_files("identity_number") {
        for line in std::fs::read_to_string(&path).unwrap().lines().filter(|line| !line.starts_with('#')) {
            let (expect_valid, input) = match line.strip_prefix("valid:") {
                Some(rest) => (true, rest),
                None => (false, line.strip_prefix("invalid:").unwrap_or(line)),
            };
            let input = unescape(input);
            let parsed = IdentityNumber::parse(&input, today());
            assert_eq!(parsed.is_ok(), expect_valid, "{}: {input:?} gives {parsed:?}", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 20, "identity corpus has {replayed} inputs");
}

#[test]
fn credit_codes_of_the_corpus() {
    let mut replayed = 0;
    for path in corpus_files("credit_code") {
        for line in std::fs::read_to_string(&path).unwrap().lines().filter(|line| !line.starts_with('#')) {
            let (expected, input) = line.split_once(':').unwrap_or(("error", line));
            let input = unescape(input);
            let checked = check_credit_code(&input);
            let got = match checked {
                Ok(CreditCodeCheck::Valid) => "valid",
                Ok(CreditCodeCheck::CheckMismatch { .. }) => "mismatch",
                Err(_) => "error",
            };
            assert_eq!(got, expected, "{}: {input:?} gives {checked:?}", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 15, "credit-code corpus has {replayed} inputs");
}

/// Corpus lines write control characters as `\u{…}` escapes, so the files stay plain text.
fn unescape(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("\\u{") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        match after
            .split_once('}')
            .and_then(|(hex, tail)| Some((char::from_u32(u32::from_str_radix(hex, 16).ok()?)?, tail)))
        {
            Some((ch, tail)) => {
                out.push(ch);
                rest = tail;
            }
            None => {
                out.push_str("\\u{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

proptest! {
    #![proptest_config(RunnerConfig { cases: cases(256), failure_persistence: None, ..RunnerConfig::default() })]

    #[test]
    fn a_valid_identity_number_parses((number, birth) in valid_identity()) {
        let parsed = IdentityNumber::parse(&number, today()).unwrap();
        prop_assert_eq!(parsed.as_str(), number.as_str());
        prop_assert_eq!(parsed.birth_date(), birth);
    }

    #[test]
    fn any_single_character_change_of_an_identity_number_fails(
        (number, _) in valid_identity(), position in 0usize..18, offset in 1u32..11,
    ) {
        // Characters 1–17 are digits; the 18th is a digit or X: shift within that alphabet, never onto itself.
        let alphabet: Vec<char> = if position == 17 { "0123456789X".chars().collect() } else { "0123456789".chars().collect() };
        let mut chars: Vec<char> = number.chars().collect();
        let at = alphabet.iter().position(|&c| c == chars[position]).unwrap();
        chars[position] = alphabet[(at + offset as usize) % alphabet.len()];
        prop_assume!(chars[position] != number.chars().nth(position).unwrap());
        let changed: String = chars.into_iter().collect();
        prop_assert!(IdentityNumber::parse(&changed, today()).is_err(), "{changed} was accepted");
    }

    #[test]
    fn any_string_is_refused_or_parsed_as_identity_number(input in "\\PC{0,40}|[0-9xX\u{ff10}-\u{ff19}\u{0}]{16,19}") {
        if let Ok(parsed) = IdentityNumber::parse(&input, today()) {
            prop_assert_eq!(parsed.as_str(), input.to_ascii_uppercase());
        }
    }

    #[test]
    fn any_bytes_are_refused_or_parsed_as_identity_number(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = IdentityNumber::parse(&String::from_utf8_lossy(&bytes), today());
        let _ = check_credit_code(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn a_valid_credit_code_checks(code in valid_credit_code()) {
        prop_assert_eq!(check_credit_code(&code), Ok(CreditCodeCheck::Valid));
        prop_assert_eq!(check_credit_code(&code.to_ascii_lowercase()), Ok(CreditCodeCheck::Valid));
    }

    #[test]
    fn any_single_character_change_of_a_credit_code_mismatches(
        code in valid_credit_code(), position in 0usize..18, replacement in 0usize..31,
    ) {
        let mut chars: Vec<char> = code.chars().collect();
        let replacement = CREDIT_ALPHABET.as_bytes()[replacement] as char;
        prop_assume!(chars[position] != replacement);
        chars[position] = replacement;
        let changed: String = chars.into_iter().collect();
        prop_assert!(
            matches!(check_credit_code(&changed), Ok(CreditCodeCheck::CheckMismatch { .. })),
            "{changed} passed the check"
        );
    }

    #[test]
    fn any_string_is_refused_or_checked_as_credit_code(input in "\\PC{0,40}|[0-9A-Za-z\u{ff10}-\u{ff19}]{17,19}") {
        let _ = check_credit_code(&input);
        let _ = credit_check_char(&input);
    }
}

// ---------------------------------------------------------------------------------------------------------
// The config loader
// ---------------------------------------------------------------------------------------------------------

const MINIMAL_CONFIG: &str = "[node]\ncode = \"330106\"\nlevel = \"county\"\nname = \"西湖区\"\n";

fn example_config() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/node.example.toml")).unwrap()
}

/// Sections and keys of the example config (commented-out keys too), to aim mutations at real keys.
fn known_keys(example: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in example.lines() {
        let line = line.trim().trim_start_matches('#').trim();
        if let Some(name) = line.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            section = name.trim_matches(['[', ']']).to_string();
        } else if let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()) {
                keys.push((section.clone(), key.to_string()));
            }
        }
    }
    keys
}

/// TOML values that break configs: wrong types, edges, nonsense.
const NASTY_VALUES: &[&str] = &[
    "0",
    "-1",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "1e400",
    "nan",
    "-inf",
    "0.5",
    "true",
    "\"\"",
    "\" \"",
    "\"a\\u0000b\"",
    "\"名\"",
    "\"../../../../etc/passwd\"",
    "\"0.0.0.0:7070\"",
    "\"[::]:0\"",
    "\"127.0.0.1:99999\"",
    "\"330106\"",
    "\"990000\"",
    "\"county\"",
    "\"galaxy\"",
    "[]",
    "[1, \"a\"]",
    "{}",
    "{ a = 1 }",
    "1979-05-27T07:32:00Z",
    "'''\nmulti\nline'''",
    "\"\\uD800\"",
];

/// Sends a config through the loader: a refusal must say what is wrong, and an accepted config must be usable.
fn check_config(dir: &Path, text: &[u8], env: Vec<(String, String)>) -> Result<(), String> {
    let path = dir.join("node.toml");
    std::fs::write(&path, text).map_err(|error| error.to_string())?;
    let loaded = std::panic::catch_unwind(|| Config::load_with_env(Some(&path), env))
        .map_err(|_| "the config loader panicked".to_string())?;
    match loaded {
        Ok(config) => {
            config.validate().map_err(|error| format!("loaded, then refused by validate: {error}"))?;
            let _ = (config.division_code(), config.page_limits());
            Ok(())
        }
        Err(ConfigError::Load(message)) if !message.trim().is_empty() => Ok(()),
        Err(ConfigError::Invalid(problems)) => {
            for problem in &problems {
                let key = problem.split(':').next().unwrap_or_default();
                if !key.contains('.') || key.contains(' ') {
                    return Err(format!("problem {problem:?} does not start with the key it is about"));
                }
            }
            if problems.is_empty() { Err("refused with no problem listed".into()) } else { Ok(()) }
        }
        Err(error) => Err(format!("refused without a message: {error:?}")),
    }
}

/// A mutated config: a valid base with lines dropped, doubled (duplicate keys), values swapped for nasty
/// ones, unknown keys, or bytes damaged; sometimes an `ECOVOL__…` variable on top.
fn mutated_config(
    rng: &mut impl rand::Rng,
    bases: &[String],
    keys: &[(String, String)],
) -> (Vec<u8>, Vec<(String, String)>) {
    let base = &bases[rng.random_range(0..bases.len())];
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    for _ in 0..rng.random_range(1..5) {
        let at = rng.random_range(0..lines.len().max(1));
        match rng.random_range(0..7) {
            0 if !lines.is_empty() => {
                lines.remove(at.min(lines.len() - 1));
            }
            1 if !lines.is_empty() => {
                let line = lines[at.min(lines.len() - 1)].clone();
                lines.insert(at.min(lines.len()), line);
            }
            2 => {
                let (section, key) = &keys[rng.random_range(0..keys.len())];
                let value = NASTY_VALUES[rng.random_range(0..NASTY_VALUES.len())];
                lines.push(format!("[{section}]\n{key} = {value}"));
            }
            3 => {
                let key = &keys[rng.random_range(0..keys.len())].1;
                let value = NASTY_VALUES[rng.random_range(0..NASTY_VALUES.len())];
                lines.insert(at.min(lines.len()), format!("{key} = {value}"));
            }
            4 => lines.insert(at.min(lines.len()), "unknown_key_from_the_future = 1".into()),
            5 => lines.insert(
                at.min(lines.len()),
                ["[", "[[node]]", "= 1", "key = ", "\"unterminated", "[node"][rng.random_range(0..6)].into(),
            ),
            _ => {
                let (section, _) = &keys[rng.random_range(0..keys.len())];
                lines.insert(at.min(lines.len()), format!("[{section}]"));
            }
        }
    }
    let mut bytes = lines.join("\n").into_bytes();
    if rng.random_bool(0.15) && !bytes.is_empty() {
        let at = rng.random_range(0..bytes.len());
        bytes[at] = rng.random();
    }
    let mut env = Vec::new();
    if rng.random_bool(0.3) {
        let (section, key) = &keys[rng.random_range(0..keys.len())];
        let value = NASTY_VALUES[rng.random_range(0..NASTY_VALUES.len())].trim_matches('"');
        env.push((
            format!("ECOVOL__{}__{}", section.to_uppercase().replace('.', "__"), key.to_uppercase()),
            value.to_string(),
        ));
    }
    (bytes, env)
}

#[test]
fn config_loader_survives_the_seed_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let files = corpus_files("config");
    assert!(files.len() >= 6, "the config corpus has {} files", files.len());
    for path in files {
        let text = std::fs::read(&path).unwrap();
        check_config(dir.path(), &text, Vec::new()).unwrap_or_else(|why| panic!("{}: {why}", path.display()));
    }
}

#[test]
fn config_loader_survives_mutated_and_arbitrary_configs() {
    use rand::SeedableRng;
    let dir = tempfile::tempdir().unwrap();
    let example = example_config();
    let keys = known_keys(&example);
    assert!(keys.len() >= 20, "found {} keys in the example config", keys.len());
    let bases = vec![example, MINIMAL_CONFIG.to_string()];
    let mut runner = seeded_runner(cases(96), "config/mutated");
    runner
        .run(&any::<u64>(), |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let (text, env) = mutated_config(&mut rng, &bases, &keys);
            check_config(dir.path(), &text, env).map_err(|why| {
                let kept = keep_failure("config", &format!("found-{seed}.toml"), &text);
                TestCaseError::fail(format!("seed {seed}: {why} (kept in {})", kept.display()))
            })
        })
        .unwrap();
    let mut runner = seeded_runner(cases(64), "config/arbitrary");
    runner
        .run(&"\\PC{0,200}|(\\[[a-z._]{0,12}\\]\n|[a-z_]{1,12} = [-0-9a-z\"'.\\[\\]{}, ]{0,12}\n){0,12}", |text| {
            check_config(dir.path(), text.as_bytes(), Vec::new()).map_err(TestCaseError::fail)
        })
        .unwrap();
}
