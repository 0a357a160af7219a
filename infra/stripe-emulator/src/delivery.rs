//! Webhook delivery: every recorded event is POSTed, signed as Stripe signs it, to each
//! configured endpoint that listens for its type.
//!
//! A dispatcher task picks up new events (woken after every state change) and queues them
//! on one worker per endpoint, which sends first attempts in event order. A failed attempt
//! (non-2xx, timeout, connection error) is retried on its own task along the retry
//! schedule, so one failing event never holds up the ones behind it. Every attempt is
//! recorded as a [`Delivery`].

use crate::error::{EmulatorError, EmulatorResult};
use crate::object::Fields;
use crate::server::{lock_anyway, Shared};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};

/// Stripe's webhook user agent.
pub const USER_AGENT: &str = "Stripe/1.0 (+https://stripe.com/docs/webhooks)";

/// Where events are POSTed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub url: String,
    /// The signing secret (`whsec_...`), used as-is as the HMAC key.
    pub secret: String,
    /// Event types to send; empty or `"*"` means all.
    #[serde(default)]
    pub enabled_events: Vec<String>,
}

impl WebhookEndpoint {
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
            enabled_events: Vec::new(),
        }
    }

    pub fn listens_to(&self, event_type: &str) -> bool {
        self.enabled_events.is_empty()
            || self
                .enabled_events
                .iter()
                .any(|e| e == "*" || e == event_type)
    }

    /// Parses `URL=SECRET[;events=a,b]` (the `--webhook-endpoint` / `STRIPE_EMULATOR_WEBHOOKS`
    /// syntax). The secret is what follows the last `=` before any `;`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let (main, options) = match spec.split_once(';') {
            Some((m, o)) => (m, Some(o)),
            None => (spec, None),
        };
        let (url, secret) = main
            .rsplit_once('=')
            .filter(|(u, s)| !u.is_empty() && !s.is_empty())
            .ok_or_else(|| format!("webhook endpoint must be URL=SECRET[;events=a,b]: {spec}"))?;
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(format!("webhook endpoint URL must be http(s): {url}"));
        }
        let mut enabled_events = Vec::new();
        if let Some(opts) = options {
            for opt in opts.split(';').filter(|o| !o.trim().is_empty()) {
                match opt.trim().split_once('=') {
                    Some(("events", list)) => enabled_events.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|e| !e.is_empty())
                            .map(str::to_string),
                    ),
                    _ => return Err(format!("unknown webhook endpoint option: {opt}")),
                }
            }
        }
        Ok(Self {
            url: url.to_string(),
            secret: secret.to_string(),
            enabled_events,
        })
    }

    /// Parses the `STRIPE_EMULATOR_WEBHOOKS` value: one endpoint per line (blank lines and
    /// lines starting with `#` are skipped).
    pub fn parse_list(list: &str) -> Result<Vec<Self>, String> {
        list.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(Self::parse)
            .collect()
    }
}

/// One delivery attempt and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    pub endpoint: String,
    /// 1 for the first attempt of an automatic delivery, 2.. for its retries; manual
    /// deliveries count from 1 on their own.
    pub attempt: u32,
    /// `automatic`, `retry`, `redeliver`, `duplicate` or `manual`.
    pub trigger: String,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Timeout or connection error, when it did not.
    pub error: Option<String>,
    /// A 2xx answer.
    pub succeeded: bool,
    pub duration_ms: u64,
    /// Wall-clock unix milliseconds.
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// The `t=` of the `Stripe-Signature` header sent.
    pub signature_timestamp: i64,
}

/// Retry and timeout settings.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    pub retry_schedule: Vec<Duration>,
    pub timeout: Duration,
}

/// What delivery workers share: the HTTP client and the attempt log.
pub(crate) struct Recorder {
    client: reqwest::Client,
    options: DeliveryOptions,
    records: Mutex<Vec<Delivery>>,
    changed: watch::Sender<u64>,
    /// Bumped by reset: queued jobs and retries of an older generation are dropped.
    generation: AtomicU64,
}

struct Job {
    event_id: String,
    event_type: String,
    payload: Arc<Vec<u8>>,
    generation: u64,
}

struct EndpointWorker {
    endpoint: WebhookEndpoint,
    queue: mpsc::UnboundedSender<Job>,
}

pub(crate) struct Deliverer {
    recorder: Arc<Recorder>,
    endpoints: Mutex<Vec<EndpointWorker>>,
    paused: AtomicBool,
    wake: Notify,
    /// How many events (in order) have been handed to the endpoint queues.
    dispatched: Mutex<usize>,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Deliverer {
    /// `already` events exist (loaded from a state file): they are not delivered again.
    pub fn new(options: DeliveryOptions, already: usize) -> Self {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .user_agent(USER_AGENT)
            .build()
            .unwrap_or_default();
        Self {
            recorder: Arc::new(Recorder {
                client,
                options,
                records: Mutex::default(),
                changed: watch::Sender::new(0),
                generation: AtomicU64::new(0),
            }),
            endpoints: Mutex::default(),
            paused: AtomicBool::new(false),
            wake: Notify::new(),
            dispatched: Mutex::new(already),
        }
    }

    /// Adds an endpoint and starts its worker (needs a tokio runtime).
    pub fn add_endpoint(&self, endpoint: WebhookEndpoint) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let recorder = self.recorder.clone();
        let ep = endpoint.clone();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                if job.generation != recorder.generation.load(Ordering::SeqCst) {
                    continue;
                }
                let first = recorder
                    .attempt(
                        &ep,
                        &job.event_id,
                        &job.event_type,
                        &job.payload,
                        1,
                        "automatic",
                    )
                    .await;
                if !first.succeeded && !recorder.options.retry_schedule.is_empty() {
                    tokio::spawn(retry(recorder.clone(), ep.clone(), job));
                }
            }
        });
        lock_anyway(&self.endpoints).push(EndpointWorker {
            endpoint,
            queue: tx,
        });
    }

    pub fn endpoints(&self) -> Vec<WebhookEndpoint> {
        lock_anyway(&self.endpoints)
            .iter()
            .map(|w| w.endpoint.clone())
            .collect()
    }

    /// New events may exist: the dispatcher looks.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Resumes automatic delivery; with `drop_queued` the events recorded while paused are
    /// skipped instead of sent.
    pub fn resume(&self, drop_queued: bool, event_count: usize) {
        if drop_queued {
            *lock_anyway(&self.dispatched) = event_count;
        }
        self.paused.store(false, Ordering::SeqCst);
        self.wake();
    }

    /// Events recorded but not handed to endpoints yet (while paused).
    pub fn pending(&self, event_count: usize) -> usize {
        event_count.saturating_sub(*lock_anyway(&self.dispatched))
    }

    /// Forgets attempts and queued work (state reset).
    pub fn reset(&self) {
        self.recorder.generation.fetch_add(1, Ordering::SeqCst);
        *lock_anyway(&self.dispatched) = 0;
        lock_anyway(&self.recorder.records).clear();
        self.recorder.changed.send_modify(|n| *n += 1);
    }

    pub fn deliveries(&self, event: Option<&str>) -> Vec<Delivery> {
        lock_anyway(&self.recorder.records)
            .iter()
            .filter(|d| event.is_none_or(|e| d.event_id == e))
            .cloned()
            .collect()
    }

    /// Waits until `done(deliveries)` holds or `timeout` passes; returns the deliveries.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[Delivery]) -> bool,
    ) -> Result<Vec<Delivery>, Vec<Delivery>> {
        let mut rx = self.recorder.changed.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let _ = rx.borrow_and_update();
                if done(&lock_anyway(&self.recorder.records)) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        let all = self.deliveries(None);
        match waited {
            Ok(()) if done(&all) => Ok(all),
            _ => Err(all),
        }
    }

    fn matching(&self, event_type: &str) -> Vec<WebhookEndpoint> {
        lock_anyway(&self.endpoints)
            .iter()
            .filter(|w| w.endpoint.listens_to(event_type))
            .map(|w| w.endpoint.clone())
            .collect()
    }

    /// Hands every not yet dispatched event to the endpoint queues, in order.
    fn dispatch(&self, shared: &Shared) {
        if self.is_paused() {
            return;
        }
        let events: Vec<Value> = {
            let st = lock_anyway(&shared.state);
            let mut dispatched = lock_anyway(&self.dispatched);
            let all: Vec<Value> = st.events.iter().skip(*dispatched).cloned().collect();
            *dispatched += all.len();
            all
        };
        let generation = self.recorder.generation.load(Ordering::SeqCst);
        let workers = lock_anyway(&self.endpoints);
        for event in events {
            let (id, kind) = match event_names(&event) {
                Ok(names) => names,
                Err(e) => {
                    tracing::error!(error = %e, "event not delivered");
                    continue;
                }
            };
            let payload = Arc::new(payload(&event));
            for w in workers.iter().filter(|w| w.endpoint.listens_to(&kind)) {
                let _ = w.queue.send(Job {
                    event_id: id.clone(),
                    event_type: kind.clone(),
                    payload: payload.clone(),
                    generation,
                });
            }
        }
    }
}

fn event_names(event: &Value) -> EmulatorResult<(String, String)> {
    Ok((
        event.id()?.to_string(),
        event.str_field("type")?.to_string(),
    ))
}

/// The exact bytes sent (and signed): the event as Stripe renders it, pretty-printed.
fn payload(event: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(event).unwrap_or_default()
}

async fn retry(recorder: Arc<Recorder>, endpoint: WebhookEndpoint, job: Job) {
    let schedule = recorder.options.retry_schedule.clone();
    for (i, delay) in schedule.into_iter().enumerate() {
        tokio::time::sleep(delay).await;
        if job.generation != recorder.generation.load(Ordering::SeqCst) {
            return;
        }
        let d = recorder
            .attempt(
                &endpoint,
                &job.event_id,
                &job.event_type,
                &job.payload,
                i as u32 + 2,
                "retry",
            )
            .await;
        if d.succeeded {
            return;
        }
    }
}

impl Recorder {
    /// One signed POST of `payload`, recorded.
    async fn attempt(
        &self,
        endpoint: &WebhookEndpoint,
        event_id: &str,
        event_type: &str,
        payload: &[u8],
        attempt: u32,
        trigger: &str,
    ) -> Delivery {
        let signature_timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature =
            shared::stripe::signature::sign(payload, &endpoint.secret, signature_timestamp);
        let started_at_ms = now_ms();
        let clock = Instant::now();
        let result = self
            .client
            .post(&endpoint.url)
            .header("content-type", "application/json; charset=utf-8")
            .header("stripe-signature", signature)
            .header("cache-control", "no-cache")
            .header("accept", "*/*; q=0.5, application/xml")
            .body(payload.to_vec())
            .send()
            .await;
        let (status, error) = match result {
            Ok(resp) => {
                let s = resp.status().as_u16();
                // Drain the body so the connection can be reused.
                let _ = resp.bytes().await;
                (Some(s), None)
            }
            Err(e) if e.is_timeout() => (None, Some(format!("timed out: {e}"))),
            Err(e) => (None, Some(format!("connection error: {e}"))),
        };
        let d = Delivery {
            event_id: event_id.to_string(),
            event_type: event_type.to_string(),
            endpoint: endpoint.url.clone(),
            attempt,
            trigger: trigger.to_string(),
            status,
            error,
            succeeded: status.is_some_and(|s| (200..300).contains(&s)),
            duration_ms: clock.elapsed().as_millis() as u64,
            started_at_ms,
            finished_at_ms: now_ms(),
            signature_timestamp,
        };
        tracing::debug!(event = %d.event_id, endpoint = %d.endpoint, attempt, status = ?d.status, "webhook delivery");
        lock_anyway(&self.records).push(d.clone());
        self.changed.send_modify(|n| *n += 1);
        d
    }
}

/// Runs the dispatcher until the emulator stops (the task is aborted).
pub(crate) async fn run_dispatcher(shared: Arc<Shared>) {
    loop {
        shared.delivery.wake.notified().await;
        shared.delivery.dispatch(&shared);
    }
}

fn event_or_404(shared: &Shared, id: &str) -> EmulatorResult<Value> {
    lock_anyway(&shared.state)
        .events
        .get(id)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("event", id, "id"))
}

/// One attempt per matching endpoint (all endpoints with `endpoint` unset), concurrently.
pub(crate) async fn redeliver(
    shared: &Shared,
    id: &str,
    endpoint: Option<&str>,
) -> EmulatorResult<Vec<Delivery>> {
    deliver_times(shared, id, 1, endpoint, "redeliver").await
}

/// `times` concurrent attempts of one event to each matching endpoint.
pub(crate) async fn deliver_times(
    shared: &Shared,
    id: &str,
    times: u32,
    endpoint: Option<&str>,
    trigger: &str,
) -> EmulatorResult<Vec<Delivery>> {
    let event = event_or_404(shared, id)?;
    let (id, kind) = event_names(&event)?;
    let bytes = Arc::new(payload(&event));
    let d = &shared.delivery;
    let targets: Vec<WebhookEndpoint> = d
        .matching(&kind)
        .into_iter()
        .filter(|e| endpoint.is_none_or(|u| e.url == u))
        .collect();
    let mut set = tokio::task::JoinSet::new();
    for ep in targets {
        for n in 0..times.max(1) {
            let (recorder, ep, id, kind, bytes, trigger) = (
                d.recorder.clone(),
                ep.clone(),
                id.clone(),
                kind.clone(),
                bytes.clone(),
                trigger.to_string(),
            );
            set.spawn(async move {
                recorder
                    .attempt(&ep, &id, &kind, &bytes, n + 1, &trigger)
                    .await
            });
        }
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(delivery) = r {
            out.push(delivery);
        }
    }
    Ok(out)
}

/// Delivers the given events one after another, in that order, each to every matching
/// endpoint, waiting for each response before the next.
pub(crate) async fn deliver_sequence(
    shared: &Shared,
    ids: &[String],
) -> EmulatorResult<Vec<Delivery>> {
    let events = ids
        .iter()
        .map(|id| event_or_404(shared, id))
        .collect::<EmulatorResult<Vec<_>>>()?;
    let d = &shared.delivery;
    let mut out = Vec::new();
    for event in events {
        let (id, kind) = event_names(&event)?;
        let bytes = payload(&event);
        for ep in d.matching(&kind) {
            out.push(
                d.recorder
                    .attempt(&ep, &id, &kind, &bytes, 1, "manual")
                    .await,
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoint_specs() {
        let e = WebhookEndpoint::parse("http://127.0.0.1:3000/hook?x=1=whsec_abc").unwrap();
        assert_eq!(e.url, "http://127.0.0.1:3000/hook?x=1");
        assert_eq!(e.secret, "whsec_abc");
        assert!(e.listens_to("anything"));
        let e = WebhookEndpoint::parse("http://h/w=whsec_1;events=customer.updated,invoice.paid")
            .unwrap();
        assert_eq!(e.enabled_events, vec!["customer.updated", "invoice.paid"]);
        assert!(e.listens_to("invoice.paid") && !e.listens_to("invoice.created"));
        assert!(WebhookEndpoint::parse("http://h/w").is_err());
        assert!(WebhookEndpoint::parse("ftp://h=whsec").is_err());
        let list =
            WebhookEndpoint::parse_list("\n# c\nhttp://a=s1\n  http://b=s2;events=*\n").unwrap();
        assert_eq!(list.len(), 2);
        assert!(list[1].listens_to("x"));
    }
}
