//! The results store: one SQLite file, one durable record per finished run.
//!
//! Tables (queryable with the `sqlite3` shell, Python's `sqlite3`, pandas, DuckDB…):
//!
//! - `runs`: one row per finished run: `id`, the canonical `config` (JSON), the columns a query
//!   filters on (`dataset`, `partition`, `optimizer`, `aggregator`, `preaggregators`, `attack`,
//!   `seed`, `data_seed`, `workers`, `byzantine`, `rounds`), the summary (`final_accuracy`,
//!   `best_accuracy`, `final_loss`, `diverged_at`), timings (`setup_seconds`,
//!   `train_seconds`, `checkpoint_seconds`, `wall_seconds`), `threads`, `host`,
//!   `byzadam_version` (version and git commit), `finished_at` (Unix seconds), `results_version`
//!   (`byzadam_sim::RESULTS_VERSION` of the build that computed it; 0 before it was recorded),
//!   `class_recall` (JSON), `backend` (what computed the gradients: `builtin`, the CPU engine,
//!   or `torch:<model>` for `byzadam.torch`, whose runs have ids of their own).
//! - `rounds`: one row per (run, round): `lr`, `train_loss`, `xi_norm`, `honest_diameter`,
//!   `lambda`, `diverged`, `test_accuracy` and `test_loss` (NULL on rounds without
//!   evaluation). SQLite has no NaN: a NaN (a diverged run's loss) is stored as NULL.
//! - `grid_runs`: which grid (by name) holds which run, and its position in the grid.
//!
//! A run's `runs` row and its `rounds` rows are written in one transaction, in WAL mode with
//! `synchronous = FULL`: after a crash or power loss a run is either wholly there or absent,
//! and only a present run counts as done.

use byzadam_sim::{RoundMetrics, RunConfig, Summary};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A store that cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StoreError {
    /// The store's file.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// 2: `runs.results_version` (runs of stores of version 1 read as results version 0);
/// 3: `runs.class_recall`; 4: `runs.backend` (runs of older stores are the built-in engine's).
const SCHEMA_VERSION: i64 = 4;

/// The backend of a run of the built-in engine (every run before `byzadam.torch`).
pub const BUILTIN: &str = "builtin";

/// What `byzadam_version` records: the crate version and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BYZADAM_GIT_COMMIT"),
    ")"
);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    dataset TEXT NOT NULL,
    partition TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    aggregator TEXT NOT NULL,
    preaggregators TEXT NOT NULL,
    attack TEXT NOT NULL,
    seed INTEGER NOT NULL,
    data_seed INTEGER NOT NULL,
    workers INTEGER NOT NULL,
    byzantine INTEGER NOT NULL,
    rounds INTEGER NOT NULL,
    final_accuracy REAL,
    best_accuracy REAL,
    final_loss REAL,
    diverged_at INTEGER,
    setup_seconds REAL NOT NULL,
    train_seconds REAL NOT NULL,
    checkpoint_seconds REAL NOT NULL,
    wall_seconds REAL NOT NULL,
    threads INTEGER NOT NULL,
    host TEXT NOT NULL,
    byzadam_version TEXT NOT NULL,
    finished_at INTEGER NOT NULL,
    results_version INTEGER NOT NULL DEFAULT 0,
    class_recall TEXT,
    backend TEXT NOT NULL DEFAULT 'builtin'
);
CREATE TABLE IF NOT EXISTS rounds (
    run_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    lr REAL,
    train_loss REAL,
    xi_norm REAL,
    honest_diameter REAL,
    lambda REAL,
    diverged INTEGER NOT NULL,
    test_accuracy REAL,
    test_loss REAL,
    PRIMARY KEY (run_id, round)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS grid_runs (
    grid TEXT NOT NULL,
    run_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (grid, run_id)
);
";

/// Where the time of a run went, recorded with it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Building the simulation: normalising, partitioning, initialising (or restoring).
    pub setup_seconds: f64,
    /// Training and evaluation (this process's share, for a resumed run).
    pub train_seconds: f64,
    /// Writing checkpoints.
    pub checkpoint_seconds: f64,
    /// The whole run as the runner saw it, up to (not including) the store write.
    pub wall_seconds: f64,
    /// Threads the run used.
    pub threads: usize,
}

/// A finished run as read back from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    /// The run id.
    pub id: String,
    /// Its config.
    pub config: RunConfig,
    /// Its summary.
    pub summary: Summary,
    /// What computed its gradients: [`BUILTIN`] or `torch:<model>`.
    pub backend: String,
}

/// One test-set evaluation of a run: (round, accuracy).
pub type Curve = Vec<(u64, f64)>;

/// An open results store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// The columns a query filters on, derived from a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    /// Optimizer name (`sgd`, `resam`, `dra`, `mra`).
    pub optimizer: String,
    /// Aggregator name.
    pub aggregator: String,
    /// Pre-aggregator names joined by `+` (empty when none).
    pub preaggregators: String,
    /// Attack name, `none` for an attack-free run.
    pub attack: String,
    /// Dataset name.
    pub dataset: String,
    /// Partition scheme name.
    pub partition: String,
}

impl Labels {
    /// The labels of `config`, each read by the config type's own `name()`.
    pub fn of(config: &RunConfig) -> Self {
        Self {
            optimizer: config.optimizer.name().into(),
            aggregator: config.aggregator.name().into(),
            preaggregators: config
                .preaggregators
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join("+"),
            attack: config.attack.as_ref().map_or("none", |a| a.name()).into(),
            dataset: config.dataset.folder().into(),
            partition: config.partition.name().into(),
        }
    }
}

fn nan_to_null(x: f64) -> Option<f64> {
    (!x.is_nan()).then_some(x)
}

/// How many of byzadam's four tables the database holds (a store has all four).
fn our_tables(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
         AND name IN ('meta', 'runs', 'rounds', 'grid_runs')",
        [],
        |r| r.get(0),
    )
}

/// The refusal of a file that is not a byzadam store, saying `why`.
fn not_ours(path: &Path, why: &str) -> StoreError {
    StoreError {
        path: path.display().to_string(),
        message: format!("not a byzadam results store ({why}); it was left untouched"),
    }
}

/// How long an opener waits for another connection's lock (SQLite's busy timeout, and the
/// retries of the switch to WAL).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Opens `path` read-only and checks that it is a byzadam store: byzadam's four tables and a
/// schema version it can read or migrate. Returns the connection and the version.
fn verify_ours(path: &Path) -> Result<(Connection, String), StoreError> {
    use rusqlite::OpenFlags;
    let fail = |message: String| StoreError {
        path: path.display().to_string(),
        message,
    };
    if !path.is_file() {
        return Err(fail("no such store (byzadam grid writes one)".into()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail(e.to_string()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| fail(e.to_string()))?;
    let tables = our_tables(&conn).map_err(|e| not_ours(path, &e.to_string()))?;
    if tables != 4 {
        return Err(not_ours(path, "it lacks byzadam's tables"));
    }
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| not_ours(path, &e.to_string()))?;
    match version {
        Some(v) if v == SCHEMA_VERSION.to_string() || ["1", "2", "3"].contains(&v.as_str()) => {
            Ok((conn, v))
        }
        Some(v) => Err(fail(format!(
            "store schema version {v}; this byzadam reads version {SCHEMA_VERSION}"
        ))),
        None => Err(not_ours(path, "no schema version in its meta table")),
    }
}

impl Store {
    /// Opens (creating if need be) the store at `path`. An existing non-empty file that is
    /// not a byzadam store is refused and left untouched (never given byzadam's tables).
    ///
    /// Several processes may open the same new store at once (`byzadam grid --shard`, or
    /// `bt.grid(shard=…)`, into one file): the schema is checked and created in one exclusive
    /// transaction, so each process sees either an empty database or the whole schema with
    /// its version, never a store half made (which an earlier version took for a foreign
    /// file).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let fail = |message: String| StoreError {
            path: path.display().to_string(),
            message,
        };
        let err = |e: rusqlite::Error| fail(e.to_string());
        if path.metadata().is_ok_and(|m| m.is_file() && m.len() > 0) {
            drop(verify_ours(path)?);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("cannot create its directory: {e}")))?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.execute_batch("BEGIN EXCLUSIVE").map_err(err)?;
        match Self::prepare_schema(&conn, path) {
            Ok(()) => conn.execute_batch("COMMIT").map_err(err)?,
            Err(e) => {
                // Nothing was written, or the transaction's writes are undone.
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        // WAL once the schema is there (a new database switches here; a store already in WAL
        // mode stays so): readers never block the grid's writers. The switch needs every other
        // connection's lock released and SQLite does not wait for it (no busy handler): while
        // other openers of a new store still hold theirs it is retried, for as long as the
        // busy timeout.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match conn.pragma_update(None, "journal_mode", "WAL") {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Err(e) => return Err(err(e)),
            }
        }
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Within `open`'s exclusive transaction: refuses a database that holds anything but
    /// byzadam's tables (checked before anything is written), creates the schema in an empty
    /// one, and migrates an older schema version.
    fn prepare_schema(conn: &Connection, path: &Path) -> Result<(), StoreError> {
        let fail = |message: String| StoreError {
            path: path.display().to_string(),
            message,
        };
        let err = |e: rusqlite::Error| fail(e.to_string());
        let objects: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(err)?;
        if objects > 0 && our_tables(conn).map_err(err)? != 4 {
            return Err(not_ours(path, "it lacks byzadam's tables"));
        }
        conn.execute_batch(SCHEMA).map_err(err)?;
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )
                .map_err(err)?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            // Version 1 lacked the results version: its runs predate them (version 0);
            // version 2 lacked the per-class recall (NULL for its runs); version 3 the
            // backend (its runs are the built-in engine's). Columns are added in the order
            // a new store has them, so `SELECT *` copies between stores line up.
            Some(v) if ["1", "2", "3"].contains(&v.as_str()) => {
                let results_version = if v == "1" {
                    "ALTER TABLE runs ADD COLUMN results_version INTEGER NOT NULL DEFAULT 0;"
                } else {
                    ""
                };
                let class_recall = if v == "3" {
                    ""
                } else {
                    "ALTER TABLE runs ADD COLUMN class_recall TEXT;"
                };
                conn.execute_batch(&format!(
                    "{results_version}
                     {class_recall}
                     ALTER TABLE runs ADD COLUMN backend TEXT NOT NULL DEFAULT '{BUILTIN}';
                     UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version';"
                ))
                .map_err(err)?;
            }
            Some(v) => {
                return Err(fail(format!(
                    "store schema version {v}; this byzadam reads version {SCHEMA_VERSION}"
                )))
            }
        }
        Ok(())
    }

    /// Opens the existing store at `path` for reading, without writing to it (issue 22): a
    /// file that is not a byzadam store (an SQLite database without byzadam's tables, or not
    /// SQLite at all) is refused and left byte-identical. A store of an older schema is
    /// migrated in place (it is ours), as [`Store::open`] does.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let (conn, version) = verify_ours(path)?;
        if version == SCHEMA_VERSION.to_string() {
            Ok(Self {
                conn,
                path: path.to_path_buf(),
            })
        } else {
            drop(conn);
            Self::open(path)
        }
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// The directory holding checkpoints of unfinished runs: `<store>.checkpoints`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".checkpoints");
        PathBuf::from(p)
    }

    /// Ids of every finished run.
    pub fn done(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM runs")
            .map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<BTreeSet<_>, _>>())
            .map_err(|e| self.err(e));
        ids
    }

    /// Records that grid `grid` holds exactly `ids` (in order), replacing what it held before
    /// (an edited grid file drops the runs it no longer names from its report; their results
    /// stay in the store).
    pub fn register_grid(&mut self, grid: &str, ids: &[&str]) -> Result<(), StoreError> {
        let path = self.path.display().to_string();
        let err = |e: rusqlite::Error| StoreError {
            path: path.clone(),
            message: e.to_string(),
        };
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute("DELETE FROM grid_runs WHERE grid = ?1", [grid])
            .map_err(err)?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT OR REPLACE INTO grid_runs (grid, run_id, position) VALUES (?1, ?2, ?3)",
                )
                .map_err(err)?;
            for (i, id) in ids.iter().enumerate() {
                stmt.execute(params![grid, id, i as i64]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Writes a finished run of the built-in engine (its row, every round, in one
    /// transaction). A run already present is left as it is (same id, same config).
    pub fn insert_run(
        &mut self,
        id: &str,
        config: &RunConfig,
        metrics: &[RoundMetrics],
        summary: &Summary,
        timings: &Timings,
    ) -> Result<(), StoreError> {
        self.insert_run_of(BUILTIN, id, config, metrics, summary, timings)
    }

    /// Writes a finished run computed by `backend` ([`BUILTIN`], or `torch:<model>`; its id
    /// from [`crate::run_id_of`]), as [`Store::insert_run`] does.
    pub fn insert_run_of(
        &mut self,
        backend: &str,
        id: &str,
        config: &RunConfig,
        metrics: &[RoundMetrics],
        summary: &Summary,
        timings: &Timings,
    ) -> Result<(), StoreError> {
        let path = self.path.display().to_string();
        let err = |e: rusqlite::Error| StoreError {
            path: path.clone(),
            message: e.to_string(),
        };
        let labels = Labels::of(config);
        let json = serde_json::to_string(config).map_err(|e| self.err(e))?;
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let tx = self.conn.transaction().map_err(err)?;
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO runs (id, config, dataset, partition, optimizer, aggregator,
                 preaggregators, attack, seed, data_seed, workers, byzantine, rounds,
                 final_accuracy, best_accuracy, final_loss, diverged_at, setup_seconds,
                 train_seconds, checkpoint_seconds, wall_seconds, threads, host,
                 byzadam_version, finished_at, results_version, class_recall, backend)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)",
                params![
                    id,
                    json,
                    labels.dataset,
                    labels.partition,
                    labels.optimizer,
                    labels.aggregator,
                    labels.preaggregators,
                    labels.attack,
                    config.seed as i64,
                    config.data_seed as i64,
                    config.workers as i64,
                    config.byzantine as i64,
                    summary.rounds as i64,
                    nan_to_null(summary.final_accuracy),
                    nan_to_null(summary.best_accuracy),
                    nan_to_null(summary.final_loss),
                    summary.diverged_at.map(|r| r as i64),
                    timings.setup_seconds,
                    timings.train_seconds,
                    timings.checkpoint_seconds,
                    timings.wall_seconds,
                    timings.threads as i64,
                    host,
                    VERSION,
                    now,
                    byzadam_sim::RESULTS_VERSION,
                    (!summary.class_recall.is_empty())
                        .then(|| serde_json::to_string(&summary.class_recall).ok())
                        .flatten(),
                    backend,
                ],
            )
            .map_err(err)?;
        if inserted == 1 {
            let mut stmt = tx
                .prepare(
                    "INSERT OR REPLACE INTO rounds (run_id, round, lr, train_loss, xi_norm,
                     honest_diameter, lambda, diverged, test_accuracy, test_loss)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(err)?;
            for m in metrics {
                stmt.execute(params![
                    id,
                    m.round as i64,
                    nan_to_null(m.lr as f64),
                    nan_to_null(m.train_loss),
                    nan_to_null(m.xi_norm),
                    nan_to_null(m.honest_diameter),
                    m.lambda.and_then(nan_to_null),
                    m.diverged,
                    m.eval.and_then(|e| nan_to_null(e.accuracy)),
                    m.eval.and_then(|e| nan_to_null(e.loss)),
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Every finished run, or only those of grid `grid`, in grid order (else by id).
    pub fn runs(&self, grid: Option<&str>) -> Result<Vec<StoredRun>, StoreError> {
        let sql = match grid {
            Some(_) => {
                "SELECT r.id, r.config, r.rounds, r.final_accuracy, r.best_accuracy, r.final_loss,
                 r.diverged_at, r.train_seconds, r.class_recall, r.backend FROM runs r
                 JOIN grid_runs g ON g.run_id = r.id
                 WHERE g.grid = ?1 ORDER BY g.position"
            }
            None => {
                "SELECT id, config, rounds, final_accuracy, best_accuracy, final_loss,
                 diverged_at, train_seconds, class_recall, backend FROM runs
                 WHERE ?1 IS NULL ORDER BY id"
            }
        };
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([grid], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    Summary {
                        rounds: r.get::<_, i64>(2)? as u64,
                        final_accuracy: r.get::<_, Option<f64>>(3)?.unwrap_or(f64::NAN),
                        best_accuracy: r.get::<_, Option<f64>>(4)?.unwrap_or(f64::NAN),
                        final_loss: r.get::<_, Option<f64>>(5)?.unwrap_or(f64::NAN),
                        diverged_at: r.get::<_, Option<i64>>(6)?.map(|x| x as u64),
                        seconds: r.get(7)?,
                        class_recall: r
                            .get::<_, Option<String>>(8)?
                            .and_then(|j| serde_json::from_str(&j).ok())
                            .unwrap_or_default(),
                    },
                    r.get::<_, String>(9)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|(id, json, summary, backend)| {
                let config = serde_json::from_str(&json)
                    .map_err(|e| self.err(format!("run {id}: stored config unreadable: {e}")))?;
                Ok(StoredRun {
                    id,
                    config,
                    summary,
                    backend,
                })
            })
            .collect()
    }

    /// The results versions of the store's runs, with how many runs each, in increasing order.
    /// More than one means that some runs were computed by builds whose numbers differ for
    /// the same config (see [`byzadam_sim::RESULTS_VERSION`]); version 0 is a run stored before
    /// versions were recorded.
    pub fn results_versions(&self) -> Result<Vec<(u32, usize)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT results_version, COUNT(*) FROM runs
                 GROUP BY results_version ORDER BY results_version",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u32, r.get::<_, i64>(1)? as usize))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e));
        rows
    }

    /// A warning when the store holds runs of more than one results version: which versions,
    /// how many runs each, and which one this build writes. `None` when there is one or none.
    pub fn mixed_versions_warning(&self) -> Result<Option<String>, StoreError> {
        let versions = self.results_versions()?;
        if versions.len() < 2 {
            return Ok(None);
        }
        let list: Vec<String> = versions
            .iter()
            .map(|(v, n)| format!("version {v}: {n} runs"))
            .collect();
        Ok(Some(format!(
            "{} holds runs of {} results versions ({}); this build writes version {}. Runs of \
             different versions were computed by builds that give other numbers for the same \
             config: compare them with care, or re-run the older ones",
            self.path.display(),
            versions.len(),
            list.join(", "),
            byzadam_sim::RESULTS_VERSION
        )))
    }

    /// Names of the grids in the store, with their number of runs and of finished runs.
    pub fn grids(&self) -> Result<Vec<(String, usize, usize)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT g.grid, COUNT(*), COUNT(r.id) FROM grid_runs g
                 LEFT JOIN runs r ON r.id = g.run_id GROUP BY g.grid ORDER BY g.grid",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as usize,
                    r.get::<_, i64>(2)? as usize,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e));
        rows
    }

    /// The test-accuracy curve of run `id`: (round, accuracy) at each evaluation.
    pub fn curve(&self, id: &str) -> Result<Curve, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT round, test_accuracy FROM rounds WHERE run_id = ?1
                 AND test_accuracy IS NOT NULL ORDER BY round",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, f64>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e));
        rows
    }

    /// Copies every run and grid membership of the stores `others` into this one; runs
    /// already here are kept. Returns (runs added, runs already present).
    pub fn merge(&mut self, others: &[PathBuf]) -> Result<(usize, usize), StoreError> {
        let (mut added, mut present) = (0, 0);
        for other in others {
            // Opening checks that it is a store of this schema, without writing to it.
            let src = Store::open_read_only(other)?;
            drop(src);
            let tx = self.conn.transaction().map_err(|e| StoreError {
                path: self.path.display().to_string(),
                message: e.to_string(),
            })?;
            let path = self.path.display().to_string();
            let err = |e: rusqlite::Error| StoreError {
                path: format!("{path} (merging {})", other.display()),
                message: e.to_string(),
            };
            tx.execute("ATTACH DATABASE ?1 AS other", [other.display().to_string()])
                .map_err(err)?;
            let before: i64 = tx
                .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
                .map_err(err)?;
            let theirs: i64 = tx
                .query_row("SELECT COUNT(*) FROM other.runs", [], |r| r.get(0))
                .map_err(err)?;
            tx.execute_batch(
                "INSERT OR IGNORE INTO rounds SELECT * FROM other.rounds
                     WHERE run_id NOT IN (SELECT id FROM main.runs);
                 INSERT OR IGNORE INTO runs SELECT * FROM other.runs;
                 INSERT OR IGNORE INTO grid_runs SELECT * FROM other.grid_runs;",
            )
            .map_err(err)?;
            let after: i64 = tx
                .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
                .map_err(err)?;
            tx.commit().map_err(err)?;
            self.conn
                .execute("DETACH DATABASE other", [])
                .map_err(|e| self.err(e))?;
            added += (after - before) as usize;
            present += (theirs - (after - before)) as usize;
        }
        Ok((added, present))
    }

    /// Writes the tidy per-round table (one row per run and round, with the run's labels)
    /// as CSV to `out`; returns the number of rows.
    pub fn export_csv(&self, out: &mut dyn std::io::Write) -> Result<usize, StoreError> {
        let mut w = csv::Writer::from_writer(out);
        let header = [
            "run_id",
            "backend",
            "dataset",
            "partition",
            "optimizer",
            "aggregator",
            "preaggregators",
            "attack",
            "seed",
            "data_seed",
            "workers",
            "byzantine",
            "round",
            "lr",
            "train_loss",
            "xi_norm",
            "honest_diameter",
            "lambda",
            "diverged",
            "test_accuracy",
            "test_loss",
        ];
        w.write_record(header).map_err(|e| self.err(e))?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.id, r.backend, r.dataset, r.partition, r.optimizer, r.aggregator,
                 r.preaggregators, r.attack, r.seed, r.data_seed, r.workers, r.byzantine,
                 m.round, m.lr, m.train_loss, m.xi_norm, m.honest_diameter, m.lambda,
                 m.diverged, m.test_accuracy, m.test_loss
                 FROM runs r JOIN rounds m ON m.run_id = r.id ORDER BY r.id, m.round",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut count = 0;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let mut record = Vec::with_capacity(header.len());
            for i in 0..header.len() {
                let cell = match row.get_ref(i).map_err(|e| self.err(e))? {
                    rusqlite::types::ValueRef::Null => String::new(),
                    rusqlite::types::ValueRef::Integer(x) => x.to_string(),
                    rusqlite::types::ValueRef::Real(x) => x.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    rusqlite::types::ValueRef::Blob(_) => String::new(),
                };
                record.push(cell);
            }
            w.write_record(&record).map_err(|e| self.err(e))?;
            count += 1;
        }
        w.flush().map_err(|e| self.err(e))?;
        Ok(count)
    }
}
