//! Node configuration: one `Config` per node, from built-in defaults < a TOML file < `ECOVOL__SECTION__KEY`
//! environment variables. Unknown keys are refused; `validate` names the key of every broken setting.
//!
//! Relative paths in the file are taken relative to the file's own folder, so a config and its data can move
//! together.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::validate::{DivisionCode, DivisionLevel};

/// A node's whole configuration. See `deploy/node.example.toml` for every key with its meaning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who this node is.
    pub node: NodeSection,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub office: OfficeSection,
    #[serde(default)]
    pub audit: AuditSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub hours: HoursSection,
    #[serde(default)]
    pub stars: StarsSection,
    #[serde(default)]
    pub log: LogSection,
    /// Prometheus metrics on a port of their own; off unless `listen` is set.
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default)]
    pub plans: PlansSection,
    /// The web console for office staff (docs/CONSOLE.md); off unless `listen` is set.
    #[serde(default)]
    pub console: ConsoleSection,
    /// Links to the parent and children; absent on a node that stands alone.
    #[serde(default)]
    pub federation: Option<FederationSection>,
    /// Where this config came from (the file and the `ECOVOL__…` variables), so SIGHUP can read it again
    /// (`Config::reload`); None for a config that was not loaded from a file.
    #[serde(skip)]
    pub source: Option<ConfigSource>,
}

/// The sources a config was loaded from: its file and the `ECOVOL__…` environment of that moment.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub file: PathBuf,
    pub env: Vec<(String, String)>,
}

/// `[plans]`: joint work plans.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlansSection {
    /// A metric target short of its pro-rata value once this share of the plan's period has passed is flagged
    /// "behind" (0.0–1.0).
    pub behind_after_fraction: f64,
}

impl Default for PlansSection {
    fn default() -> Self {
        Self { behind_after_fraction: 0.5 }
    }
}

/// `[federation]`: this node's place in the federation (see docs/FEDERATION.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSection {
    /// PEM of the federation CA: every node certificate of the federation is signed by it.
    pub ca_file: PathBuf,
    /// PEM certificate of this node, naming its division code and level (`ecovol certs node`).
    pub cert_file: PathBuf,
    /// PEM private key of this node.
    pub key_file: PathBuf,
    /// The federation-wide key of volunteer pseudonyms (`ecovol certs federation-key`): the same file on every node.
    pub volunteer_key_file: PathBuf,
    /// Address children dial (`host:port`); empty for a node that takes no children (a county).
    #[serde(default)]
    pub listen: String,
    /// The parent's federation address (`https://host:port`); empty on the top node.
    #[serde(default)]
    pub parent: String,
    /// The parent's division code; defaults to the parent by GB/T 2260 (a county's city, a city's province, a
    /// province-administered unit's province). Set it when the parent is another office.
    #[serde(default)]
    pub parent_code: String,
    /// Codes accepted as children besides those the GB/T 2260 rule places directly under this node.
    #[serde(default)]
    pub children: Vec<String>,
    /// Nodes refused on the federation port although their certificate is valid: a division code ("320105"), or
    /// the SHA-256 of a certificate (64 hex characters, as `ecovol certs inspect` prints it). A revoked node.
    /// Reloaded on SIGHUP.
    #[serde(default)]
    pub denied: DenyList,
    /// Entries per batch sent to the parent.
    #[serde(default = "defaults::batch_entries_max")]
    pub batch_entries_max: u64,
    /// Unacknowledged entries at which the node raises its alarm and refuses new changes until the parent takes
    /// entries again (nothing is ever dropped).
    #[serde(default = "defaults::backlog_entries_max")]
    pub backlog_entries_max: u64,
    /// How long to wait for the parent's answer to a batch before sending it again.
    #[serde(default = "defaults::ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    /// Back-off after a failed exchange: starts here, doubles, stops growing at the maximum.
    #[serde(default = "defaults::retry_backoff_ms_min")]
    pub retry_backoff_ms_min: u64,
    #[serde(default = "defaults::retry_backoff_ms_max")]
    pub retry_backoff_ms_max: u64,
    /// How often the links look for work when nothing wakes them (pulling messages from the parent too).
    #[serde(default = "defaults::poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// A child silent for longer is shown as stale, with a warning in the log.
    #[serde(default = "defaults::stale_after_ms")]
    pub stale_after_ms: u64,
    /// Compression of the messages on this node's federation links (batches up, messages down): "gzip"
    /// (default), "zstd" (as small, several times less CPU; the parent must be of this release or later) or "none".
    /// A parent takes all three, so either side may change it alone.
    #[serde(default)]
    pub compression: LinkCompression,
}

/// `federation.compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkCompression {
    None,
    #[default]
    Gzip,
    Zstd,
}

/// `federation.denied`: the one setting a running node changes (SIGHUP, `server`'s reload replaces it). Every
/// clone of a config shares it, so the change reaches whoever holds the config; all else in a `Config` is fixed
/// once loaded.
#[derive(Debug, Clone, Default)]
pub struct DenyList(std::sync::Arc<std::sync::RwLock<Vec<String>>>);

impl DenyList {
    pub fn new(entries: Vec<String>) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(entries)))
    }

    /// The entries now.
    pub fn entries(&self) -> Vec<String> {
        self.0.read().map(|entries| entries.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Replaces the entries (validated by the caller, as `Config::validate` does).
    pub fn replace(&self, entries: Vec<String>) {
        match self.0.write() {
            Ok(mut current) => *current = entries,
            Err(poisoned) => *poisoned.into_inner() = entries,
        }
    }
}

impl<'de> Deserialize<'de> for DenyList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(deserializer).map(DenyList::new)
    }
}

mod defaults {
    pub fn batch_entries_max() -> u64 {
        500
    }
    pub fn backlog_entries_max() -> u64 {
        1_000_000
    }
    pub fn ack_timeout_ms() -> u64 {
        15_000
    }
    pub fn retry_backoff_ms_min() -> u64 {
        200
    }
    pub fn retry_backoff_ms_max() -> u64 {
        30_000
    }
    pub fn poll_interval_ms() -> u64 {
        1_000
    }
    pub fn stale_after_ms() -> u64 {
        300_000
    }
}

impl FederationSection {
    /// The parent's division code: configured, or the GB/T 2260 parent of `code`.
    pub fn parent_code(&self, code: DivisionCode) -> Option<DivisionCode> {
        if self.parent.is_empty() {
            return None;
        }
        if self.parent_code.is_empty() { code.parent() } else { DivisionCode::parse(&self.parent_code).ok() }
    }

    /// True if `federation.denied` lists the node `code` or the certificate whose SHA-256 (hex) is `cert_sha256`.
    pub fn denies(&self, code: DivisionCode, cert_sha256: &str) -> bool {
        let code = code.to_string();
        let entries = self.denied.entries();
        entries.iter().any(|entry| entry.trim() == code || entry.trim().eq_ignore_ascii_case(cert_sha256))
    }

    /// Codes listed in `children`, parsed (validated at load).
    pub fn listed_children(&self) -> Vec<DivisionCode> {
        self.children.iter().filter_map(|code| DivisionCode::parse(code).ok()).collect()
    }

    fn problems(&self, code: Option<DivisionCode>) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.listen.is_empty() && self.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!("federation.listen: {:?} is not an address like 0.0.0.0:7401", self.listen));
        }
        if !self.parent.is_empty() && !(self.parent.starts_with("https://")) {
            problems.push(format!("federation.parent: {:?} must be an https:// address", self.parent));
        }
        if !self.parent_code.is_empty() {
            match DivisionCode::parse(&self.parent_code) {
                Err(error) => problems.push(format!("federation.parent_code: {error}")),
                Ok(parent) if Some(parent) == code => {
                    problems.push("federation.parent_code: a node cannot be its own parent".into())
                }
                Ok(_) => {}
            }
        }
        if !self.parent.is_empty()
            && self.parent_code.is_empty()
            && let Some(code) = code
            && code.parent().is_none()
        {
            problems.push("federation.parent_code: required, a province has no parent by GB/T 2260".into());
        }
        for (index, child) in self.children.iter().enumerate() {
            if let Err(error) = DivisionCode::parse(child) {
                problems.push(format!("federation.children[{index}]: {error}"));
            }
        }
        for (index, entry) in self.denied.entries().iter().enumerate() {
            let entry = entry.trim();
            let certificate = entry.len() == 64 && entry.bytes().all(|b| b.is_ascii_hexdigit());
            if !certificate && DivisionCode::parse(entry).is_err() {
                problems.push(format!(
                    "federation.denied[{index}]: {entry:?} is neither a division code nor a certificate SHA-256 \
                     (64 hex characters)"
                ));
            }
        }
        if !(1..=10_000).contains(&self.batch_entries_max) {
            problems.push("federation.batch_entries_max: must be between 1 and 10000".into());
        }
        if self.backlog_entries_max < self.batch_entries_max {
            problems.push("federation.backlog_entries_max: must be at least federation.batch_entries_max".into());
        }
        if self.ack_timeout_ms < 100 {
            problems.push("federation.ack_timeout_ms: must be at least 100".into());
        }
        if self.retry_backoff_ms_min == 0 || self.retry_backoff_ms_max < self.retry_backoff_ms_min {
            problems.push(
                "federation.retry_backoff_ms_min: must be at least 1 and at most federation.retry_backoff_ms_max"
                    .into(),
            );
        }
        if !(10..=600_000).contains(&self.poll_interval_ms) {
            problems.push("federation.poll_interval_ms: must be between 10 and 600000".into());
        }
        if self.stale_after_ms < 1_000 {
            problems.push("federation.stale_after_ms: must be at least 1000".into());
        }
        problems
    }
}

/// `[node]`: the office's identity in the federation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// GB/T 2260 division code of the office, e.g. "330106".
    pub code: String,
    /// province, city or county; must agree with the code.
    pub level: Level,
    /// Display name, e.g. "西湖区生态环境局".
    pub name: String,
}

/// A node's level in the federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Province,
    City,
    County,
}

/// `[store]`: where the data lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// Folder of the sled database.
    pub path: PathBuf,
    /// The node key file (64 hex characters) that encrypts identity and phone numbers at rest.
    /// Create it once with `ecovol admin keygen FILE`; back it up apart from the data.
    pub key_file: PathBuf,
    /// sled page cache, MiB.
    pub cache_capacity_mb: u64,
    /// Most writes sharing one flush (group commit).
    pub group_commit_max: usize,
    /// Most writes waiting for the committer before callers are held back.
    pub queue_max: usize,
    /// Folder where `ecovol admin backup` (gRPC `NodeService.CreateBackup`) writes snapshots of the running node.
    pub backup_dir: PathBuf,
    /// What an acknowledged write survives: "power-loss" (default: every group commit ends in `fdatasync`) or
    /// "process-crash" (sled's flush only; faster, but the last writes may be lost when the machine loses power).
    pub durability: crate::store::Durability,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data"),
            key_file: PathBuf::from("node.key"),
            cache_capacity_mb: 64,
            group_commit_max: 1024,
            queue_max: 8192,
            backup_dir: PathBuf::from("backups"),
            durability: crate::store::Durability::default(),
        }
    }
}

/// `[office]`: the API for office clients (CLI, web console, any gRPC client).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfficeSection {
    /// Address to listen on, e.g. "127.0.0.1:7070" or "0.0.0.0:7070".
    pub listen: String,
    /// TLS for office clients; without it the port speaks plain HTTP/2, which is only allowed on loopback.
    pub tls: Option<TlsSection>,
    /// A request still running after this long is cancelled with DeadlineExceeded.
    pub request_timeout_ms: u64,
    /// Largest request accepted, bytes; larger ones are refused with OutOfRange.
    pub message_bytes_max: usize,
    /// Most requests served at once per connection.
    pub concurrency_per_connection_max: usize,
    /// On SIGTERM, how long in-flight requests may take to finish before the remaining connections are closed.
    pub shutdown_grace_ms: u64,
}

impl Default for OfficeSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7070".into(),
            tls: None,
            request_timeout_ms: 10_000,
            message_bytes_max: 4 << 20,
            concurrency_per_connection_max: 256,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// `[office.tls]`: server certificate for office clients, and optionally a CA for client certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain of this node.
    pub cert_file: PathBuf,
    /// PEM private key of this node.
    pub key_file: PathBuf,
    /// PEM CA whose client certificates may authenticate (mapped to accounts by SHA-256); optional.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// `[audit]`: the audit trail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Entries younger than this are never removed. MLPS level 3 asks for at least 180 days.
    pub retention_days: u32,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self { retention_days: 365 }
    }
}

/// `[limits]`: bounds on what one request may ask for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Items per page when the request does not say.
    pub page_size_default: u32,
    /// Most items per page; larger requests are lowered to this.
    pub page_size_max: u32,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self { page_size_default: 50, page_size_max: 500 }
    }
}

/// `[hours]`: how service hours are counted. Rounding rules vary by region (MCA Order 67 leaves them to the
/// organiser), so they are configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HoursSection {
    /// Credited minutes are the service interval rounded to the nearest multiple of this, halves rounded up
    /// (15: to the quarter hour). One of 1, 5, 6, 10, 15, 30, 60.
    pub rounding_minutes: u32,
    /// A record may start before the project's start, or end after its end, by at most this many minutes.
    pub window_tolerance_minutes: u32,
    /// Most hours one volunteer may serve in one calendar day (China time) over all their records; between 1
    /// and 24.
    pub day_hours_max: u32,
    /// Most rows in one bulk recording call.
    pub bulk_rows_max: u32,
}

/// The values `hours.rounding_minutes` may take.
pub const ROUNDING_MINUTES_ALLOWED: [u32; 7] = [1, 5, 6, 10, 15, 30, 60];

impl Default for HoursSection {
    fn default() -> Self {
        Self { rounding_minutes: 15, window_tolerance_minutes: 60, day_hours_max: 24, bulk_rows_max: 1000 }
    }
}

/// `[stars]`: the star rating (星级志愿者) by cumulative confirmed hours. The common scale (MCA practice, China
/// Association of Social Work) is 100 / 300 / 600 / 1000 / 1500 hours; regions differ, and so does the level of
/// office that certifies each star (e.g. Fujian: 1–2★ county, 3–4★ city, 5★ province), so both are configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StarsSection {
    /// Confirmed hours needed for star 1, 2, …: whole hours, strictly increasing, 1 to 10 entries.
    pub thresholds_hours: Vec<u32>,
    /// The level that certifies each star ("province", "city" or "county"), one per threshold.
    pub certifying_levels: Vec<Level>,
}

/// Most stars a scale may have.
pub const STARS_MAX: usize = 10;

impl Default for StarsSection {
    fn default() -> Self {
        Self {
            thresholds_hours: vec![100, 300, 600, 1000, 1500],
            certifying_levels: vec![Level::County, Level::County, Level::City, Level::City, Level::Province],
        }
    }
}

impl StarsSection {
    /// The broken rules of this section, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let thresholds = &self.thresholds_hours;
        if thresholds.is_empty() || thresholds.len() > STARS_MAX {
            problems.push(format!("stars.thresholds_hours: must have 1 to {STARS_MAX} entries"));
        }
        if thresholds.first().is_some_and(|first| *first == 0) {
            problems.push("stars.thresholds_hours: must be at least 1 hour".into());
        }
        if thresholds.windows(2).any(|pair| pair[0] >= pair[1]) {
            problems.push("stars.thresholds_hours: must be strictly increasing".into());
        }
        if self.certifying_levels.len() != thresholds.len() {
            problems.push(format!(
                "stars.certifying_levels: must have one level per threshold ({}), got {}",
                thresholds.len(),
                self.certifying_levels.len()
            ));
        }
        problems
    }
}

/// `[metrics]`: Prometheus text format on `GET /metrics` (plain HTTP, no personal data: counters, latencies,
/// backlogs, ages). Bind it to an address only the monitoring system reaches.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Address to serve metrics on, e.g. "127.0.0.1:9464" or "0.0.0.0:9464"; empty: no metrics port.
    pub listen: String,
}

/// `[console]`: the web console (docs/CONSOLE.md). Served over HTTPS with the office certificate when
/// `[office.tls]` is set (a client certificate of the office client CA logs in without a token), plain HTTP
/// otherwise, which `validate` allows on loopback addresses only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    /// Address to serve the console on, e.g. "127.0.0.1:8080"; empty: no console.
    pub listen: String,
    /// Seconds a console session lasts after login (default 28800, eight hours); then the user logs in again.
    pub session_ttl_s: u64,
}

impl Default for ConsoleSection {
    fn default() -> Self {
        Self { listen: String::new(), session_ttl_s: 28_800 }
    }
}

/// `[log]`: what the node writes to standard error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// "human" or "json".
    pub format: LogFormat,
    /// tracing filter, e.g. "info" or "ecovol_node=debug,info".
    pub filter: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self { format: LogFormat::Human, filter: "info".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot load configuration: {0}")]
    Load(String),
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// Minimum audit retention (MLPS level 3: at least six months).
pub const AUDIT_RETENTION_DAYS_MIN: u32 = 180;

impl Config {
    /// Loads `path` (if given) and the `ECOVOL__…` environment, then validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// As `load`, with the environment given (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml).required(true));
        }
        let env: config::Map<String, String> = env.into_iter().filter(|(key, _)| key.starts_with("ECOVOL__")).collect();
        let source = path.map(|file| ConfigSource {
            file: file.to_path_buf(),
            env: env.iter().map(|(key, value)| (key.clone(), value.clone())).collect(),
        });
        builder = builder.add_source(
            config::Environment::with_prefix("ECOVOL")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let mut config: Config = builder
            .build()
            .and_then(|built| built.try_deserialize())
            .map_err(|error| ConfigError::Load(error.to_string()))?;
        if let Some(base) = path.and_then(Path::parent) {
            config.resolve_paths(base);
        }
        config.validate()?;
        config.source = source;
        Ok(config)
    }

    /// Loads this config again from the same file and environment (SIGHUP, see `server`); None if it was not
    /// loaded from a file.
    pub fn reload(&self) -> Option<Result<Config, ConfigError>> {
        let source = self.source.as_ref()?;
        Some(Self::load_with_env(Some(&source.file), source.env.clone()))
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.store.path);
        resolve(&mut self.store.key_file);
        resolve(&mut self.store.backup_dir);
        if let Some(federation) = &mut self.federation {
            resolve(&mut federation.ca_file);
            resolve(&mut federation.cert_file);
            resolve(&mut federation.key_file);
            resolve(&mut federation.volunteer_key_file);
        }
        if let Some(tls) = &mut self.office.tls {
            resolve(&mut tls.cert_file);
            resolve(&mut tls.key_file);
            if let Some(ca) = &mut tls.client_ca_file {
                resolve(ca);
            }
        }
    }

    /// Checks every setting; the error lists each broken one by its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        match DivisionCode::parse(&self.node.code) {
            Err(error) => problems.push(format!("node.code: {error}")),
            Ok(code) => {
                let expected = match code.level() {
                    DivisionLevel::Province => Level::Province,
                    DivisionLevel::City => Level::City,
                    DivisionLevel::County => Level::County,
                };
                if expected != self.node.level {
                    problems.push(format!(
                        "node.level: {:?} does not match node.code {} (a {:?} code)",
                        self.node.level, self.node.code, expected
                    ));
                }
            }
        }
        if self.node.name.trim().is_empty() || self.node.name.chars().count() > 100 {
            problems.push("node.name: must be 1 to 100 characters".into());
        }
        if self.store.cache_capacity_mb == 0 {
            problems.push("store.cache_capacity_mb: must be at least 1".into());
        }
        if self.store.group_commit_max == 0 || self.store.group_commit_max > 100_000 {
            problems.push("store.group_commit_max: must be between 1 and 100000".into());
        }
        if self.store.queue_max == 0 {
            problems.push("store.queue_max: must be at least 1".into());
        }
        if self.store.backup_dir.as_os_str().is_empty() {
            problems.push("store.backup_dir: must name a folder".into());
        }
        if !self.metrics.listen.is_empty() && self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "metrics.listen: {:?} is not an address like 127.0.0.1:9464 (empty: no metrics port)",
                self.metrics.listen
            ));
        }
        if !self.console.listen.is_empty() {
            match self.console.listen.parse::<std::net::SocketAddr>() {
                Err(_) => problems.push(format!(
                    "console.listen: {:?} is not an address like 127.0.0.1:8080 (empty: no console)",
                    self.console.listen
                )),
                Ok(address) if self.office.tls.is_none() && !address.ip().is_loopback() => problems.push(
                    "console.listen: a non-loopback address needs [office.tls] (tokens and identity numbers travel \
                     on this port)"
                        .into(),
                ),
                Ok(_) => {}
            }
        }
        if self.console.session_ttl_s == 0 || self.console.session_ttl_s > 7 * 86_400 {
            problems.push("console.session_ttl_s: must be between 1 and 604800 (a week)".into());
        }
        match self.office.listen.parse::<std::net::SocketAddr>() {
            Err(_) => problems.push(format!("office.listen: {:?} is not an address like 127.0.0.1:7070", self.office.listen)),
            Ok(address) if self.office.tls.is_none() && !address.ip().is_loopback() => problems.push(
                "office.tls: required when office.listen is not a loopback address (identity numbers travel on this port)"
                    .into(),
            ),
            Ok(_) => {}
        }
        if self.office.request_timeout_ms == 0 {
            problems.push("office.request_timeout_ms: must be at least 1".into());
        }
        if self.office.message_bytes_max < 1024 || self.office.message_bytes_max > 64 << 20 {
            problems.push("office.message_bytes_max: must be between 1024 and 67108864".into());
        }
        if self.office.shutdown_grace_ms > 600_000 {
            problems.push("office.shutdown_grace_ms: must be at most 600000 (ten minutes)".into());
        }
        if self.office.concurrency_per_connection_max == 0 {
            problems.push("office.concurrency_per_connection_max: must be at least 1".into());
        }
        if self.audit.retention_days < AUDIT_RETENTION_DAYS_MIN {
            problems.push(format!(
                "audit.retention_days: must be at least {AUDIT_RETENTION_DAYS_MIN} (MLPS level 3 keeps audit records six months)"
            ));
        }
        if self.limits.page_size_default == 0 || self.limits.page_size_default > self.limits.page_size_max {
            problems.push("limits.page_size_default: must be between 1 and limits.page_size_max".into());
        }
        if self.limits.page_size_max == 0 || self.limits.page_size_max > 10_000 {
            problems.push("limits.page_size_max: must be between 1 and 10000".into());
        }
        if !ROUNDING_MINUTES_ALLOWED.contains(&self.hours.rounding_minutes) {
            problems.push("hours.rounding_minutes: must be one of 1, 5, 6, 10, 15, 30, 60".into());
        }
        if self.hours.window_tolerance_minutes > 7 * 24 * 60 {
            problems.push("hours.window_tolerance_minutes: must be at most 10080 (a week)".into());
        }
        if !(1..=24).contains(&self.hours.day_hours_max) {
            problems.push("hours.day_hours_max: must be between 1 and 24".into());
        }
        if !(1..=100_000).contains(&self.hours.bulk_rows_max) {
            problems.push("hours.bulk_rows_max: must be between 1 and 100000".into());
        }
        problems.extend(self.stars.problems());
        if !(0.0..=1.0).contains(&self.plans.behind_after_fraction) {
            problems.push("plans.behind_after_fraction: must be between 0.0 and 1.0".into());
        }
        if let Some(federation) = &self.federation {
            problems.extend(federation.problems(DivisionCode::parse(&self.node.code).ok()));
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(problems)) }
    }

    /// The node's division code (validated at load).
    pub fn division_code(&self) -> DivisionCode {
        DivisionCode::parse(&self.node.code).unwrap_or_else(|_| unreachable!("validated at load"))
    }

    pub fn page_limits(&self) -> crate::page::PageLimits {
        crate::page::PageLimits {
            size_default: self.limits.page_size_default as usize,
            size_max: self.limits.page_size_max as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml_text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, toml_text).unwrap();
        Config::load_with_env(Some(&path), env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    const MINIMAL: &str = "[node]\ncode = \"330106\"\nlevel = \"county\"\nname = \"西湖区\"\n";

    #[test]
    fn a_minimal_file_gets_laptop_defaults_and_paths_beside_it() {
        let config = load(MINIMAL, &[]).unwrap();
        assert_eq!(config.office.listen, "127.0.0.1:7070");
        assert!(config.store.path.ends_with("data") && config.store.path.is_absolute());
        assert_eq!(config.audit.retention_days, 365);
    }

    #[test]
    fn environment_overrides_the_file() {
        let config = load(
            MINIMAL,
            &[
                ("ECOVOL__OFFICE__LISTEN", "127.0.0.1:9999"),
                ("ECOVOL__LIMITS__PAGE_SIZE_MAX", "20"),
                ("ECOVOL__LIMITS__PAGE_SIZE_DEFAULT", "10"),
            ],
        )
        .unwrap();
        assert_eq!(config.office.listen, "127.0.0.1:9999");
        assert_eq!(config.limits.page_size_max, 20);
    }

    #[test]
    fn unknown_keys_are_refused_in_the_file_and_the_environment() {
        let error = load(&format!("{MINIMAL}[store]\npaht = \"x\"\n"), &[]).unwrap_err().to_string();
        assert!(error.contains("paht"), "{error}");
        let error = load(MINIMAL, &[("ECOVOL__OFFICE__LISTNE", "x")]).unwrap_err().to_string();
        assert!(error.contains("listne"), "{error}");
    }

    #[test]
    fn the_documented_example_config_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/node.example.toml");
        let config = Config::load_with_env(Some(&path), std::iter::empty()).unwrap();
        assert_eq!(config.node.code, "330106");
        assert_eq!(config.node.level, Level::County);
        assert_eq!(config.audit.retention_days, 365);
        assert!(config.office.tls.is_none());
    }

    #[test]
    fn the_star_scale_defaults_to_the_common_one_and_is_checked() {
        let config = load(MINIMAL, &[]).unwrap();
        assert_eq!(config.stars.thresholds_hours, vec![100, 300, 600, 1000, 1500]);
        assert_eq!(config.stars.certifying_levels.len(), 5);
        let check = |section: &str, expected: &[&str]| {
            let result = load(&format!("{MINIMAL}[stars]\n{section}"), &[]);
            if expected.is_empty() {
                assert!(result.is_ok(), "{section}: {result:?}");
            } else {
                let error = result.unwrap_err().to_string();
                for rule in expected {
                    assert!(error.contains(rule), "{section}: {rule} missing in {error}");
                }
            }
        };
        check("thresholds_hours = [1, 2]\ncertifying_levels = [\"county\", \"province\"]\n", &[]);
        check("thresholds_hours = []\ncertifying_levels = []\n", &["1 to 10 entries"]);
        check("thresholds_hours = [100, 100]\ncertifying_levels = [\"county\", \"city\"]\n", &["strictly increasing"]);
        check("thresholds_hours = [0, 5]\ncertifying_levels = [\"county\", \"city\"]\n", &["at least 1 hour"]);
        check("thresholds_hours = [1, 2, 3]\ncertifying_levels = [\"county\"]\n", &["stars.certifying_levels"]);
        check(
            &format!(
                "thresholds_hours = {:?}\ncertifying_levels = {:?}\n",
                (1..=11).collect::<Vec<u32>>(),
                ["county"; 11]
            ),
            &["1 to 10 entries"],
        );
        check("thresholds_hours = [1]\ncertifying_levels = [\"town\"]\n", &["town"]);
    }

    #[test]
    fn metrics_backups_and_the_deny_list_have_defaults_and_are_checked() {
        let config = load(MINIMAL, &[]).unwrap();
        assert!(config.metrics.listen.is_empty(), "no metrics port unless asked");
        assert!(config.store.backup_dir.ends_with("backups") && config.store.backup_dir.is_absolute());
        let error = load(&format!("{MINIMAL}[metrics]\nlisten = \"nowhere\"\n"), &[]).unwrap_err().to_string();
        assert!(error.contains("metrics.listen"), "{error}");
        let federation = "[federation]\nca_file = \"ca.pem\"\ncert_file = \"n.pem\"\nkey_file = \"n.key\"\n\
                          volunteer_key_file = \"f.key\"\n";
        let sha = "AB".repeat(32);
        let error = load(&format!("{MINIMAL}{federation}denied = [\"320105\", \"{sha}\", \"bad\"]\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("federation.denied[2]") && !error.contains("denied[1]"), "{error}");
        let config = load(&format!("{MINIMAL}{federation}denied = [\"320105\", \"{sha}\"]\n"), &[]).unwrap();
        let section = config.federation.unwrap();
        assert!(section.denies(DivisionCode::parse("320105").unwrap(), "00"));
        assert!(section.denies(DivisionCode::parse("320106").unwrap(), &"ab".repeat(32)), "hex in any case");
        assert!(!section.denies(DivisionCode::parse("320106").unwrap(), &"cd".repeat(32)));
    }

    #[test]
    fn validation_names_every_broken_key() {
        let text = "[node]\ncode = \"330100\"\nlevel = \"county\"\nname = \"\"\n[audit]\nretention_days = 30\n[office]\nlisten = \"0.0.0.0:7070\"\n";
        let error = load(text, &[]).unwrap_err().to_string();
        for key in ["node.level", "node.name", "audit.retention_days", "office.tls"] {
            assert!(error.contains(key), "{key} missing in {error}");
        }
        let error = load("[node]\ncode = \"99\"\nlevel = \"county\"\nname = \"x\"\n", &[]).unwrap_err().to_string();
        assert!(error.contains("node.code"), "{error}");
    }
}
