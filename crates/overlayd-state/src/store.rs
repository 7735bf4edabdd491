//! The embedded transactional store for high-churn and desired state
//! (SPEC §3): `{data_dir}/state.redb`, mode 0600. redb is pure Rust, ACID,
//! and crash-safe — a commit returns only after its fsync, and a `kill -9`
//! at any instant leaves the last committed transaction — with one writer
//! and MVCC readers that never block it. Records are JSON values under
//! string keys in a fixed set of tables; the daemon defines the record types.

use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::durable::{self, FILE_MODE};
use crate::error::{Result, StateError};
use crate::paths::DataDir;

/// Raw table layout: string keys, JSON-encoded values.
type Def = TableDefinition<'static, &'static str, &'static [u8]>;

/// The store's fixed tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Store metadata (schema version, node id, …).
    Meta,
    /// The desired global overlay.
    Global,
    /// Desired service networks and their modes.
    Services,
    /// Desired isolation networks.
    Isolation,
    /// Address leases.
    Leases,
    /// Container attachments.
    Attachments,
    /// WireGuard peers.
    Peers,
    /// DNS records.
    Dns,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 8] = [
        Table::Meta,
        Table::Global,
        Table::Services,
        Table::Isolation,
        Table::Leases,
        Table::Attachments,
        Table::Peers,
        Table::Dns,
    ];

    /// The table's name inside the store file (stable: part of the format).
    pub const fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Global => "global",
            Table::Services => "services",
            Table::Isolation => "isolation",
            Table::Leases => "leases",
            Table::Attachments => "attachments",
            Table::Peers => "peers",
            Table::Dns => "dns",
        }
    }

    const fn def(self) -> Def {
        TableDefinition::new(self.name())
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The open store. Cheap to share by reference across threads.
pub struct Store {
    db: redb::Database,
    path: PathBuf,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn store_err(path: &Path, e: impl Into<redb::Error>) -> StateError {
    StateError::Store {
        path: path.to_path_buf(),
        source: Box::new(e.into()),
    }
}

impl Store {
    /// Open (creating if missing, mode 0600) `{data_dir}/state.redb`. A
    /// damaged or foreign file is [`StateError::StoreOpen`] naming it.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self> {
        let dir = DataDir::new(data_dir);
        dir.ensure()?;
        Self::open_path(dir.store_path())
    }

    /// Open the store at an explicit file path.
    pub fn open_path(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| StateError::io("open", &path, e))?;
        durable::tighten_mode(&file, &path)?;
        let db = redb::Builder::new()
            .create_file(file)
            .map_err(|e| StateError::StoreOpen {
                path: path.clone(),
                source: Box::new(e.into()),
            })?;
        let store = Store { db, path };
        // Create every table up front so readers never meet a missing one.
        store.write(|tx| {
            for t in Table::ALL {
                tx.tx
                    .open_table(t.def())
                    .map_err(|e| store_err(tx.path, e))?;
            }
            Ok(())
        })?;
        Ok(store)
    }

    /// Path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on a consistent snapshot. Readers never block the writer.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTx<'_>) -> Result<T>) -> Result<T> {
        let tx = self.db.begin_read().map_err(|e| store_err(&self.path, e))?;
        f(&ReadTx {
            tx,
            path: &self.path,
        })
    }

    /// Run `f` in a write transaction: committed durably (fsynced) if it
    /// returns `Ok`, aborted with no effect if it returns `Err` (or panics).
    /// Writers are serialised.
    pub fn write<T>(&self, f: impl FnOnce(&mut WriteTx<'_>) -> Result<T>) -> Result<T> {
        let started = std::time::Instant::now();
        let result = self.write_inner(f);
        if let Some(observe) = COMMIT_OBSERVER.get() {
            observe(started.elapsed());
        }
        result
    }

    fn write_inner<T>(&self, f: impl FnOnce(&mut WriteTx<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .db
            .begin_write()
            .map_err(|e| store_err(&self.path, e))?;
        let mut wtx = WriteTx {
            tx,
            path: &self.path,
        };
        match f(&mut wtx) {
            Ok(v) => {
                wtx.tx.commit().map_err(|e| store_err(&self.path, e))?;
                Ok(v)
            }
            Err(e) => {
                if let Err(abort) = wtx.tx.abort() {
                    tracing::warn!(error = %abort, "state store transaction abort failed");
                }
                Err(e)
            }
        }
    }
}

/// Called with the duration of every write transaction (commit included).
static COMMIT_OBSERVER: std::sync::OnceLock<fn(std::time::Duration)> = std::sync::OnceLock::new();

/// Report the duration of every write transaction to `observe` (for
/// metrics; the first observer set wins, later calls are ignored).
pub fn observe_commits(observe: fn(std::time::Duration)) {
    let _ = COMMIT_OBSERVER.set(observe);
}

/// A read-only snapshot.
pub struct ReadTx<'a> {
    tx: redb::ReadTransaction,
    path: &'a Path,
}

/// A write transaction in progress.
pub struct WriteTx<'a> {
    tx: redb::WriteTransaction,
    path: &'a Path,
}

fn decode<T: DeserializeOwned>(table: Table, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StateError::CorruptRecord {
        table,
        key: key.to_string(),
        source,
    })
}

fn get_in<T: DeserializeOwned>(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    path: &Path,
    table: Table,
    key: &str,
) -> Result<Option<T>> {
    match t.get(key).map_err(|e| store_err(path, e))? {
        Some(v) => decode(table, key, v.value()).map(Some),
        None => Ok(None),
    }
}

fn list_in<T: DeserializeOwned>(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    path: &Path,
    table: Table,
    prefix: &str,
) -> Result<Vec<(String, T)>> {
    let mut out = Vec::new();
    for item in t.range(prefix..).map_err(|e| store_err(path, e))? {
        let (k, v) = item.map_err(|e| store_err(path, e))?;
        let key = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push((key.to_string(), decode(table, key, v.value())?));
    }
    Ok(out)
}

impl ReadTx<'_> {
    fn open(&self, table: Table) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>> {
        self.tx
            .open_table(table.def())
            .map_err(|e| store_err(self.path, e))
    }

    /// The record at `key`, if any.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        get_in(&self.open(table)?, self.path, table, key)
    }

    /// Every record of `table`, ordered by key.
    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>> {
        list_in(&self.open(table)?, self.path, table, "")
    }

    /// Records whose key starts with `prefix`, ordered by key.
    pub fn list_prefix<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<(String, T)>> {
        list_in(&self.open(table)?, self.path, table, prefix)
    }

    /// Number of records in `table`.
    pub fn count(&self, table: Table) -> Result<u64> {
        self.open(table)?.len().map_err(|e| store_err(self.path, e))
    }
}

impl WriteTx<'_> {
    fn open(&self, table: Table) -> Result<redb::Table<'_, &'static str, &'static [u8]>> {
        self.tx
            .open_table(table.def())
            .map_err(|e| store_err(self.path, e))
    }

    /// The record at `key`, if any (sees this transaction's own writes).
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        get_in(&self.open(table)?, self.path, table, key)
    }

    /// Every record of `table`, ordered by key.
    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>> {
        list_in(&self.open(table)?, self.path, table, "")
    }

    /// Records whose key starts with `prefix`, ordered by key.
    pub fn list_prefix<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<(String, T)>> {
        list_in(&self.open(table)?, self.path, table, prefix)
    }

    /// Number of records in `table`.
    pub fn count(&self, table: Table) -> Result<u64> {
        self.open(table)?.len().map_err(|e| store_err(self.path, e))
    }

    /// Insert or replace the record at `key`.
    pub fn put<T: Serialize + ?Sized>(&mut self, table: Table, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|source| StateError::Encode {
            what: format!("store record {table}/{key}"),
            source,
        })?;
        self.open(table)?
            .insert(key, bytes.as_slice())
            .map_err(|e| store_err(self.path, e))?;
        Ok(())
    }

    /// Delete the record at `key`; whether it existed.
    pub fn remove(&mut self, table: Table, key: &str) -> Result<bool> {
        let mut t = self.open(table)?;
        let existed = t
            .remove(key)
            .map_err(|e| store_err(self.path, e))?
            .is_some();
        Ok(existed)
    }

    /// Delete every record whose key starts with `prefix`; how many.
    pub fn remove_prefix(&mut self, table: Table, prefix: &str) -> Result<usize> {
        let keys: Vec<String> = {
            let t = self.open(table)?;
            let mut keys = Vec::new();
            for item in t.range(prefix..).map_err(|e| store_err(self.path, e))? {
                let (k, _) = item.map_err(|e| store_err(self.path, e))?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                keys.push(k.value().to_string());
            }
            keys
        };
        let mut t = self.open(table)?;
        for k in &keys {
            t.remove(k.as_str()).map_err(|e| store_err(self.path, e))?;
        }
        Ok(keys.len())
    }
}
