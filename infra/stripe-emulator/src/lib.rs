//! A stateful, offline emulator of the Stripe API subset Portico uses, for development and
//! tests (never deployed).
//!
//! ```no_run
//! # async fn demo() -> Result<(), stripe_emulator::StartError> {
//! let emulator = stripe_emulator::Emulator::start(Default::default()).await?;
//! let base = emulator.base_url(); // point the Stripe client here, any `sk_test_...` key
//! # let _ = base; Ok(()) }
//! ```
//!
//! Seed ids are listed in [`seed`]; helper endpoints live under `/_emulator/`.

// Stripe objects are large `json!` literals.
#![recursion_limit = "256"]

mod error;
mod expand;
pub mod form;
mod idempotency;
mod ids;
mod list;
mod params;
mod resources;
pub mod seed;
mod server;
mod state;
mod testkit;

pub use error::ApiError;
pub use server::LoggedRequest;
pub use state::{EmulatorEvent, DEFAULT_API_VERSION};
pub use testkit::NewCustomer;

use serde_json::Value;
use server::{lock_anyway, Hold, Hooks, Shared};
use state::State;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// When set, only this secret key is accepted; otherwise any `sk_test_...` key.
    pub api_key: Option<String>,
    /// JSON file holding the state: loaded at start, rewritten after every change.
    pub state_file: Option<PathBuf>,
    /// The emulated account's default API version (rendered into events).
    pub api_version: String,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            port: 0,
            api_key: None,
            state_file: None,
            api_version: DEFAULT_API_VERSION.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("cannot read state file {path}: {message}")]
    StateFile { path: PathBuf, message: String },
}

/// A running emulator; stops when dropped.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Binds 127.0.0.1 and serves on the current tokio runtime.
    pub async fn start(config: EmulatorConfig) -> Result<Self, StartError> {
        let state = match &config.state_file {
            Some(path) if path.exists() => {
                let bytes = std::fs::read(path).map_err(|e| StartError::StateFile {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                serde_json::from_slice::<State>(&bytes).map_err(|e| StartError::StateFile {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            _ => State::new(&config.api_version),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| StartError::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            port: config.port,
            source,
        })?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            idempotency: Mutex::default(),
            log: Mutex::default(),
            hooks: Mutex::new(Hooks::default()),
            api_key: config.api_key,
            api_version: config.api_version,
            base_url: format!("http://{addr}"),
            state_file: config.state_file,
        });
        let app = server::router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "stripe emulator server stopped");
            }
        });
        Ok(Self {
            shared,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`, to use as the Stripe API base.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every `/v1` request so far, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock_anyway(&self.shared.log).clone()
    }

    pub fn clear_requests(&self) {
        lock_anyway(&self.shared.log).clear();
    }

    /// Every event so far, in the order they happened (`sequence` 1, 2, ...).
    pub fn events(&self) -> Vec<EmulatorEvent> {
        lock_anyway(&self.shared.state).events_in_order()
    }

    /// Any stored object by id (`cus_`, `sub_`, `in_`, `pm_`, `price_`, `bpc_`, ...).
    pub fn object(&self, id: &str) -> Option<Value> {
        lock_anyway(&self.shared.state).lookup(id).cloned()
    }

    /// A customer with a default card and an active subscription, with the events Stripe
    /// would record. Returns `{customer, payment_method, subscription, invoice}`.
    pub fn create_customer(&self, customer: NewCustomer) -> Result<Value, ApiError> {
        testkit::create_customer(&self.shared, &customer)
    }

    /// Back to the seeded state (also clears idempotency keys and the request log).
    pub fn reset(&self) -> Result<(), ApiError> {
        testkit::reset(&self.shared)
    }

    /// The emulator clock (unix seconds) all timestamps come from.
    pub fn now(&self) -> i64 {
        lock_anyway(&self.shared.state).now()
    }

    /// Moves the emulator clock forward (nothing is billed yet on the way).
    pub fn advance_clock(&self, seconds: i64) {
        lock_anyway(&self.shared.state).clock_offset += seconds;
    }

    /// Adds (or with `None` removes) a delay on one endpoint, e.g. `("POST", "/v1/customers")`.
    pub fn set_latency(&self, method: &str, path: &str, delay: Option<Duration>) {
        let mut hooks = lock_anyway(&self.shared.hooks);
        let key = format!("{} {path}", method.to_ascii_uppercase());
        match delay {
            Some(d) => hooks.latency.insert(key, d),
            None => hooks.latency.remove(&key),
        };
    }

    /// Holds requests to one endpoint once they are executing (after the idempotency
    /// check) until [`HeldRequests::release`] or drop: deterministic concurrency tests.
    pub fn hold(&self, method: &str, path: &str) -> HeldRequests {
        let key = format!("{} {path}", method.to_ascii_uppercase());
        let hold = Arc::new(Hold {
            arrived: watch::Sender::new(0),
            open: watch::Sender::new(false),
        });
        lock_anyway(&self.shared.hooks)
            .holds
            .insert(key.clone(), hold.clone());
        HeldRequests {
            shared: self.shared.clone(),
            key,
            hold,
        }
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Requests parked by [`Emulator::hold`].
pub struct HeldRequests {
    shared: Arc<Shared>,
    key: String,
    hold: Arc<Hold>,
}

impl HeldRequests {
    /// Waits until `n` requests are parked.
    pub async fn wait_for_arrivals(&self, n: usize) {
        let mut rx = self.hold.arrived.subscribe();
        let _ = rx.wait_for(|a| *a >= n).await;
    }

    pub fn arrivals(&self) -> usize {
        *self.hold.arrived.borrow()
    }

    /// Lets parked and future requests through and removes the hold.
    pub fn release(&self) {
        self.hold.open.send_replace(true);
        lock_anyway(&self.shared.hooks).holds.remove(&self.key);
    }
}

impl Drop for HeldRequests {
    fn drop(&mut self) {
        self.release();
    }
}
