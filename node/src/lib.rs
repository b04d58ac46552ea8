//! ecovol-node: one office's node of the ecovol federation — its store, domain, gRPC services and command line.

pub mod account;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod commit;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod error;
pub mod hours;
pub mod page;
pub mod project;
pub mod registry;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod validate;
pub mod wire;
