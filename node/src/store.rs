//! Durable storage behind the `Store` trait. This is the only module that names sled.
//!
//! Keys are ASCII paths (`vol/330106-00000042`), numbers zero-padded so that byte order is numeric order; values
//! are JSON documents (`serde`), so a newer binary can read an older record (`#[serde(default)]` on new fields).
//! `apply` writes a batch atomically; `flush` makes everything applied so far durable. Callers acknowledge a write
//! only after `flush` returned (see `commit`). How durable that is (process crash or power loss) is the
//! `[store] durability` setting; a disk that stops taking writes makes writes fail with `Unavailable` while reads
//! keep working, and writes resume without a restart once it takes them again.

use std::collections::BTreeSet;
use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

/// What the store can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot take writes now (disk full, read-only, flush failed). Reads may still work.
    #[error("store unavailable for writes: {0}")]
    Unavailable(String),
    /// The store could not be opened or read.
    #[error("store error: {0}")]
    Io(String),
    /// A stored value could not be decoded.
    #[error("corrupt record at {key}: {message}")]
    Corrupt { key: String, message: String },
}

/// A scan visitor: called with each key and value; `Break` stops the scan.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> ControlFlow<()> + 'a;

/// One write of a batch: `Some` puts, `None` deletes.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// The durable key-value store of one node.
pub trait Store: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Visits the entries whose key starts with `prefix`, in key order, beginning after `start_after` if given,
    /// until `visit` breaks or the prefix is exhausted.
    fn scan(&self, prefix: &[u8], start_after: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<(), StoreError>;

    /// Visits entries under `prefix` in reverse key order, beginning before `start_before` if given.
    fn scan_rev(&self, prefix: &[u8], start_before: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<(), StoreError>;

    /// Applies the writes atomically: after a crash either all of them or none are present.
    fn apply(&self, writes: &[Write]) -> Result<(), StoreError>;

    /// Makes every applied write durable (against a process crash, or also a power loss: see `Durability`).
    /// Blocking; call from one thread (the committer). After a failed flush, none of the writes applied since
    /// the last successful one may be acknowledged; a later call may succeed once the disk takes writes again.
    fn flush(&self) -> Result<(), StoreError>;

    /// Bytes the store occupies on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
}

/// How far a write the committer acknowledged is durable: the `[store] durability` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// sled's own flush: the log is written and `sync_file_range`d, which survives a crash of the process (kill -9,
    /// OOM kill, panic) but not a loss of power: the disk's write cache, the log file's length and new files'
    /// folder entries are not forced to stable storage.
    ProcessCrash,
    /// After sled's flush, a real `fdatasync` of the log file, of every file sled created since the last flush
    /// (blobs, snapshots) and of their folders: an acknowledged write survives the machine losing power.
    #[default]
    PowerLoss,
}

/// sled 0.34 as the store. `flush` is durable as `Durability` says.
///
/// sled 0.34 poisons a database handle on its first failed write (disk full, read-only, I/O error): from then on
/// every write fails, while reads usually keep working (sled fails them too when its background writer met the
/// error). The handle is then only reopened by `flush` once no write is waiting for a flush and a probe write in
/// the store's folder succeeds (space came back), so nothing that was refused reappears and nothing acknowledged
/// is dropped (the reopened database holds exactly what was flushed).
pub struct SledStore {
    path: PathBuf,
    cache_capacity_bytes: u64,
    durability: Durability,
    /// `None` only while a reopen after a failed write is incomplete.
    db: RwLock<Option<sled::Db>>,
    /// A write or flush failed: the handle is poisoned until reopened.
    poisoned: AtomicBool,
    /// A batch was applied since the last successful flush.
    dirty: AtomicBool,
    /// What `Durability::PowerLoss` has synced so far (used by the flushing thread only).
    synced: Mutex<Synced>,
}

/// Files and folders already forced to stable storage.
#[derive(Default)]
struct Synced {
    /// The log file `db`, open for `fdatasync`.
    log: Option<File>,
    /// Names last seen in the store folder and in `blobs/`: a new name is synced with its folder.
    names: BTreeSet<PathBuf>,
}

impl SledStore {
    /// Opens (or creates) the store in `path` with `Durability::ProcessCrash`: for tools working on a stopped
    /// node and for tests. The node itself opens with `open_with` and its configured durability.
    pub fn open(path: &Path, cache_capacity_bytes: u64) -> Result<Self, StoreError> {
        Self::open_with(path, cache_capacity_bytes, Durability::ProcessCrash)
    }

    /// Opens (or creates) the store in `path`. Fails clearly if another process holds it.
    pub fn open_with(path: &Path, cache_capacity_bytes: u64, durability: Durability) -> Result<Self, StoreError> {
        let db = open_sled(path, cache_capacity_bytes)?;
        let store = Self {
            path: path.to_path_buf(),
            cache_capacity_bytes,
            durability,
            db: RwLock::new(Some(db)),
            poisoned: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            synced: Mutex::default(),
        };
        if durability == Durability::PowerLoss {
            // The folder, `conf` and whatever recovery wrote, once, before the first acknowledgement.
            store
                .sync_files()
                .map_err(|error| StoreError::Io(format!("cannot sync store files at {}: {error}", path.display())))?;
        }
        Ok(store)
    }

    /// The current database handle.
    fn db(&self) -> Result<sled::Db, StoreError> {
        let slot = self.db.read().unwrap_or_else(PoisonError::into_inner);
        slot.clone().ok_or_else(|| {
            StoreError::Unavailable(format!(
                "the store at {} is closed after a failed write and could not be reopened yet; \
                 it is retried on the next write (or restart the node)",
                self.path.display()
            ))
        })
    }

    /// Maps a failed write or flush, and remembers that the handle is poisoned.
    fn write_failed(&self, error: sled::Error) -> StoreError {
        self.poisoned.store(true, Ordering::SeqCst);
        let error = sled_error(error);
        tracing::error!(%error, path = %self.path.display(), "store write failed");
        error
    }

    /// Reopens a poisoned store once space is back (see the type's doc). Only called with nothing unflushed.
    fn recover(&self) -> Result<(), StoreError> {
        probe_writable(&self.path).map_err(|error| unavailable_for_writes(&error))?;
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        // The poisoned handle must be gone before sled's folder lock can be taken again.
        *slot = None;
        *self.synced.lock().unwrap_or_else(PoisonError::into_inner) = Synced::default();
        let db = open_sled(&self.path, self.cache_capacity_bytes)
            .map_err(|error| StoreError::Unavailable(format!("reopening after a failed write: {error}")))?;
        *slot = Some(db);
        drop(slot);
        self.poisoned.store(false, Ordering::SeqCst);
        if self.durability == Durability::PowerLoss {
            self.sync_files().map_err(|error| unavailable_for_writes(&error))?;
        }
        tracing::warn!(path = %self.path.display(), "store reopened after a failed write: writes are accepted again");
        Ok(())
    }

    /// `Durability::PowerLoss`: `fdatasync` the log, every file created since the last call, and their folders.
    fn sync_files(&self) -> std::io::Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        if synced.log.is_none() {
            synced.log = Some(File::open(self.path.join("db"))?);
        }
        if let Some(log) = &synced.log {
            log.sync_data()?;
        }
        let blobs = self.path.join("blobs");
        let mut names = BTreeSet::new();
        for folder in [&self.path, &blobs] {
            let Ok(entries) = std::fs::read_dir(folder) else { continue };
            for entry in entries {
                names.insert(entry?.path());
            }
        }
        if names != synced.names {
            for name in names.difference(&synced.names) {
                // A file sled removed between the listing and here needs no sync.
                if let Ok(file) = File::open(name)
                    && file.metadata()?.is_file()
                {
                    file.sync_data()?;
                }
            }
            // New and removed names are made durable by syncing the folders that hold them.
            for folder in [&self.path, &blobs] {
                if let Ok(handle) = File::open(folder) {
                    handle.sync_all()?;
                }
            }
            synced.names = names;
        }
        Ok(())
    }
}

/// sled releases its directory lock only when its background flusher lets go of the database, a moment after
/// the last handle is dropped; a lock conflict is therefore retried for up to `LOCK_WAIT` before it is reported.
fn open_sled(path: &Path, cache_capacity_bytes: u64) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new()
            .path(path)
            .cache_capacity(cache_capacity_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
        {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(io)) if is_lock_conflict(&io) => {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::Io(format!(
                        "{} is in use by another process (is the node running? stop it, or use --node to talk to it)",
                        path.display()
                    )));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(other) => {
                return Err(StoreError::Io(format!(
                    "cannot open store at {}: {other} (if the disk is full or read-only, fix that and start again; \
                     if the store itself is damaged, restore the last backup: docs/OPERATIONS.md, \
                     \"The store does not open\")",
                    path.display()
                )));
            }
        }
    }
}

/// How long a store lock held by a just-closed handle is waited for.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Bytes written (and removed) to see whether the store's disk takes writes again: two of sled's 512 KiB
/// segments, so a reopened store can at least start a new one.
const PROBE_BYTES: usize = 1 << 20;

fn is_lock_conflict(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::WouldBlock || error.to_string().contains("could not acquire lock")
}

/// Writes, syncs and removes a probe file in `folder`.
fn probe_writable(folder: &Path) -> std::io::Result<()> {
    let probe = folder.join("space-probe");
    let written = std::fs::write(&probe, vec![0u8; PROBE_BYTES]).and_then(|()| File::open(&probe)?.sync_data());
    let _ = std::fs::remove_file(&probe);
    written
}

/// The refusal an office sees when the disk does not take writes: the cause in plain words, and what to do.
fn unavailable_for_writes(error: &std::io::Error) -> StoreError {
    let cause = match error.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => "the disk is full",
        std::io::ErrorKind::ReadOnlyFilesystem => "the disk is read-only",
        _ => "the disk failed a write",
    };
    StoreError::Unavailable(format!(
        "the store cannot take writes: {cause} ({error}); reads still work; free space or repair the disk, \
         writes are accepted again without a restart"
    ))
}

fn sled_error(error: sled::Error) -> StoreError {
    match error {
        sled::Error::Io(io) => unavailable_for_writes(&io),
        other => StoreError::Io(other.to_string()),
    }
}

impl Store for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db()?.get(key).map_err(read_error)?.map(|value| value.to_vec()))
    }

    fn scan(&self, prefix: &[u8], start_after: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let db = self.db()?;
        let iter = match start_after {
            Some(after) if after.starts_with(prefix) => {
                let mut from = after.to_vec();
                from.push(0);
                db.range(from..)
            }
            _ => db.range(prefix.to_vec()..),
        };
        for item in iter {
            let (key, value) = item.map_err(read_error)?;
            if !key.starts_with(prefix) {
                break;
            }
            if visit(&key, &value).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn scan_rev(&self, prefix: &[u8], start_before: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let db = self.db()?;
        let iter = match start_before {
            Some(before) if before.starts_with(prefix) => db.range(prefix.to_vec()..before.to_vec()),
            _ => db.scan_prefix(prefix),
        };
        for item in iter.rev() {
            let (key, value) = item.map_err(read_error)?;
            if !key.starts_with(prefix) {
                continue;
            }
            if visit(&key, &value).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            match value {
                Some(value) => batch.insert(key.as_slice(), value.as_slice()),
                None => batch.remove(key.as_slice()),
            }
        }
        self.db()?.apply_batch(batch).map_err(|error| self.write_failed(error))?;
        self.dirty.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        if self.poisoned.load(Ordering::SeqCst) {
            // Writes applied to the poisoned handle were never flushed: this flush fails for them, and the next
            // one (with nothing waiting) may reopen the store.
            if self.dirty.swap(false, Ordering::SeqCst) {
                return Err(self.db()?.flush().err().map_or_else(
                    || StoreError::Unavailable("the store cannot take writes after a failed write".into()),
                    sled_error,
                ));
            }
            return self.recover();
        }
        // Cleared before the flush: a batch applied while it runs (the committer applies the next group during
        // a flush) marks the store dirty again, so a failed flush never lets that batch be acknowledged by a reopen.
        self.dirty.store(false, Ordering::SeqCst);
        self.db()?.flush().map_err(|error| self.write_failed(error))?;
        if self.durability == Durability::PowerLoss {
            self.sync_files().map_err(|error| {
                self.poisoned.store(true, Ordering::SeqCst);
                tracing::error!(%error, path = %self.path.display(), "store fdatasync failed");
                unavailable_for_writes(&error)
            })?;
        }
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db()?.size_on_disk().map_err(read_error)
    }
}

/// A failed read: the store answers nothing for this request, but stays open.
fn read_error(error: sled::Error) -> StoreError {
    match error {
        sled::Error::Io(io) => StoreError::Unavailable(format!("the store cannot be read: {io}")),
        other => StoreError::Io(other.to_string()),
    }
}

/// Decodes a JSON record, naming the key if it is corrupt.
pub fn decode<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|error| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        message: error.to_string(),
    })
}

/// Encodes a record as JSON.
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain data structs to JSON cannot fail (no maps with non-string keys are stored).
    serde_json::to_vec(value).unwrap_or_default()
}

/// Visits every value under `prefix` decoded as `T`, in key order; a corrupt value stops the scan with an error
/// naming its key.
pub fn scan_json<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
    mut visit: impl FnMut(T),
) -> Result<(), StoreError> {
    let mut failure = None;
    store.scan(prefix.as_bytes(), None, &mut |key, value| match decode::<T>(key, value) {
        Ok(value) => {
            visit(value);
            ControlFlow::Continue(())
        }
        Err(error) => {
            failure = Some(error);
            ControlFlow::Break(())
        }
    })?;
    failure.map_or(Ok(()), Err)
}

/// As `scan_json`, also giving each key with `prefix` taken off.
pub fn scan_json_keyed<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
    mut visit: impl FnMut(&str, T),
) -> Result<(), StoreError> {
    let mut failure = None;
    store.scan(prefix.as_bytes(), None, &mut |key, value| match decode::<T>(key, value) {
        Ok(value) => {
            visit(&String::from_utf8_lossy(&key[prefix.len()..]), value);
            ControlFlow::Continue(())
        }
        Err(error) => {
            failure = Some(error);
            ControlFlow::Break(())
        }
    })?;
    failure.map_or(Ok(()), Err)
}

/// Reads and decodes one record.
pub fn get_json<T: serde::de::DeserializeOwned>(store: &dyn Store, key: &[u8]) -> Result<Option<T>, StoreError> {
    match store.get(key)? {
        Some(value) => decode(key, &value).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("db"), 8 << 20).unwrap();
        (dir, store)
    }

    fn keys(store: &SledStore, prefix: &str, after: Option<&str>, reverse: bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut visit = |key: &[u8], _: &[u8]| {
            out.push(String::from_utf8(key.to_vec()).unwrap());
            ControlFlow::Continue(())
        };
        if reverse {
            store.scan_rev(prefix.as_bytes(), after.map(str::as_bytes), &mut visit).unwrap();
        } else {
            store.scan(prefix.as_bytes(), after.map(str::as_bytes), &mut visit).unwrap();
        }
        out
    }

    #[test]
    fn scans_stay_inside_the_prefix_and_resume_after_a_key() {
        let (_dir, store) = open();
        let writes: Vec<Write> = ["a/1", "a/2", "a/3", "b/1", "a0"]
            .iter()
            .map(|key| (key.as_bytes().to_vec(), Some(b"x".to_vec())))
            .collect();
        store.apply(&writes).unwrap();
        assert_eq!(keys(&store, "a/", None, false), ["a/1", "a/2", "a/3"]);
        assert_eq!(keys(&store, "a/", Some("a/1"), false), ["a/2", "a/3"]);
        assert_eq!(keys(&store, "a/", None, true), ["a/3", "a/2", "a/1"]);
        assert_eq!(keys(&store, "a/", Some("a/3"), true), ["a/2", "a/1"]);
    }

    #[test]
    fn power_loss_durability_syncs_every_file_sled_wrote_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = SledStore::open_with(&path, 8 << 20, Durability::PowerLoss).unwrap();
            // Values from tiny to larger than sled keeps inline, so its blob files are synced too.
            for (i, size) in [1usize, 1_000, 100_000, 1_000_000].into_iter().enumerate() {
                store.apply(&[(format!("k/{i}").into_bytes(), Some(vec![b'v'; size]))]).unwrap();
                store.flush().unwrap();
            }
            let synced = store.synced.lock().unwrap();
            assert!(synced.log.is_some(), "the log file is held open for fdatasync");
            assert!(synced.names.contains(&path.join("conf")), "{:?}", synced.names);
        }
        let store = SledStore::open_with(&path, 8 << 20, Durability::PowerLoss).unwrap();
        assert_eq!(store.get(b"k/3").unwrap().map(|value| value.len()), Some(1_000_000));
    }

    #[test]
    fn a_batch_puts_and_deletes_together() {
        let (_dir, store) = open();
        store.apply(&[(b"k".to_vec(), Some(b"1".to_vec()))]).unwrap();
        store.apply(&[(b"k".to_vec(), None), (b"j".to_vec(), Some(b"2".to_vec()))]).unwrap();
        store.flush().unwrap();
        assert_eq!(store.get(b"k").unwrap(), None);
        assert_eq!(store.get(b"j").unwrap(), Some(b"2".to_vec()));
    }
}
