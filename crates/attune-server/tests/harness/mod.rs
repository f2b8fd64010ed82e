//! The one harness of the server's integration tests: a real server on a loopback port (port 0) over a
//! temporary store, started on a thread of its own, stopped gracefully, and restarted on the same store.
//! Each test file seeds the store and keeps the tenants and keys it needs beside a [`Server`].
//!
//! The store is SQLite in a temporary directory, or, with `ATTUNE_TEST_BACKEND=postgres`, a schema of its own
//! in the PostgreSQL database of `ATTUNE_TEST_DATABASE_URL` (dropped afterwards): CI runs every test file on
//! both.

#![allow(dead_code)]

use attune_core::{ApiKeyKind, TenantId};
use attune_engine::keys::{create_api_key, create_tenant};
use attune_engine::{Engine, EngineConfig};
use attune_server::{AppState, ServerOptions};
use attune_store::{PostgresStore, SqliteOptions, SqliteStore, Store, Synchronous};
use reqwest::blocking::Client;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running server and the store behind it.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A blocking client that does not follow redirects.
    pub client: Client,
    pub store: Arc<dyn Store>,
    directory: tempfile::TempDir,
    running: Option<Running>,
}

struct Running {
    shutdown: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

/// Whether the tests run on PostgreSQL (`ATTUNE_TEST_BACKEND=postgres`) instead of SQLite.
pub fn on_postgres() -> bool {
    std::env::var("ATTUNE_TEST_BACKEND").is_ok_and(|backend| backend == "postgres")
}

/// A temporary store; on SQLite `synchronous=NORMAL` unless `durable` (a test of durability or of timings).
pub fn store(durable: bool) -> (tempfile::TempDir, Arc<dyn Store>) {
    let directory = tempfile::tempdir().unwrap();
    if on_postgres() {
        let url = attune_store::test_database_url();
        let store = PostgresStore::scratch(&url).unwrap_or_else(|error| {
            panic!("ATTUNE_TEST_BACKEND=postgres needs the database of ATTUNE_TEST_DATABASE_URL ({url}): {error}")
        });
        return (directory, Arc::new(store));
    }
    let synchronous = if durable { Synchronous::Full } else { Synchronous::Normal };
    let options = SqliteOptions { synchronous, ..Default::default() };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(directory.path().join("attune.sqlite3"), options).unwrap());
    (directory, store)
}

/// The session's form token in a console page (every console form carries it).
pub fn form_token(page: &str) -> String {
    let pattern = "name=\"form_token\" value=\"";
    let at = page.find(pattern).expect("a form token in the page") + pattern.len();
    page[at..][..page[at..].find('"').unwrap()].to_string()
}

/// Creates tenant `slug` named `name`.
pub fn tenant(store: &dyn Store, slug: &str, name: &str) -> TenantId {
    let tenant = TenantId::parse_slug(slug).unwrap();
    create_tenant(store, &tenant, name).unwrap();
    tenant
}

/// A new API key of `tenant`.
pub fn key(store: &dyn Store, tenant: &TenantId, kind: ApiKeyKind, label: &str) -> String {
    create_api_key(store, tenant, kind, label).unwrap().key
}

impl Server {
    /// Serves `store` (kept in `directory`) with these options until the server is dropped or restarted.
    pub fn launch(
        directory: tempfile::TempDir,
        store: Arc<dyn Store>,
        options: ServerOptions,
        engine: EngineConfig,
    ) -> Self {
        let state = AppState::new(Engine::new(store.clone(), engine), options);
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let (address_sender, address_receiver) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                address_sender.send(listener.local_addr().unwrap()).unwrap();
                let stop = async move {
                    let _ = stopped.await;
                };
                attune_server::serve(listener, state, stop).await.unwrap();
            });
        });
        let address = address_receiver.recv().unwrap();
        Self {
            base: format!("http://{address}"),
            client: Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            store,
            directory,
            running: Some(Running { shutdown, thread }),
        }
    }

    /// Stops this server (every queued event written, background work ended) and serves the same store with
    /// new options: a restart, with nothing kept in memory.
    pub fn restart(mut self, options: ServerOptions, engine: EngineConfig) -> Self {
        self.stop();
        let directory = tempfile::tempdir().unwrap();
        let directory = std::mem::replace(&mut self.directory, directory);
        Self::launch(directory, self.store.clone(), options, engine)
    }

    /// Stops the server gracefully and waits until it has.
    pub fn stop(&mut self) {
        if let Some(Running { shutdown, thread }) = self.running.take() {
            let _ = shutdown.send(());
            thread.join().expect("the server thread panicked");
        }
    }

    /// Signs in to the console with `key` as a browser does; the `Cookie` header value of the new session.
    pub fn console_cookie(&self, key: &str) -> String {
        let response = self.client.post(self.url("/console/login")).form(&[("key", key)]).send().unwrap();
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|value| value.starts_with("attune_console="))
            .unwrap_or_else(|| panic!("no session cookie after signing in: {}", response.status()));
        cookie.split(';').next().unwrap().to_string()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    /// Asks the server to stop without waiting for it: the next test need not wait for this one's tasks.
    fn drop(&mut self) {
        if let Some(Running { shutdown, .. }) = self.running.take() {
            let _ = shutdown.send(());
        }
    }
}
