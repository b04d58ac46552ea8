//! Durable storage behind the `Store` trait. This is the only module that names sled.
//!
//! Keys are ASCII paths (`vol/330106-00000042`), numbers zero-padded so that byte order is numeric order; values
//! are JSON documents (`serde`), so a newer binary can read an older record (`#[serde(default)]` on new fields).
//! `apply` writes a batch atomically; `flush` makes everything applied so far durable. Callers acknowledge a write
//! only after `flush` returned (see `commit`).

use std::ops::ControlFlow;
use std::path::Path;

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

    /// Makes every applied write durable against a process crash. Blocking; call from one thread (the committer).
    fn flush(&self) -> Result<(), StoreError>;

    /// Bytes the store occupies on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
}

/// sled 0.34 as the store. `flush` ends in `sync_file_range`: durable against a process crash (kill -9), not
/// proven against power loss.
pub struct SledStore {
    db: sled::Db,
}

impl SledStore {
    /// Opens (or creates) the store in `path`. Fails clearly if another process holds it.
    ///
    /// sled releases its directory lock only when its background flusher lets go of the database, a moment after
    /// the last handle is dropped; a lock conflict is therefore retried for up to `LOCK_WAIT` before it is reported.
    pub fn open(path: &Path, cache_capacity_bytes: u64) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match sled::Config::new()
                .path(path)
                .cache_capacity(cache_capacity_bytes)
                .mode(sled::Mode::HighThroughput)
                .open()
            {
                Ok(db) => return Ok(Self { db }),
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
                    return Err(StoreError::Io(format!("cannot open store at {}: {other}", path.display())));
                }
            }
        }
    }
}

/// How long a store lock held by a just-closed handle is waited for.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn is_lock_conflict(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::WouldBlock || error.to_string().contains("could not acquire lock")
}

fn sled_error(error: sled::Error) -> StoreError {
    match error {
        sled::Error::Io(io) => StoreError::Unavailable(io.to_string()),
        other => StoreError::Io(other.to_string()),
    }
}

impl Store for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key).map_err(sled_error)?.map(|value| value.to_vec()))
    }

    fn scan(&self, prefix: &[u8], start_after: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let iter = match start_after {
            Some(after) if after.starts_with(prefix) => {
                let mut from = after.to_vec();
                from.push(0);
                self.db.range(from..)
            }
            _ => self.db.range(prefix.to_vec()..),
        };
        for item in iter {
            let (key, value) = item.map_err(sled_error)?;
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
        let iter = match start_before {
            Some(before) if before.starts_with(prefix) => self.db.range(prefix.to_vec()..before.to_vec()),
            _ => self.db.scan_prefix(prefix),
        };
        for item in iter.rev() {
            let (key, value) = item.map_err(sled_error)?;
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
        self.db.apply_batch(batch).map_err(sled_error)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(sled_error)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(sled_error)
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
    fn a_batch_puts_and_deletes_together() {
        let (_dir, store) = open();
        store.apply(&[(b"k".to_vec(), Some(b"1".to_vec()))]).unwrap();
        store.apply(&[(b"k".to_vec(), None), (b"j".to_vec(), Some(b"2".to_vec()))]).unwrap();
        store.flush().unwrap();
        assert_eq!(store.get(b"k").unwrap(), None);
        assert_eq!(store.get(b"j").unwrap(), Some(b"2".to_vec()));
    }
}
