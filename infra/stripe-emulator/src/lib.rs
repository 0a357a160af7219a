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
//! Seed ids are listed in [`seed`]; helper and control endpoints live under `/_emulator/`;
//! portal and checkout pages at the sessions' `url`s; webhooks go to [`EmulatorConfig::webhooks`].

// Stripe objects are large `json!` literals.
#![recursion_limit = "256"]

mod checkout_pages;
mod clock;
mod control;
pub mod delivery;
mod error;
mod expand;
pub mod faults;
pub mod form;
mod idempotency;
mod ids;
mod list;
mod object;
mod pages;
mod params;
mod portal_pages;
mod resources;
pub mod seed;
mod server;
mod shortcuts;
mod state;

pub use delivery::{Delivery, WebhookEndpoint};
pub use error::EmulatorError;
pub use faults::Fault;
pub use server::LoggedRequest;
pub use shortcuts::NewCustomer;
pub use state::{EmulatorEvent, DEFAULT_API_VERSION};

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
    /// Where every recorded event is POSTed (signed), from the start.
    pub webhooks: Vec<WebhookEndpoint>,
    /// Delays before the retries of a failed delivery (default 1 s, 2 s, 5 s).
    pub retry_schedule: Vec<Duration>,
    /// How long one delivery attempt may take (default 10 s).
    pub webhook_timeout: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            port: 0,
            api_key: None,
            state_file: None,
            api_version: DEFAULT_API_VERSION.to_string(),
            webhooks: Vec::new(),
            retry_schedule: vec![
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(5),
            ],
            webhook_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("cannot read state file {path}: {message}")]
    StateFile { path: PathBuf, message: String },
    #[error("cannot seed the emulator: {0}")]
    Seed(EmulatorError),
}

/// A running emulator; stops when dropped.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    dispatcher: tokio::task::JoinHandle<()>,
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
            _ => State::new(&config.api_version).map_err(StartError::Seed)?,
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
        let delivery = delivery::Deliverer::new(
            delivery::DeliveryOptions {
                retry_schedule: config.retry_schedule.clone(),
                timeout: config.webhook_timeout,
            },
            state.events.len(),
        );
        for endpoint in config.webhooks.iter().cloned() {
            delivery.add_endpoint(endpoint);
        }
        let shared = Arc::new(Shared {
            delivery,
            faults: faults::Faults::default(),
            state: Mutex::new(state),
            idempotency: Mutex::default(),
            log: Mutex::default(),
            hooks: Mutex::new(Hooks::default()),
            api_key: config.api_key,
            api_version: config.api_version,
            base_url: format!("http://{addr}"),
            state_file: config.state_file,
        });
        let dispatcher = tokio::spawn(delivery::run_dispatcher(shared.clone()));
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
            dispatcher,
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
    pub fn create_customer(&self, customer: NewCustomer) -> Result<Value, EmulatorError> {
        shortcuts::create_customer(&self.shared, &customer)
    }

    /// Back to the seeded state (also clears idempotency keys, the request log, webhook
    /// deliveries (queued ones are dropped) and injected faults; endpoints stay).
    pub fn reset(&self) -> Result<(), EmulatorError> {
        shortcuts::reset(&self.shared)
    }

    /// The emulator clock (unix seconds) all timestamps come from.
    pub fn now(&self) -> i64 {
        lock_anyway(&self.shared.state).now()
    }

    /// Moves the emulator clock forward by `seconds`, running what falls due on the way
    /// (scheduled cancellations end, active subscriptions renew and bill). Returns
    /// `{now, happened: [{at, subscription, action}]}`.
    pub fn advance_clock(&self, seconds: i64) -> Result<Value, EmulatorError> {
        clock::advance_by(&self.shared, seconds)
    }

    /// Like [`Emulator::advance_clock`], to an absolute unix time.
    pub fn advance_clock_to(&self, unix: i64) -> Result<Value, EmulatorError> {
        clock::advance_to(&self.shared, unix)
    }

    /// Adds a webhook endpoint; it receives events recorded from now on.
    pub fn add_webhook_endpoint(&self, endpoint: WebhookEndpoint) {
        self.shared.delivery.add_endpoint(endpoint);
    }

    pub fn webhook_endpoints(&self) -> Vec<WebhookEndpoint> {
        self.shared.delivery.endpoints()
    }

    /// Every delivery attempt so far (optionally of one event), in the order they finished.
    pub fn deliveries(&self, event: Option<&str>) -> Vec<Delivery> {
        self.shared.delivery.deliveries(event)
    }

    /// Waits (at most `timeout`) until `done(all deliveries)` holds. `Err` carries the
    /// deliveries seen when the time ran out.
    pub async fn wait_for_deliveries(
        &self,
        timeout: Duration,
        done: impl FnMut(&[Delivery]) -> bool,
    ) -> Result<Vec<Delivery>, Vec<Delivery>> {
        self.shared.delivery.wait_for(timeout, done).await
    }

    /// Sends one event again to each endpoint listening for it (one attempt each, no
    /// retries), concurrently; returns the attempts.
    pub async fn redeliver(&self, event_id: &str) -> Result<Vec<Delivery>, EmulatorError> {
        delivery::redeliver(&self.shared, event_id, None).await
    }

    /// Sends one event `times` times concurrently to each endpoint listening for it.
    pub async fn deliver_times(
        &self,
        event_id: &str,
        times: u32,
    ) -> Result<Vec<Delivery>, EmulatorError> {
        delivery::deliver_times(&self.shared, event_id, times, None, "duplicate").await
    }

    /// Sends the given events one by one in this order, waiting for each response.
    pub async fn deliver_in_order(
        &self,
        event_ids: &[String],
    ) -> Result<Vec<Delivery>, EmulatorError> {
        delivery::deliver_sequence(&self.shared, event_ids).await
    }

    /// Stops automatic delivery; new events wait for [`Emulator::resume_delivery`].
    pub fn pause_delivery(&self) {
        self.shared.delivery.pause();
    }

    /// Resumes automatic delivery: events recorded while paused go out in order, or are
    /// skipped with `drop_queued`.
    pub fn resume_delivery(&self, drop_queued: bool) {
        let count = lock_anyway(&self.shared.state).events.len();
        self.shared.delivery.resume(drop_queued, count);
    }

    /// The next `fault.times` matching `/v1` requests fail (or are delayed) as described.
    pub fn inject_fault(&self, fault: Fault) -> Result<(), EmulatorError> {
        faults::validate(&fault)?;
        self.shared.faults.add(fault);
        Ok(())
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear();
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
        self.add_hold(method, path, false)
    }

    /// Holds the answer of the next request to one endpoint: it executes at once (so it reads
    /// the state of that moment) and is answered on [`HeldRequests::release`]; requests after
    /// it pass. A stale view arriving late, deterministically.
    pub fn hold_first_answer(&self, method: &str, path: &str) -> HeldRequests {
        self.add_hold(method, path, true)
    }

    fn add_hold(&self, method: &str, path: &str, first_answer_only: bool) -> HeldRequests {
        let key = format!("{} {path}", method.to_ascii_uppercase());
        let hold = Arc::new(Hold {
            arrived: watch::Sender::new(0),
            open: watch::Sender::new(false),
            first_answer_only,
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
        self.dispatcher.abort();
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
        self.dispatcher.abort();
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
