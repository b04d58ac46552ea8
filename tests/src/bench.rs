//! The benchmark driver behind `ecovol-bench`: starts real nodes in this process (real mutual TLS on loopback,
//! real sled in a temporary folder), drives load, and reports each figure beside the limit of the machine
//! measured in the same run (tonic echo round trip, sled insert + flush, fsync, PostgreSQL).
//!
//! `Size::Short` runs every scenario at a tiny size: the smoke test (`tests/tests/bench_smoke.rs`) uses it to
//! check the driver's own correctness (all records present, exactly the seats accepted), never its timing.

pub mod baseline;
pub mod federation;
pub mod footprint;
pub mod ingest;
pub mod rush;
pub mod tls;

use std::future::Future;
use std::time::{Duration, Instant};

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Tiny: the smoke test's size, seconds in a debug build.
    Short,
    /// The sizes of `docs/BENCHMARKS.md`.
    Full,
}

impl Size {
    /// `short` in a short run, `full` otherwise.
    pub fn pick<T>(self, short: T, full: T) -> T {
        match self {
            Size::Short => short,
            Size::Full => full,
        }
    }
}

/// The scenarios, in the order `all` runs them.
pub const SCENARIOS: [&str; 9] =
    ["baseline", "ingest", "bulk", "rush", "query", "freshness", "catchup", "wire", "footprint"];

/// One measured figure, with the limit it is compared to when there is one.
#[derive(Debug, Clone)]
pub struct Figure {
    pub scenario: &'static str,
    pub measure: String,
    pub value: f64,
    pub unit: &'static str,
    /// The limit measured in the same run this figure is a fraction of: (name, value in the same unit).
    pub limit: Option<(String, f64)>,
    pub target: String,
    pub note: String,
}

impl Figure {
    pub fn new(scenario: &'static str, measure: impl Into<String>, value: f64, unit: &'static str) -> Figure {
        Figure {
            scenario,
            measure: measure.into(),
            value,
            unit,
            limit: None,
            target: String::new(),
            note: String::new(),
        }
    }

    pub fn limit(mut self, name: impl Into<String>, value: Option<f64>) -> Figure {
        self.limit = value.map(|value| (name.into(), value));
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Figure {
        self.target = target.into();
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.note = note.into();
        self
    }

    /// `value / limit`, when both are known and the limit is not zero.
    pub fn ratio(&self) -> Option<f64> {
        self.limit.as_ref().filter(|(_, limit)| *limit > 0.0).map(|(_, limit)| self.value / limit)
    }
}

/// Everything a run measured; scenarios read the baselines measured before them.
#[derive(Debug, Default)]
pub struct Report {
    pub figures: Vec<Figure>,
    /// Facts the smoke test checks (name, value): counts, not times.
    pub checks: Vec<(String, u64)>,
    /// Scenarios not run, with why.
    pub skipped: Vec<(String, String)>,
}

impl Report {
    pub fn push(&mut self, figure: Figure) {
        println!("  {}", row(&figure));
        self.figures.push(figure);
    }

    pub fn check(&mut self, name: impl Into<String>, value: u64) {
        self.checks.push((name.into(), value));
    }

    pub fn checked(&self, name: &str) -> Option<u64> {
        self.checks.iter().find(|(key, _)| key == name).map(|(_, value)| *value)
    }

    pub fn skip(&mut self, scenario: impl Into<String>, why: impl Into<String>) {
        let (scenario, why) = (scenario.into(), why.into());
        println!("  {scenario}: skipped: {why}");
        self.skipped.push((scenario, why));
    }

    /// A measured figure by scenario and measure, for later ratios.
    pub fn value(&self, scenario: &str, measure: &str) -> Option<f64> {
        self.figures.iter().find(|f| f.scenario == scenario && f.measure == measure).map(|f| f.value)
    }

    /// The results as a Markdown table.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| scenario | measure | value | limit (same run) | ratio | target | note |\n| --- | --- | ---: | --- | ---: | --- | --- |\n",
        );
        for figure in &self.figures {
            out.push_str(&row(figure));
            out.push('\n');
        }
        for (scenario, why) in &self.skipped {
            out.push_str(&format!("| {scenario} | — | skipped: {why} | | | | |\n"));
        }
        out
    }
}

fn row(figure: &Figure) -> String {
    let limit = match &figure.limit {
        Some((name, value)) => format!("{name}: {}", number(*value)),
        None => String::new(),
    };
    let ratio = figure.ratio().map(|ratio| format!("{ratio:.2}")).unwrap_or_default();
    format!(
        "| {} | {} | {} {} | {} | {} | {} | {} |",
        figure.scenario,
        figure.measure,
        number(figure.value),
        figure.unit,
        limit,
        ratio,
        figure.target,
        figure.note
    )
}

/// A number printed with sensible precision.
pub fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// Latencies of the calls of one load, sorted.
#[derive(Debug, Default, Clone)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn new(mut samples: Vec<Duration>) -> Latencies {
        samples.sort_unstable();
        Latencies(samples)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `q`-quantile (0.5 = median) in milliseconds; 0 if nothing was measured.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let index = ((self.0.len() as f64 * q).ceil() as usize).clamp(1, self.0.len()) - 1;
        self.0[index].as_secs_f64() * 1000.0
    }
}

/// What `drive` measured.
#[derive(Debug)]
pub struct Load {
    pub calls: usize,
    pub failures: usize,
    /// The first failure's message, if any.
    pub first_failure: Option<String>,
    pub elapsed: Duration,
    pub latencies: Latencies,
}

impl Load {
    /// Successful calls per second.
    pub fn rate(&self) -> f64 {
        (self.calls - self.failures) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `total` calls from `clients.len()` concurrent clients (client `c` makes calls `c, c + n, c + 2n, …`),
/// each client waiting for its answer before its next call (a closed loop: `clients.len()` calls in flight).
pub async fn drive<C, F, Fut>(clients: Vec<C>, total: usize, call: F) -> Load
where
    C: Clone + Send + 'static,
    F: Fn(C, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let count = clients.len().max(1);
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(c, client)| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut failures = Vec::new();
                for index in (c..total).step_by(count) {
                    let begun = Instant::now();
                    match call(client.clone(), index).await {
                        Ok(()) => samples.push(begun.elapsed()),
                        Err(error) => failures.push(format!("{error:#}")),
                    }
                }
                (samples, failures)
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(total);
    let mut failures = Vec::new();
    for task in tasks {
        match task.await {
            Ok((mut done, mut failed)) => {
                samples.append(&mut done);
                failures.append(&mut failed);
            }
            Err(error) => failures.push(format!("client task failed: {error}")),
        }
    }
    Load {
        calls: total,
        failures: total.saturating_sub(samples.len()),
        first_failure: failures.into_iter().next(),
        elapsed: started.elapsed(),
        latencies: Latencies::new(samples),
    }
}

/// Runs the named scenario (or `all`) at `size`; the baselines run first (the ratios need them) unless
/// `baselines` is false (profiling one scenario).
/// Registers a team named `team` through `staff`, then creates and publishes `project` organised by it; returns
/// the project's id. Every scenario that needs somewhere to record service or sign up starts here.
pub async fn published_project(
    staff: crate::Authed,
    team: &str,
    project: ecovol_proto::v1::CreateProjectRequest,
) -> anyhow::Result<String> {
    use ecovol_proto::v1 as pb;
    let team_id = pb::team_service_client::TeamServiceClient::new(staff.clone())
        .create_team(pb::CreateTeamRequest {
            name: team.into(),
            kind: pb::TeamKind::SocialOrganisation as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .team
        .unwrap_or_default()
        .team_id;
    let mut projects = pb::project_service_client::ProjectServiceClient::new(staff);
    let project_id = projects
        .create_project(pb::CreateProjectRequest { organising_team_id: team_id, ..project })
        .await?
        .into_inner()
        .project
        .unwrap_or_default()
        .project_id;
    projects.publish_project(pb::PublishProjectRequest { project_id: project_id.clone() }).await?;
    Ok(project_id)
}

pub async fn run(scenario: &str, size: Size, baselines: bool) -> anyhow::Result<Report> {
    let wanted: Vec<&str> = match scenario {
        "all" => SCENARIOS.to_vec(),
        name if SCENARIOS.contains(&name) => vec![name],
        other => anyhow::bail!("unknown scenario {other:?}: one of {} or all", SCENARIOS.join(", ")),
    };
    let tls = tls::BenchTls::generate()?;
    let mut report = Report::default();
    if baselines || scenario == "baseline" {
        println!("baseline (limits of this machine, same run)");
        baseline::run(&mut report, &tls, size).await?;
    }
    for name in wanted.into_iter().filter(|name| *name != "baseline") {
        println!("{name}");
        let started = Instant::now();
        match name {
            "ingest" => ingest::durable(&mut report, &tls, size).await?,
            "bulk" => ingest::bulk(&mut report, &tls, size).await?,
            "rush" => rush::run(&mut report, &tls, size).await?,
            "query" => federation::query(&mut report, size).await?,
            "freshness" => federation::freshness(&mut report, size).await?,
            "catchup" => federation::catch_up(&mut report, size).await?,
            "wire" => federation::wire(&mut report, size).await?,
            "footprint" => footprint::run(&mut report, size).await?,
            _ => {}
        }
        println!("  ({name} took {:.1} s)", started.elapsed().as_secs_f64());
    }
    Ok(report)
}

/// The committer's counters on a node's metrics port (`[metrics] listen`), read before and after a load: how the
/// load's time divides between the single writer's work and its flushes (the profile behind the ingest figures).
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitterProbe {
    pub jobs: f64,
    pub flushes: f64,
    pub flush_seconds: f64,
    pub busy_seconds: f64,
    pub at: Option<Instant>,
}

impl CommitterProbe {
    /// Reads the counters from `GET /metrics` on `port`.
    pub async fn read(port: u16) -> anyhow::Result<CommitterProbe> {
        let (_, body) = crate::http_get(port, "/metrics").await?;
        let value = |series: &str| {
            crate::metric_value(&body, series).ok_or_else(|| anyhow::anyhow!("no {series} on the metrics port"))
        };
        Ok(CommitterProbe {
            jobs: value("ecovol_committer_jobs_total")?,
            flushes: value("ecovol_committer_flushes_total")?,
            flush_seconds: value("ecovol_committer_flush_seconds_total")?,
            busy_seconds: value("ecovol_committer_busy_seconds_total")?,
            at: Some(Instant::now()),
        })
    }

    /// What happened between `earlier` and `self`, as a note: writes per flush, mean flush, and the share of the
    /// wall-clock time the writer was busy and the flusher was flushing.
    pub fn since(&self, earlier: &CommitterProbe) -> String {
        let wall = match (self.at, earlier.at) {
            (Some(now), Some(then)) => now.duration_since(then).as_secs_f64().max(1e-9),
            _ => return String::new(),
        };
        let flushes = (self.flushes - earlier.flushes).max(1.0);
        format!(
            "{:.1} writes/flush, flush mean {:.2} ms, writer busy {:.0} %, flusher busy {:.0} %",
            (self.jobs - earlier.jobs) / flushes,
            (self.flush_seconds - earlier.flush_seconds) * 1e3 / flushes,
            (self.busy_seconds - earlier.busy_seconds) * 100.0 / wall,
            (self.flush_seconds - earlier.flush_seconds) * 100.0 / wall,
        )
    }
}
