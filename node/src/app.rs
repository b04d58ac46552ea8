//! The node's shared state: configuration, store, committer and keys, opened once at start-up and shared by every
//! service behind an `Arc`.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::commit::Committer;
use crate::config::Config;
use crate::crypto::NodeKeys;
use crate::federation::Federation;
use crate::federation::outbox::Outbox;
use crate::store::{SledStore, Store};

/// Current schema version of the store. A binary refuses a store of a newer version and migrates an older one:
/// 1 → 2 adds what the federation keeps (`federation::backfill`).
pub const SCHEMA_VERSION: u32 = 2;

/// Everything a request handler needs.
pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub committer: Committer,
    pub keys: NodeKeys,
    pub started_at: DateTime<Utc>,
    /// Links to the parent and children (a stand-alone node has neither).
    pub federation: Federation,
}

/// Why the node could not open its state.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Key(#[from] crate::crypto::CryptoError),
    #[error("{0}")]
    Schema(String),
    #[error("federation: {0}")]
    Federation(String),
}

impl App {
    /// Opens the store and the key named in `config`, and starts the committer.
    pub fn open(config: Config) -> Result<Arc<App>, OpenError> {
        let keys = NodeKeys::load(&config.store.key_file)?;
        let store: Arc<dyn Store> = Arc::new(SledStore::open_with(
            &config.store.path,
            config.store.cache_capacity_mb << 20,
            config.store.durability,
        )?);
        let found = check_schema(&*store)?;
        let code = config.division_code();
        let outbox = match &config.federation {
            Some(section) => {
                let key = crate::federation::load_volunteer_key(&section.volunteer_key_file)
                    .map_err(|error| OpenError::Federation(format!("federation.volunteer_key_file: {error}")))?;
                Outbox::new(code, section.parent_code(code).is_some(), section.backlog_entries_max, &key)
            }
            None => Outbox::standalone(code),
        };
        if found < SCHEMA_VERSION {
            let done = crate::federation::backfill::run(&*store, &keys, &outbox, SCHEMA_VERSION).map_err(|error| {
                OpenError::Schema(format!("migrating the store to schema {SCHEMA_VERSION}: {error}"))
            })?;
            tracing::info!(
                from = found,
                to = SCHEMA_VERSION,
                volunteers = done.volunteers,
                cells = done.cells,
                entries = done.entries,
                "store migrated: federation keys, own figures and (if linked) entries for the parent"
            );
        }
        let announced = crate::federation::backfill::announce(&*store, &outbox)
            .map_err(|error| OpenError::Federation(format!("queueing this node's history for its parent: {error}")))?;
        if announced > 0 {
            tracing::info!(entries = announced, "first start with a parent: this node's history is queued for it");
        }
        let committer = Committer::start_with_outbox(
            store.clone(),
            config.store.queue_max,
            config.store.group_commit_max,
            Arc::new(outbox),
        );
        let federation =
            Federation::open(&config, &*store).map_err(|error| OpenError::Federation(error.to_string()))?;
        Ok(Arc::new(App { config, store, committer, keys, started_at: Utc::now(), federation }))
    }

    pub fn node_code(&self) -> &str {
        &self.config.node.code
    }
}

/// Stamps a new store with the schema version; refuses a store written by a newer release. Returns the version
/// found (the current one for a new store).
fn check_schema(store: &dyn Store) -> Result<u32, OpenError> {
    let key = b"meta/schema_version";
    match store.get(key)? {
        None => {
            store.apply(&[(key.to_vec(), Some(SCHEMA_VERSION.to_string().into_bytes()))])?;
            store.flush()?;
            Ok(SCHEMA_VERSION)
        }
        Some(value) => {
            let found: u32 = std::str::from_utf8(&value)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| OpenError::Schema("meta/schema_version is corrupt".into()))?;
            if found > SCHEMA_VERSION {
                return Err(OpenError::Schema(format!(
                    "the store has schema version {found}, newer than this release understands ({SCHEMA_VERSION}): \
                     run a newer ecovol, or restore a backup made by this release"
                )));
            }
            Ok(found)
        }
    }
}
