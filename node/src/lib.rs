//! ecovol-node: one office's node of the ecovol federation — its store, domain, gRPC services and command line.

/// The memory allocator of ecovol's binaries (`ecovol`, `ecovol-bench`): mimalloc. With glibc's malloc a quarter of
/// the single writer's time went to allocating and freeing (sled copies tree nodes on every scan); see
/// docs/BENCHMARKS.md.
pub use mimalloc::MiMalloc as Allocator;

pub mod account;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod campaign;
pub mod certificate;
pub mod cli;
pub mod commit;
pub mod config;
pub mod console;
pub mod crypto;
pub mod demo;
pub mod error;
pub mod evaluation;
pub mod exchange;
pub mod federation;
pub mod hours;
pub mod metrics;
pub mod page;
pub mod plan;
pub mod project;
pub mod registry;
pub mod server;
pub mod service;
pub mod stars;
pub mod stats;
pub mod store;
pub mod supervision;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod training;
pub mod validate;
pub mod wire;
