//! Logging: tracing to standard error, human-readable by default, JSON for log collectors.
//!
//! Identity and phone numbers never reach a log line: the domain never logs request bodies, and
//! `IdentityNumber`'s `Debug` masks the number.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSection};

/// Installs the global subscriber. `force_json` (the `--log-json` flag) overrides the config's format.
/// `RUST_LOG`, if set, overrides the config's filter. Safe to call twice (the second call does nothing).
pub fn init(log: &LogSection, force_json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if force_json || log.format == LogFormat::Json {
        builder.json().with_current_span(false).try_init()
    } else {
        builder.try_init()
    };
}
