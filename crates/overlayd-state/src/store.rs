//! The embedded transactional store for high-churn and desired state
//! (SPEC §3): `{data_dir}/state.redb`, mode 0600. redb is pure Rust, ACID,
//! and crash-safe — a commit returns only after its fsync, and a `kill -9`
//! at any instant leaves the last committed transaction — with one writer
//! and MVCC readers that never block it. Records are JSON values under
//! string keys in a fixed set of tables; the daemon defines the record types.

use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

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
///
/// After an I/O error (a full disk, say) redb refuses every later change
/// until the database is closed and opened again; the store does that by
/// itself on the next operation, so it recovers as soon as the cause is gone,
/// without a daemon restart. A panic inside redb (a damaged file) becomes an
/// error, never a crash.
pub struct Store {
    db: RwLock<Option<redb::Database>>,
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
        let db = Self::open_db(&path)?;
        let store = Store {
            db: RwLock::new(Some(db)),
            path,
        };
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

    /// Open the redb file; a panic inside redb is a [`StateError::StoreOpen`].
    fn open_db(path: &Path) -> Result<redb::Database> {
        let opened = catch_unwind(AssertUnwindSafe(|| Self::open_db_inner(path)));
        opened.unwrap_or_else(|panic| {
            Err(StateError::StoreOpen {
                path: path.to_path_buf(),
                source: Box::new(redb::Error::Corrupted(format!(
                    "redb panicked while opening: {}",
                    panic_message(&panic)
                ))),
            })
        })
    }

    fn open_db_inner(path: &Path) -> Result<redb::Database> {
        let path = path.to_path_buf();
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
        redb::Builder::new()
            .create_file(file)
            .map_err(|e| StateError::StoreOpen {
                path: path.clone(),
                source: Box::new(e.into()),
            })
    }

    /// Run `f` against the open database, reopening it first when a previous
    /// I/O error closed it, and closing it when `f` meets an I/O error (so
    /// the next operation reopens it). A panic inside redb becomes an error.
    fn with_db<T>(&self, f: impl FnOnce(&redb::Database) -> Result<T>) -> Result<T> {
        {
            let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
            if let Some(db) = guard.as_ref() {
                return self.guarded(db, f);
            }
        }
        let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(Self::open_db(&self.path)?);
            tracing::info!(path = %self.path.display(), "state store reopened after an I/O error");
        }
        let db = guard.as_ref().expect("just opened");
        self.guarded(db, f)
    }

    fn guarded<T>(
        &self,
        db: &redb::Database,
        f: impl FnOnce(&redb::Database) -> Result<T>,
    ) -> Result<T> {
        self.settle(guard(&self.path, || f(db)))
    }

    /// Drop the database after an I/O error; the next operation reopens it.
    /// Never blocks: if another thread holds it, that thread's own error
    /// closes it instead.
    fn close_after_io_error(&self) {
        if let Ok(mut guard) = self.db.try_write() {
            if guard.take().is_some() {
                tracing::warn!(path = %self.path.display(), "state store closed after an I/O error; it is reopened on the next operation");
            }
        }
    }

    /// Path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on a consistent snapshot. Readers never block the writer.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTx<'_>) -> Result<T>) -> Result<T> {
        let tx = self.with_db(|db| db.begin_read().map_err(|e| store_err(&self.path, e)))?;
        let r = f(&ReadTx {
            tx,
            path: &self.path,
        });
        self.settle(r)
    }

    /// Close the database after an I/O error (the next operation reopens it).
    fn settle<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            if e.is_store_io() {
                self.close_after_io_error();
            }
        }
        r
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
        let tx = self.with_db(|db| db.begin_write().map_err(|e| store_err(&self.path, e)))?;
        let mut wtx = WriteTx {
            tx,
            path: &self.path,
        };
        let r = match f(&mut wtx) {
            Ok(v) => guard(&self.path, || {
                wtx.tx.commit().map_err(|e| store_err(&self.path, e))
            })
            .map(|()| v),
            // After an I/O error redb must not be asked to roll back (it
            // asserts); dropping the transaction discards it safely.
            Err(e) if e.is_store_io() => Err(e),
            Err(e) => {
                if let Err(abort) = guard(&self.path, || {
                    wtx.tx.abort().map_err(|e| store_err(&self.path, e))
                }) {
                    tracing::warn!(error = %abort, "state store transaction abort failed");
                }
                Err(e)
            }
        };
        self.settle(r)
    }
}

/// Called with the duration of every write transaction (commit included).
static COMMIT_OBSERVER: std::sync::OnceLock<fn(std::time::Duration)> = std::sync::OnceLock::new();

/// Report the duration of every write transaction to `observe` (for
/// metrics; the first observer set wins, later calls are ignored).
pub fn observe_commits(observe: fn(std::time::Duration)) {
    let _ = COMMIT_OBSERVER.set(observe);
}

/// Run one redb call, turning a panic inside redb (a damaged file trips its
/// assertions) into an error. Panics of the caller's own closures are not
/// caught here: they unwind as usual and abort the transaction.
fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        Err(store_err(
            path,
            redb::Error::Corrupted(format!("redb panicked: {}", panic_message(&panic))),
        ))
    })
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
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
        guard(self.path, || {
            get_in(&self.open(table)?, self.path, table, key)
        })
    }

    /// Every record of `table`, ordered by key.
    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>> {
        guard(self.path, || {
            list_in(&self.open(table)?, self.path, table, "")
        })
    }

    /// Records whose key starts with `prefix`, ordered by key.
    pub fn list_prefix<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<(String, T)>> {
        guard(self.path, || {
            list_in(&self.open(table)?, self.path, table, prefix)
        })
    }

    /// Number of records in `table`.
    pub fn count(&self, table: Table) -> Result<u64> {
        guard(self.path, || {
            self.open(table)?.len().map_err(|e| store_err(self.path, e))
        })
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
        guard(self.path, || {
            get_in(&self.open(table)?, self.path, table, key)
        })
    }

    /// Every record of `table`, ordered by key.
    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>> {
        guard(self.path, || {
            list_in(&self.open(table)?, self.path, table, "")
        })
    }

    /// Records whose key starts with `prefix`, ordered by key.
    pub fn list_prefix<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<(String, T)>> {
        guard(self.path, || {
            list_in(&self.open(table)?, self.path, table, prefix)
        })
    }

    /// Number of records in `table`.
    pub fn count(&self, table: Table) -> Result<u64> {
        guard(self.path, || {
            self.open(table)?.len().map_err(|e| store_err(self.path, e))
        })
    }

    /// Insert or replace the record at `key`.
    pub fn put<T: Serialize + ?Sized>(&mut self, table: Table, key: &str, value: &T) -> Result<()> {
        guard(self.path, || {
            let bytes = serde_json::to_vec(value).map_err(|source| StateError::Encode {
                what: format!("store record {table}/{key}"),
                source,
            })?;
            self.open(table)?
                .insert(key, bytes.as_slice())
                .map_err(|e| store_err(self.path, e))?;
            Ok(())
        })
    }

    /// Delete the record at `key`; whether it existed.
    pub fn remove(&mut self, table: Table, key: &str) -> Result<bool> {
        guard(self.path, || {
            let mut t = self.open(table)?;
            let existed = t
                .remove(key)
                .map_err(|e| store_err(self.path, e))?
                .is_some();
            Ok(existed)
        })
    }

    /// Delete every record whose key starts with `prefix`; how many.
    pub fn remove_prefix(&mut self, table: Table, prefix: &str) -> Result<usize> {
        guard(self.path, || {
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
        })
    }
}
