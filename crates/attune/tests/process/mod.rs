//! The one harness of the binary's integration tests: a real `attune serve` process on a free loopback port
//! over a data directory, and the `attune keys create` that gives it a key.
//! [`TestData`] is the store of a test that must hold on both backends: a temporary data directory, and with
//! `ATTUNE_TEST_BACKEND=postgres` a scratch schema of the database at `ATTUNE_TEST_DATABASE_URL`, which the
//! processes are pointed at.

#![allow(dead_code)]

use attune_store::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

pub const BINARY: &str = env!("CARGO_BIN_EXE_attune");

/// A running `attune serve`; killed when dropped.
pub struct Served {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// `127.0.0.1:<port>`.
    pub address: String,
}

impl Served {
    /// Starts `attune serve` on `data_dir` with `extra` flags and waits (up to two minutes) for the address
    /// line it prints first.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawn(&["--data-dir".to_string(), data_dir.to_str().unwrap().to_string()], extra)
    }

    fn spawn(store_flags: &[String], extra: &[&str]) -> Self {
        let mut child = Command::new(BINARY)
            .args(["serve", "--listen", "127.0.0.1:0", "--log", "warn"])
            .args(store_flags)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start attune serve");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = sender.send(lines.next());
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let first_line = match receiver.recv_timeout(Duration::from_secs(120)) {
            Ok(Some(Ok(line))) => line,
            Ok(other) => panic!("attune serve exited before printing its address: {other:?}"),
            Err(_) => panic!("attune serve printed no address within 120 s"),
        };
        let base = first_line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first_line:?}"))
            .to_string();
        let address = base.trim_start_matches("http://").to_string();
        Self { child, base, address }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new secret key of `tenant` (created with it when missing), from `attune keys create`.
pub fn create_key(data_dir: &Path, tenant: &str) -> String {
    keys_create(&["--data-dir".to_string(), data_dir.to_str().unwrap().to_string()], tenant)
}

fn keys_create(store_flags: &[String], tenant: &str) -> String {
    let output = Command::new(BINARY)
        .args(["keys", "create", "--tenant", tenant, "--kind", "secret"])
        .args(store_flags)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// A test's store: SQLite in a temporary directory, or a scratch PostgreSQL schema (dropped with it).
pub struct TestData {
    pub directory: tempfile::TempDir,
    /// The scratch schema's store; `None` on SQLite.
    postgres: Option<(String, PostgresStore)>,
}

impl TestData {
    /// On the backend `ATTUNE_TEST_BACKEND` names (`postgres`, or else SQLite).
    pub fn new() -> Self {
        let directory = tempfile::tempdir().unwrap();
        if std::env::var("ATTUNE_TEST_BACKEND").is_ok_and(|backend| backend == "postgres") {
            let url = attune_store::test_database_url();
            let store = PostgresStore::scratch(&url).unwrap_or_else(|error| {
                panic!("ATTUNE_TEST_BACKEND=postgres needs the database of ATTUNE_TEST_DATABASE_URL ({url}): {error}")
            });
            return Self { directory, postgres: Some((url, store)) };
        }
        Self { directory, postgres: None }
    }

    /// The flags that point a command at this store.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = vec!["--data-dir".to_string(), self.directory.path().to_str().unwrap().to_string()];
        if let Some((url, store)) = &self.postgres {
            flags.extend(["--database-url", url, "--database-schema", store.schema()].map(String::from));
        }
        flags
    }

    /// A store of this test's data, opened beside the processes.
    pub fn open(&self) -> Arc<dyn Store> {
        match &self.postgres {
            Some((url, store)) => {
                let options = PostgresOptions { schema: Some(store.schema().to_string()), ..Default::default() };
                Arc::new(PostgresStore::connect(url, options).unwrap())
            }
            None => {
                let path = self.directory.path().join("attune.sqlite3");
                Arc::new(SqliteStore::open(path, SqliteOptions::default()).unwrap())
            }
        }
    }

    /// Starts `attune serve` on this store with `extra` flags.
    pub fn serve(&self, extra: &[&str]) -> Served {
        Served::spawn(&self.flags(), extra)
    }

    /// A new secret key of `tenant` in this store.
    pub fn create_key(&self, tenant: &str) -> String {
        keys_create(&self.flags(), tenant)
    }
}
