//! Operational metrics, written as CloudWatch Embedded Metric Format (EMF) lines into the
//! function's own log output: CloudWatch turns them into metrics, so recording one costs no API
//! call at request time.
//!
//! Domains record facts through the typed functions below ([`sync`], [`webhook_delivery`],
//! [`stripe_retry`], …) and know nothing of EMF. A fact goes to the invocation under way (a
//! task-local set by [`Metrics::invocation`]), which adds counts up and collects durations by
//! dimension values; when it ends, metrique's EMF writer formats one line per set of
//! dimension values, and all of them reach the log in one write.
//!
//! Dimensions are only `Function` and the low-cardinality names of fixed sets (workflow,
//! outcome, event type, error class): never an id, an email or a secret. Values are counts
//! and milliseconds.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrique_writer_core::format::Format;
use metrique_writer_core::unit::NegativeScale;
use metrique_writer_core::{
    Entry, EntryWriter, MetricFlags, Observation, Unit, Value, ValueWriter,
};
use metrique_writer_format_emf::Emf;

use crate::portal::Workflow;

/// Every metric Portico writes; README's "Operating Portico" describes each.
pub mod names {
    pub const COLD_STARTS: &str = "ColdStarts";
    /// Dimension `Workflow`.
    pub const PORTAL_SESSIONS: &str = "PortalSessions";
    /// Dimension `Changes` (`with`, `without`).
    pub const PORTAL_RETURNS: &str = "PortalReturns";
    /// Dimension `Outcome` ([`super::SyncResult`]).
    pub const SYNCS: &str = "Syncs";
    /// Milliseconds; dimension `Outcome`.
    pub const SYNC_DURATION: &str = "SyncDuration";
    /// Dimension `Outcome` ([`super::Delivery`]): what the alarms watch.
    pub const WEBHOOK_DELIVERIES: &str = "WebhookDeliveries";
    /// Dimensions `EventType` and `Outcome`: the same deliveries, by event type.
    pub const WEBHOOK_EVENTS: &str = "WebhookEvents";
    /// Milliseconds from `event.created` to processing.
    pub const WEBHOOK_LAG: &str = "WebhookLag";
    /// Milliseconds a delivery took, verification to answer.
    pub const WEBHOOK_DURATION: &str = "WebhookDuration";
    /// Requests sent to Stripe, retries included.
    pub const STRIPE_CALLS: &str = "StripeCalls";
    /// Dimension `Class` ([`super::StripeFailure`]).
    pub const STRIPE_RETRIES: &str = "StripeRetries";
    /// Calls that failed for good; dimension `Class`.
    pub const STRIPE_ERRORS: &str = "StripeErrors";
    /// Requests refused because another transaction held an item (each refusal counts).
    pub const DYNAMODB_CONFLICTS: &str = "DynamoDbConflicts";
    /// Requests DynamoDB still throttled after the SDK's own retries.
    pub const DYNAMODB_THROTTLES: &str = "DynamoDbThrottles";
    /// Every failed attempt of a DynamoDB request, the ones the SDK retried with success
    /// included; dimension `Class` ([`super::DynamoDbFailure`]).
    pub const DYNAMODB_FAILED_ATTEMPTS: &str = "DynamoDbFailedAttempts";
    /// Customers a reconcile run found stored differently from Stripe (see [`super::reconcile_drift`]).
    pub const RECONCILE_DRIFT: &str = "ReconcileDrift";
}

/// How a customer sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncResult {
    /// Stored a view that differs from the previous one.
    Changed,
    /// Nothing changed (or a newer sync had already stored the customer).
    Unchanged,
    /// Gave up: the customer kept changing under the sync.
    Contended,
    /// Stripe or DynamoDB failed.
    Failed,
}

impl SyncResult {
    fn as_str(self) -> &'static str {
        match self {
            SyncResult::Changed => "changed",
            SyncResult::Unchanged => "unchanged",
            SyncResult::Contended => "contended",
            SyncResult::Failed => "failed",
        }
    }
}

/// What became of one webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Processed,
    Duplicate,
    Ignored,
    RejectedSignature,
    /// Answered 4xx/5xx for any other reason: Stripe retries it.
    Failed,
}

impl Delivery {
    fn as_str(self) -> &'static str {
        match self {
            Delivery::Processed => "processed",
            Delivery::Duplicate => "duplicate",
            Delivery::Ignored => "ignored",
            Delivery::RejectedSignature => "rejected_signature",
            Delivery::Failed => "failed",
        }
    }
}

/// Why a Stripe attempt failed, as a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeFailure {
    /// 429.
    RateLimited,
    /// 5xx.
    Server,
    /// Any other 4xx.
    Client,
    Timeout,
    Connection,
    /// Everything else: the budget, an undecodable body, a missing key.
    Other,
}

impl StripeFailure {
    fn as_str(self) -> &'static str {
        match self {
            StripeFailure::RateLimited => "rate_limited",
            StripeFailure::Server => "server",
            StripeFailure::Client => "client",
            StripeFailure::Timeout => "timeout",
            StripeFailure::Connection => "connection",
            StripeFailure::Other => "other",
        }
    }
}

/// Why a DynamoDB attempt failed, as a fixed set: the kinds the SDK retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamoDbFailure {
    /// 400 `ThrottlingException`, `ProvisionedThroughputExceededException` or
    /// `RequestLimitExceeded`.
    Throttled,
    /// 5xx.
    Server,
    /// No answer: a timeout or a connection that failed.
    NoAnswer,
}

impl DynamoDbFailure {
    fn as_str(self) -> &'static str {
        match self {
            DynamoDbFailure::Throttled => "throttled",
            DynamoDbFailure::Server => "server",
            DynamoDbFailure::NoAnswer => "no_answer",
        }
    }
}

pub fn dynamodb_failed_attempt(class: DynamoDbFailure) {
    count(
        &[("Class", class.as_str())],
        names::DYNAMODB_FAILED_ATTEMPTS,
    );
}

pub fn portal_session_created(workflow: Workflow) {
    count(&[("Workflow", workflow.as_str())], names::PORTAL_SESSIONS);
}

pub fn portal_return(changed: bool) {
    let changes = if changed { "with" } else { "without" };
    count(&[("Changes", changes)], names::PORTAL_RETURNS);
}

pub fn sync(result: SyncResult, took: Duration) {
    let dims = [("Outcome", result.as_str())];
    count(&dims, names::SYNCS);
    time(&dims, names::SYNC_DURATION, took);
}

/// One delivery. `event_type` is only known (and only trusted) once the signature verified;
/// a type Portico does not act on is counted as `other`, so the dimension stays a small set.
pub fn webhook_delivery(
    delivery: Delivery,
    event_type: Option<&str>,
    lag: Option<Duration>,
    took: Duration,
) {
    let outcome = delivery.as_str();
    count(&[("Outcome", outcome)], names::WEBHOOK_DELIVERIES);
    let event_type = match event_type {
        Some(t) if crate::webhook::is_handled(t) && is_type_name(t) => t,
        Some(_) => "other",
        None => "unknown",
    };
    count(
        &[("EventType", event_type), ("Outcome", outcome)],
        names::WEBHOOK_EVENTS,
    );
    time(&[], names::WEBHOOK_DURATION, took);
    if let Some(lag) = lag {
        time(&[], names::WEBHOOK_LAG, lag);
    }
}

/// Stripe's event types are dotted lower-case words; `customer.*` is a prefix, so a signed but
/// odd type must not widen the dimension.
fn is_type_name(t: &str) -> bool {
    t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
}

pub fn stripe_call() {
    count(&[], names::STRIPE_CALLS);
}

pub fn stripe_retry(class: StripeFailure) {
    count(&[("Class", class.as_str())], names::STRIPE_RETRIES);
}

pub fn stripe_error(class: StripeFailure) {
    count(&[("Class", class.as_str())], names::STRIPE_ERRORS);
}

pub fn dynamodb_conflict() {
    count(&[], names::DYNAMODB_CONFLICTS);
}

pub fn dynamodb_throttle() {
    count(&[], names::DYNAMODB_THROTTLES);
}

/// The hook for the reconcile function: once per run, inside its [`Metrics::invocation`], with
/// the number of customers it found stored differently from Stripe. 0 is written too, so the
/// alarm sees a clean run as 0 rather than as missing data.
pub fn reconcile_drift(customers: u64) {
    add(&[], names::RECONCILE_DRIFT, customers);
}

fn count(dimensions: &[(&'static str, &str)], name: &'static str) {
    add(dimensions, name, 1);
}

fn add(dimensions: &[(&'static str, &str)], name: &'static str, n: u64) {
    record(dimensions, |line| {
        *line.counts.entry(name).or_default() += n
    });
}

fn time(dimensions: &[(&'static str, &str)], name: &'static str, took: Duration) {
    record(dimensions, |line| {
        line.durations.entry(name).or_default().push(took)
    });
}

/// Adds to the current invocation's line for these dimension values; outside an invocation
/// (start-up, a spawned task) the fact goes nowhere.
fn record(dimensions: &[(&'static str, &str)], update: impl FnOnce(&mut Values)) {
    let _ = CURRENT.try_with(|recorded| {
        let key: Dimensions = dimensions
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .collect();
        let mut recorded = recorded.lock().unwrap_or_else(|p| p.into_inner());
        update(recorded.entry(key).or_default());
    });
}

/// Dimension names and values of one line, besides `Function`, sorted by name.
type Dimensions = BTreeMap<&'static str, String>;

#[derive(Default)]
struct Values {
    counts: BTreeMap<&'static str, u64>,
    durations: BTreeMap<&'static str, Vec<Duration>>,
}

type Recorded = Arc<Mutex<BTreeMap<Dimensions, Values>>>;

tokio::task_local! {
    static CURRENT: Recorded;
}

/// One EMF line: what metrique's writer formats.
struct Line<'a> {
    function: &'a str,
    request_id: &'a str,
    dimensions: &'a Dimensions,
    values: &'a Values,
}

impl Entry for Line<'_> {
    fn write<'a>(&'a self, writer: &mut impl EntryWriter<'a>) {
        writer.value("Function", self.function);
        for (name, value) in self.dimensions {
            writer.value(*name, value.as_str());
        }
        for (name, n) in &self.values.counts {
            writer.value(*name, n);
        }
        for (name, took) in &self.values.durations {
            writer.value(*name, &Millis(took));
        }
        // A property, not a dimension: finds the request's log lines.
        writer.value("request_id", self.request_id);
    }
}

/// Durations as one metric with several observations (an EMF array), in milliseconds.
struct Millis<'a>(&'a [Duration]);

impl Value for Millis<'_> {
    const UNIT: Unit = Unit::Second(NegativeScale::Milli);

    fn write(&self, writer: impl ValueWriter) {
        let observations = self.0.iter().map(|d| Observation::Floating(millis(*d)));
        writer.metric(observations, Self::UNIT, [], MetricFlags::empty());
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Where an invocation's lines go: stdout in Lambda (its log stream), a buffer in tests.
enum Output {
    Stdout,
    Capture(Mutex<Vec<u8>>),
}

/// A function's metrics: its namespace and name, and where lines go. Built once per process
/// (once per [`crate::services::Services`]); [`Metrics::invocation`] wraps each request.
pub struct Metrics {
    namespace: String,
    function: String,
    output: Output,
    cold: AtomicBool,
}

impl Metrics {
    /// Lines to stdout, in `namespace`, every metric with the dimension `Function=function`.
    pub fn stdout(namespace: &str, function: &str) -> Self {
        Self::build(namespace, function, Output::Stdout)
    }

    /// Lines kept in memory for [`Metrics::take_lines`]; formatted by the same code as stdout's.
    pub fn capture(namespace: &str, function: &str) -> Self {
        Self::build(namespace, function, Output::Capture(Mutex::default()))
    }

    fn build(namespace: &str, function: &str, output: Output) -> Self {
        Metrics {
            namespace: namespace.to_string(),
            function: function.to_string(),
            output,
            cold: AtomicBool::new(true),
        }
    }

    /// Runs one invocation, collecting the facts its code records, then writes them (with its
    /// request id as a property, for finding the request's log lines).
    pub async fn invocation<T>(
        &self,
        request_id: &str,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let recorded = Recorded::default();
        let result = CURRENT
            .scope(recorded.clone(), async {
                if self.cold.swap(false, Ordering::Relaxed) {
                    count(&[], names::COLD_STARTS);
                }
                work.await
            })
            .await;
        let recorded = std::mem::take(&mut *recorded.lock().unwrap_or_else(|p| p.into_inner()));
        self.write(request_id, &recorded);
        result
    }

    fn write(&self, request_id: &str, recorded: &BTreeMap<Dimensions, Values>) {
        // Formatted into one buffer first, so the invocation's lines reach the log in one write.
        let mut lines = Vec::new();
        for (dimensions, values) in recorded {
            let set = std::iter::once("Function")
                .chain(dimensions.keys().copied())
                .map(str::to_string)
                .collect();
            let mut emf = Emf::builder(self.namespace.clone(), vec![set]).build();
            let line = Line {
                function: &self.function,
                request_id,
                dimensions,
                values,
            };
            if let Err(e) = emf.format(&line, &mut lines) {
                tracing::error!(error = %e, "metrics could not be formatted");
            }
        }
        if lines.is_empty() {
            return;
        }
        match &self.output {
            Output::Stdout => {
                if let Err(e) = std::io::stdout().lock().write_all(&lines) {
                    tracing::error!(error = %e, "metrics could not be written");
                }
            }
            Output::Capture(buffer) => buffer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(&lines),
        }
    }

    /// The EMF documents written since the last call (captured metrics only; empty for stdout).
    pub fn take_lines(&self) -> Vec<serde_json::Value> {
        let Output::Capture(buffer) = &self.output else {
            return Vec::new();
        };
        let bytes = std::mem::take(&mut *buffer.lock().unwrap_or_else(|p| p.into_inner()));
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric<'a>(lines: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
        lines.iter().filter(|l| l.get(name).is_some()).collect()
    }

    #[tokio::test]
    async fn an_invocation_writes_what_it_recorded_once_with_its_dimensions() {
        let m = Metrics::capture("PorticoTest", "unit");
        m.invocation("req-1", async {
            sync(SyncResult::Changed, Duration::from_millis(12));
            sync(SyncResult::Changed, Duration::from_millis(30));
            stripe_retry(StripeFailure::RateLimited);
        })
        .await;
        let lines = m.take_lines();
        let syncs = metric(&lines, names::SYNCS);
        assert_eq!(syncs.len(), 1);
        let line = syncs[0];
        assert_eq!(line[names::SYNCS], 2);
        assert_eq!(line["Outcome"], "changed");
        assert_eq!(line["Function"], "unit");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(
            line[names::SYNC_DURATION],
            serde_json::json!({"Values": [12, 30], "Counts": [1, 1]})
        );
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "PorticoTest");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["Function", "Outcome"]])
        );
        let duration = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Name"] == names::SYNC_DURATION)
            .unwrap();
        assert_eq!(duration["Unit"], "Milliseconds");
        let retries = metric(&lines, names::STRIPE_RETRIES);
        assert_eq!(retries[0]["Class"], "rate_limited");
        assert_eq!(metric(&lines, names::COLD_STARTS)[0][names::COLD_STARTS], 1);

        // The next invocation writes only its own values: no cold start, no old counts.
        m.invocation("req-2", async { portal_return(false) }).await;
        let lines = m.take_lines();
        assert!(metric(&lines, names::SYNCS).is_empty());
        assert!(metric(&lines, names::COLD_STARTS).is_empty());
        assert_eq!(
            metric(&lines, names::PORTAL_RETURNS)[0]["Changes"],
            "without"
        );
        assert_eq!(
            metric(&lines, names::PORTAL_RETURNS)[0]["request_id"],
            "req-2"
        );
    }

    #[tokio::test]
    async fn two_functions_in_one_process_keep_their_own_values() {
        let a = Metrics::capture("PorticoTest", "a");
        let b = Metrics::capture("PorticoTest", "b");
        let (_, _) = tokio::join!(
            a.invocation("a", async { dynamodb_conflict() }),
            b.invocation("b", async { dynamodb_throttle() }),
        );
        let (la, lb) = (a.take_lines(), b.take_lines());
        assert_eq!(metric(&la, names::DYNAMODB_CONFLICTS).len(), 1);
        assert!(metric(&la, names::DYNAMODB_THROTTLES).is_empty());
        assert_eq!(metric(&lb, names::DYNAMODB_THROTTLES)[0]["Function"], "b");
        assert!(metric(&lb, names::DYNAMODB_CONFLICTS).is_empty());
    }

    #[tokio::test]
    async fn event_types_outside_portico_s_set_collapse_to_other() {
        let m = Metrics::capture("PorticoTest", "unit");
        m.invocation("r", async {
            webhook_delivery(
                Delivery::Processed,
                Some("invoice.paid"),
                Some(Duration::from_secs(2)),
                Duration::from_millis(5),
            );
            webhook_delivery(
                Delivery::Ignored,
                Some("account.updated"),
                None,
                Duration::from_millis(1),
            );
            webhook_delivery(
                Delivery::Processed,
                Some("customer.Evil-Type"),
                None,
                Duration::from_millis(1),
            );
            webhook_delivery(
                Delivery::RejectedSignature,
                None,
                None,
                Duration::from_millis(1),
            );
        })
        .await;
        let lines = m.take_lines();
        let mut types: Vec<String> = metric(&lines, names::WEBHOOK_EVENTS)
            .iter()
            .map(|l| {
                format!(
                    "{}/{}",
                    l["EventType"].as_str().unwrap(),
                    l["Outcome"].as_str().unwrap()
                )
            })
            .collect();
        types.sort();
        assert_eq!(
            types,
            [
                "invoice.paid/processed",
                "other/ignored",
                "other/processed",
                "unknown/rejected_signature"
            ]
        );
        assert_eq!(
            metric(&lines, names::WEBHOOK_LAG)[0][names::WEBHOOK_LAG],
            2000
        );
    }

    #[tokio::test]
    async fn reconcile_drift_of_zero_is_written() {
        let m = Metrics::capture("PorticoTest", "reconcile");
        m.invocation("r", async { reconcile_drift(0) }).await;
        let lines = m.take_lines();
        assert_eq!(
            metric(&lines, names::RECONCILE_DRIFT)[0][names::RECONCILE_DRIFT],
            0
        );
    }

    #[tokio::test]
    async fn facts_recorded_outside_an_invocation_go_nowhere() {
        let m = Metrics::capture("PorticoTest", "unit");
        dynamodb_conflict();
        m.invocation("r", async {}).await;
        let lines = m.take_lines();
        assert!(metric(&lines, names::DYNAMODB_CONFLICTS).is_empty());
        assert_eq!(lines.len(), 1, "only the cold start: {lines:?}");
    }
}
