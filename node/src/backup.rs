//! Backups: a consistent snapshot of a node's whole store in one file, and restoring it on a stopped node.
//!
//! **Consistency.** On a running node the snapshot is taken by a job of the committer (`create`), the one thread
//! that writes the store: while the job runs no other write happens, so the file holds the store exactly as it
//! was between two writes: every write acknowledged before the backup started, an outbox entry with its change,
//! an audit entry with what it audits. Writes wait while the snapshot is written (they queue, up to
//! `store.queue_max`); reads go on. A stopped node is backed up offline (`write_offline`).
//!
//! **Format** (version 1), written front to back with bounded memory (a 1 MiB buffer, whatever the store's size):
//!
//! ```text
//! header   1024 bytes: a JSON object (`Header`: format, schema version, node code, time, entry count, …),
//!          padded with spaces, ending in '\n'
//! entries  for each key in key order: key length (u32, big endian), key, value length (u32 BE), value
//! end      0xFFFFFFFF, then the checksum: SHA-256( header ‖ SHA-256(entries) ), 32 bytes
//! ```
//!
//! The entry count is known only at the end of the scan: the header's place is reserved and written last, and
//! the checksum covers it through the two-level hash, so the file is written in one pass. The file holds what
//! the store holds (identity and phone numbers sealed with the node key): it is as sensitive as the data folder,
//! and it is readable by its owner only. The node key is not in it; the header carries a keyed check value of
//! it (`key_check`), so a restore with another node's key is refused instead of giving unreadable records.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ring::digest;
use serde::{Deserialize, Serialize};

use crate::app::{App, SCHEMA_VERSION};
use crate::audit::AuditContext;
use crate::auth::{Caller, Role};
use crate::config::Config;
use crate::crypto::NodeKeys;
use crate::error::DomainError;
use crate::store::{SledStore, Store, Write as StoreWrite};

/// The file format this release writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// What the header's `format` field says.
const FORMAT_NAME: &str = "ecovol-backup";
/// Bytes reserved for the header line.
const HEADER_BYTES: usize = 1024;
/// The length that ends the entries.
const END: u32 = u32::MAX;
/// Limits that a key and a value of a sane store keep; a larger length means a corrupt file.
const KEY_BYTES_MAX: u32 = 64 << 10;
const VALUE_BYTES_MAX: u32 = 256 << 20;
/// Buffer of the file writer and reader.
const BUFFER_BYTES: usize = 1 << 20;
/// A restore applies the entries in batches of about this size.
const RESTORE_BATCH_BYTES: usize = 8 << 20;
/// What a backup file is called: `{code}-{time}.ecovol-backup`.
pub const FILE_SUFFIX: &str = ".ecovol-backup";

/// The header of a backup file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always "ecovol-backup".
    pub format: String,
    pub format_version: u32,
    /// The store's schema version (`meta/schema_version`); a newer release migrates an older one at start.
    pub schema_version: u32,
    /// The node the store belongs to.
    pub node_code: String,
    pub created_at: DateTime<Utc>,
    /// Key/value entries in the file.
    pub entries: u64,
    /// Bytes of the entries section.
    pub entry_bytes: u64,
    /// A keyed check value of the node key (not the key): a restore refuses a node key that does not match.
    pub key_check: String,
    /// The ecovol release that wrote the file.
    pub release: String,
}

/// A backup written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    pub entries: u64,
    /// The file's size.
    pub bytes: u64,
    /// The checksum (hex) stored at the end of the file.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    /// How long writing it took (on a running node, how long writes waited).
    pub duration: std::time::Duration,
}

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path} is not a usable backup: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |error| BackupError::Io { path: path.to_path_buf(), message: error.to_string() }
}

fn corrupt(path: &Path, message: impl Into<String>) -> BackupError {
    BackupError::Corrupt { path: path.to_path_buf(), message: message.into() }
}

/// The keyed check value of a node key stored in each backup's header.
pub fn key_check(keys: &NodeKeys) -> String {
    keys.pseudonym("backup key check", "ecovol node key")
}

/// The name of a backup of `code` taken at `time`, e.g. `330106-20261202T083000123Z.ecovol-backup`.
pub fn file_name(code: &str, time: DateTime<Utc>) -> String {
    format!("{code}-{}{FILE_SUFFIX}", time.format("%Y%m%dT%H%M%S%3fZ"))
}

/// The schema version a store carries (0 when it has none: a new, empty store).
fn schema_version_of(store: &dyn Store) -> Result<u32, BackupError> {
    match store.get(b"meta/schema_version")? {
        None => Ok(0),
        Some(value) => std::str::from_utf8(&value)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| BackupError::Refused("meta/schema_version of the store is corrupt".into())),
    }
}

/// Writes every entry of `store` to a new file `out` (refused if it exists): first as `out.partial`, renamed
/// when complete and synced, so a file with the final name is always whole. The store must not change while
/// this runs (a committer job, or a stopped node).
pub fn write_snapshot(
    store: &dyn Store,
    node_code: &str,
    key_check: &str,
    out: &Path,
    now: DateTime<Utc>,
) -> Result<Written, BackupError> {
    if out.exists() {
        return Err(BackupError::Refused(format!("{} exists already; choose another file", out.display())));
    }
    if let Some(parent) = out.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let started = std::time::Instant::now();
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let result = write_file(store, node_code, key_check, &partial, now);
    match result {
        Ok((entries, bytes, sha256)) => {
            std::fs::rename(&partial, out).map_err(io(out))?;
            if let Some(parent) = out.parent().filter(|parent| !parent.as_os_str().is_empty())
                && let Ok(folder) = File::open(parent)
            {
                // The rename is durable once the folder is synced.
                let _ = folder.sync_all();
            }
            let duration = started.elapsed();
            Ok(Written { path: out.to_path_buf(), entries, bytes, sha256, created_at: now, duration })
        }
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(error)
        }
    }
}

/// Writes the file; returns (entries, file bytes, checksum hex).
fn write_file(
    store: &dyn Store,
    node_code: &str,
    key_check: &str,
    path: &Path,
    now: DateTime<Utc>,
) -> Result<(u64, u64, String), BackupError> {
    let schema_version = schema_version_of(store)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(io(path))?;
    let mut writer = BufWriter::with_capacity(BUFFER_BYTES, file);
    writer.write_all(&[b' '; HEADER_BYTES]).map_err(io(path))?;
    let mut hasher = digest::Context::new(&digest::SHA256);
    let (mut entries, mut entry_bytes) = (0u64, 0u64);
    let mut failure: Option<BackupError> = None;
    store.scan(b"", None, &mut |key, value| {
        let record = (|| -> Result<(), BackupError> {
            let (Ok(key_len), Ok(value_len)) = (u32::try_from(key.len()), u32::try_from(value.len())) else {
                return Err(BackupError::Refused(format!("an entry of {} bytes is too large", value.len())));
            };
            for part in [&key_len.to_be_bytes()[..], key, &value_len.to_be_bytes()[..], value] {
                writer.write_all(part).map_err(io(path))?;
                hasher.update(part);
            }
            entries += 1;
            entry_bytes += 8 + key.len() as u64 + value.len() as u64;
            Ok(())
        })();
        match record {
            Ok(()) => ControlFlow::Continue(()),
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    let header = Header {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        schema_version,
        node_code: node_code.into(),
        created_at: now,
        entries,
        entry_bytes,
        key_check: key_check.into(),
        release: env!("CARGO_PKG_VERSION").into(),
    };
    let header = header_bytes(&header)?;
    let checksum = combined_checksum(&header, hasher.finish());
    writer.write_all(&END.to_be_bytes()).map_err(io(path))?;
    writer.write_all(checksum.as_ref()).map_err(io(path))?;
    let mut file = writer.into_inner().map_err(|error| io(path)(error.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io(path))?;
    file.write_all(&header).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    let bytes = HEADER_BYTES as u64 + entry_bytes + 4 + 32;
    Ok((entries, bytes, hex::encode(checksum.as_ref())))
}

/// The header as its 1024 bytes.
fn header_bytes(header: &Header) -> Result<Vec<u8>, BackupError> {
    let mut bytes = serde_json::to_vec(header).map_err(|error| BackupError::Refused(error.to_string()))?;
    if bytes.len() >= HEADER_BYTES {
        return Err(BackupError::Refused("the backup header is too long (node code?)".into()));
    }
    bytes.resize(HEADER_BYTES - 1, b' ');
    bytes.push(b'\n');
    Ok(bytes)
}

fn combined_checksum(header: &[u8], entries: digest::Digest) -> digest::Digest {
    let mut outer = digest::Context::new(&digest::SHA256);
    outer.update(header);
    outer.update(entries.as_ref());
    outer.finish()
}

/// Reads a backup file front to back, calling `visit` with each entry, and checks its structure and checksum at
/// the end: an error after some entries were visited means the file is damaged, and what was visited must be
/// thrown away. Returns the header and the checksum (hex).
pub fn read_entries(
    path: &Path,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), BackupError>,
) -> Result<(Header, String), BackupError> {
    let file = File::open(path).map_err(io(path))?;
    let mut reader = BufReader::with_capacity(BUFFER_BYTES, file);
    let mut header_raw = vec![0u8; HEADER_BYTES];
    reader.read_exact(&mut header_raw).map_err(|_| corrupt(path, "shorter than a backup header"))?;
    let header: Header = serde_json::from_slice(header_raw.trim_ascii_end())
        .map_err(|error| corrupt(path, format!("the header is not readable ({error})")))?;
    if header.format != FORMAT_NAME {
        return Err(corrupt(path, "not an ecovol backup"));
    }
    if header.format_version != FORMAT_VERSION {
        return Err(corrupt(
            path,
            format!("format version {} (this release reads {FORMAT_VERSION})", header.format_version),
        ));
    }
    let mut hasher = digest::Context::new(&digest::SHA256);
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut entries = 0u64;
    loop {
        let mut length = [0u8; 4];
        reader.read_exact(&mut length).map_err(|_| truncated(path, entries))?;
        let key_len = u32::from_be_bytes(length);
        if key_len == END {
            break;
        }
        if key_len > KEY_BYTES_MAX {
            return Err(corrupt(path, format!("entry {} has a key of {key_len} bytes", entries + 1)));
        }
        hasher.update(&length);
        key.resize(key_len as usize, 0);
        reader.read_exact(&mut key).map_err(|_| truncated(path, entries))?;
        hasher.update(&key);
        reader.read_exact(&mut length).map_err(|_| truncated(path, entries))?;
        let value_len = u32::from_be_bytes(length);
        if value_len > VALUE_BYTES_MAX {
            return Err(corrupt(path, format!("entry {} has a value of {value_len} bytes", entries + 1)));
        }
        hasher.update(&length);
        value.resize(value_len as usize, 0);
        reader.read_exact(&mut value).map_err(|_| truncated(path, entries))?;
        hasher.update(&value);
        entries += 1;
        visit(&key, &value)?;
    }
    let mut stored = [0u8; 32];
    reader.read_exact(&mut stored).map_err(|_| corrupt(path, "the checksum at the end is missing"))?;
    if reader.read(&mut [0u8; 1]).map_err(io(path))? != 0 {
        return Err(corrupt(path, "bytes follow the checksum"));
    }
    let computed = combined_checksum(&header_raw, hasher.finish());
    if computed.as_ref() != stored {
        return Err(corrupt(path, "the checksum does not match: the file was changed or damaged"));
    }
    if entries != header.entries {
        return Err(corrupt(path, format!("the header counts {} entries, the file holds {entries}", header.entries)));
    }
    Ok((header, hex::encode(stored)))
}

fn truncated(path: &Path, entries: u64) -> BackupError {
    corrupt(path, format!("truncated after {entries} entries"))
}

/// Checks a backup file whole (structure, checksum); returns its header and checksum.
pub fn verify(path: &Path) -> Result<(Header, String), BackupError> {
    read_entries(path, |_, _| Ok(()))
}

/// Takes a backup of the running node into `store.backup_dir` as a committer job (operators only; audited).
pub async fn create(app: &App, caller: &Caller) -> Result<Written, DomainError> {
    let dir = app.config.store.backup_dir.clone();
    let code = app.config.node.code.clone();
    let check = key_check(&app.keys);
    let job_caller = caller.clone();
    let context = AuditContext::new(caller, "NodeService/CreateBackup", dir.display().to_string());
    let written = app
        .committer
        .write(context, move |txn| {
            job_caller.require_any(&[Role::Operator], "taking a backup")?;
            let path = dir.join(file_name(&code, txn.now()));
            txn.target = path.display().to_string();
            let written = write_snapshot(txn.store(), &code, &check, &path, txn.now())
                .map_err(|error| DomainError::Internal(format!("backup failed: {error}")))?;
            txn.detail = format!("{} entries, {} bytes, sha256 {}", written.entries, written.bytes, written.sha256);
            Ok(written)
        })
        .await?;
    tracing::info!(
        path = %written.path.display(),
        entries = written.entries,
        bytes = written.bytes,
        millis = written.duration.as_millis() as u64,
        "backup written"
    );
    Ok(written)
}

/// Backs up a stopped node's store into `out`.
pub fn write_offline(config: &Config, out: &Path) -> Result<Written, BackupError> {
    let keys = NodeKeys::load(&config.store.key_file).map_err(|error| BackupError::Refused(error.to_string()))?;
    if !config.store.path.is_dir() {
        return Err(BackupError::Refused(format!("there is no store at {}", config.store.path.display())));
    }
    let store = SledStore::open(&config.store.path, config.store.cache_capacity_mb << 20)?;
    write_snapshot(&store, &config.node.code, &key_check(&keys), out, Utc::now())
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub header: Header,
    pub sha256: String,
    pub store_path: PathBuf,
    /// Where the data folder that was there before went (with `force`).
    pub moved_aside: Option<PathBuf>,
    /// The federation epoch the restored node starts (see `federation::outbox`): its parent replaces what it
    /// held of this node with the node's announcement under this epoch.
    pub epoch: u64,
}

/// Restores `from` into the store of the stopped node configured by `config`.
///
/// The file is checked whole first (checksum, node code, schema version, node key); then the entries are written
/// into a new folder beside the data folder, flushed, and the folder is renamed into place, so the data folder
/// is either untouched or fully restored. A data folder that exists and is not empty is refused, unless `force`,
/// which moves it aside (`<path>.before-restore-<time>`), never deletes it. The restored store is marked to start
/// a new federation epoch (docs/OPERATIONS.md "Restoring a node of a federation"): at its next start with a
/// parent it announces its whole state, and the parent replaces what it held of the node, so nothing the node
/// sent after the backup stays counted above it. The restore ends in a later second of the clock than the epoch
/// it chose, so a second restore (even from the same file) chooses a higher one.
pub fn restore(config: &Config, from: &Path, force: bool) -> Result<Restored, BackupError> {
    let (header, sha256) = verify(from)?;
    if header.node_code != config.node.code {
        return Err(BackupError::Refused(format!(
            "{} is a backup of node {}, but the configuration is node {}",
            from.display(),
            header.node_code,
            config.node.code
        )));
    }
    if header.schema_version > SCHEMA_VERSION {
        return Err(BackupError::Refused(format!(
            "{} holds a store of schema version {}, newer than this release understands ({SCHEMA_VERSION}): \
             restore it with the release that made it ({})",
            from.display(),
            header.schema_version,
            header.release
        )));
    }
    let keys = NodeKeys::load(&config.store.key_file).map_err(|error| BackupError::Refused(error.to_string()))?;
    if key_check(&keys) != header.key_check {
        return Err(BackupError::Refused(format!(
            "the node key {} is not the key this backup was made with: put the node.key kept with the backup in \
             place (without it the identity and phone numbers in the backup cannot be read)",
            config.store.key_file.display()
        )));
    }
    let target = config.store.path.clone();
    let occupied = std::fs::read_dir(&target).map(|mut entries| entries.next().is_some()).unwrap_or(false);
    let mut moved_aside = None;
    if occupied && !force {
        return Err(BackupError::Refused(format!(
            "the data folder {} is not empty: restore into an empty one, or pass --force to move it aside",
            target.display()
        )));
    }
    let restoring = PathBuf::from(format!("{}.restoring", target.display()));
    if restoring.exists() {
        // Left by a restore that did not finish: it never became the data folder.
        std::fs::remove_dir_all(&restoring).map_err(io(&restoring))?;
    }
    let epoch = write_store(config, from, &restoring)?;
    // Two restores must never share an epoch: the next one reads a later second of the clock.
    let clock = || crate::federation::outbox::next_epoch(0, Utc::now());
    while (epoch.saturating_sub(1)..=epoch).contains(&clock()) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if target.exists() {
        if occupied {
            let aside =
                PathBuf::from(format!("{}.before-restore-{}", target.display(), Utc::now().format("%Y%m%dT%H%M%SZ")));
            std::fs::rename(&target, &aside).map_err(io(&target))?;
            moved_aside = Some(aside);
        } else {
            std::fs::remove_dir(&target).map_err(io(&target))?;
        }
    }
    std::fs::rename(&restoring, &target).map_err(io(&target))?;
    Ok(Restored { header, sha256, store_path: target, moved_aside, epoch })
}

/// Writes the entries of `from` into a new store at `path`, in bounded batches, marks the new federation epoch the
/// node starts (`fed/new_epoch`, acted on at its next start by `federation::backfill::announce`) and flushes it.
/// Returns the epoch.
fn write_store(config: &Config, from: &Path, path: &Path) -> Result<u64, BackupError> {
    let store = SledStore::open(path, config.store.cache_capacity_mb << 20)?;
    let mut batch: Vec<StoreWrite> = Vec::new();
    let mut batch_bytes = 0usize;
    let result = read_entries(from, |key, value| {
        batch.push((key.to_vec(), Some(value.to_vec())));
        batch_bytes += key.len() + value.len();
        if batch_bytes >= RESTORE_BATCH_BYTES {
            store.apply(&std::mem::take(&mut batch))?;
            batch_bytes = 0;
        }
        Ok(())
    });
    let finished = result.and_then(|_| {
        store.apply(&batch)?;
        let current = match store.get(b"meta/seq/outbox")? {
            Some(value) => String::from_utf8_lossy(&value).parse::<u64>().unwrap_or(0),
            None => 0,
        };
        let epoch = crate::federation::outbox::next_epoch(current, Utc::now());
        store.apply(&[(crate::federation::backfill::NEW_EPOCH_KEY.to_vec(), Some(epoch.to_string().into_bytes()))])?;
        store.flush()?;
        Ok(epoch)
    });
    drop(store);
    match finished {
        Ok(epoch) => Ok(epoch),
        Err(error) => {
            let _ = std::fs::remove_dir_all(path);
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::SledStore;

    fn store_with(dir: &Path, entries: u32) -> SledStore {
        let store = SledStore::open(&dir.join("db"), 8 << 20).unwrap();
        let mut writes: Vec<StoreWrite> =
            (0..entries).map(|i| (format!("k/{i:06}").into_bytes(), Some(vec![b'v'; (i % 300) as usize]))).collect();
        writes.push((b"meta/schema_version".to_vec(), Some(b"2".to_vec())));
        store.apply(&writes).unwrap();
        store.flush().unwrap();
        store
    }

    fn entries_of(store: &dyn Store) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        store
            .scan(b"", None, &mut |key, value| {
                out.push((key.to_vec(), value.to_vec()));
                ControlFlow::Continue(())
            })
            .unwrap();
        out
    }

    #[test]
    fn a_snapshot_reads_back_every_entry_and_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), 5000);
        let out = dir.path().join("b").join(file_name("330106", Utc::now()));
        let written = write_snapshot(&store, "330106", "check", &out, Utc::now()).unwrap();
        assert_eq!(written.entries, 5001);
        assert_eq!(written.bytes, std::fs::metadata(&out).unwrap().len());
        assert!(!PathBuf::from(format!("{}.partial", out.display())).exists());
        let mut read = Vec::new();
        let (header, sha256) = read_entries(&out, |key, value| {
            read.push((key.to_vec(), value.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(read, entries_of(&store));
        assert_eq!((header.entries, header.schema_version, header.node_code.as_str()), (5001, 2, "330106"));
        assert_eq!(sha256, written.sha256);
        assert!(write_snapshot(&store, "330106", "check", &out, Utc::now()).is_err(), "never overwrites");
    }

    #[test]
    fn any_changed_byte_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), 200);
        let out = dir.path().join("x.ecovol-backup");
        write_snapshot(&store, "330106", "check", &out, Utc::now()).unwrap();
        let original = std::fs::read(&out).unwrap();
        // A byte of a value, of the header, of the checksum; and a truncation.
        for position in [HEADER_BYTES + 500, 40, original.len() - 3] {
            let mut bytes = original.clone();
            bytes[position] ^= 0x01;
            std::fs::write(&out, &bytes).unwrap();
            let error = verify(&out).unwrap_err().to_string();
            assert!(error.contains("not a usable backup"), "byte {position}: {error}");
        }
        std::fs::write(&out, &original[..original.len() - 40]).unwrap();
        assert!(verify(&out).unwrap_err().to_string().contains("not a usable backup"));
        std::fs::write(&out, &original).unwrap();
        verify(&out).unwrap();
    }

    #[test]
    fn an_empty_store_makes_a_valid_backup() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("db"), 8 << 20).unwrap());
        let out = dir.path().join("empty.ecovol-backup");
        let written = write_snapshot(&*store, "330106", "check", &out, Utc::now()).unwrap();
        assert_eq!(written.entries, 0);
        assert_eq!(verify(&out).unwrap().0.schema_version, 0);
    }
}
