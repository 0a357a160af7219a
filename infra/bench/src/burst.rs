//! The webhook burst: real Stripe events for many customers, delivered signed, with duplicates
//! and in a shuffled order, through webhook function processes under the runtime API; then a
//! check in DynamoDB that every effect happened exactly once. Run clean, then faulted: the fault
//! proxy fails about 10% of the functions' DynamoDB requests and the emulator about 10% of their
//! Stripe requests, and failed deliveries are delivered again as Stripe does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use fault_proxy::{Fault, Rule};
use serde::Serialize;
use serde_json::Value;
use shared::ids::{CustomerId, UserId};
use shared::store::{AuditSource, CustomerStore, UserStore};
use shared::sync::{diff, sync_customer, CustomerSnapshot, SyncTrigger};
use stripe_emulator::NewCustomer;

use crate::measure::{Answer, FunctionProcess};
use crate::procfs;
use crate::runtime_api;
use crate::world::{webhook_payload, World};

/// Stripe delivers a failed delivery again later, backing off: here after 1, 2, 4, … s (at
/// most 30 s apart) for up to five minutes, long enough for the claim of a stopped instance
/// to pass its lease.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const REDELIVERY_WINDOW: Duration = Duration::from_secs(300);
/// The clean run's limit per delivery, generous for a busy two-core machine. The faulted run
/// stops an instance at Lambda's timeout.
const CLEAN_DELIVERY_LIMIT: Duration = Duration::from_secs(60);
/// Stripe faults injected per delivery: a first delivery makes about 3.5 Stripe calls and a
/// duplicate none, so this fails about 10% of them.
const STRIPE_FAULTS_PER_DELIVERY: f64 = 0.3;
const SEED: u64 = 0x5eed_cafe;
/// The `error_code` of a delivery that got no answer in time.
const NO_ANSWER: &str = "no_answer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Clean,
    Faulted,
}

impl Variant {
    fn delivery_limit(self) -> Duration {
        match self {
            Variant::Clean => CLEAN_DELIVERY_LIMIT,
            Variant::Faulted => runtime_api::DEADLINE,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// What the faulted run injected, as the functions met it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultTally {
    /// DynamoDB requests of the function processes (the SDK's retries included).
    pub dynamodb_requests: u64,
    /// Faults the proxy injected into them, by kind.
    pub dynamodb_faults: BTreeMap<String, u64>,
    pub stripe_requests: u64,
    /// Stripe requests the emulator failed, by answer.
    pub stripe_faults: BTreeMap<String, u64>,
}

impl FaultTally {
    pub fn dynamodb_total(&self) -> u64 {
        self.dynamodb_faults.values().sum()
    }

    pub fn stripe_total(&self) -> u64 {
        self.stripe_faults.values().sum()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BurstResult {
    pub deliveries: usize,
    pub unique_events: usize,
    pub duplicate_deliveries: usize,
    pub customers: usize,
    pub instances: usize,
    pub wall_s: f64,
    pub events_per_s: f64,
    /// Answers to the burst itself, before any retry.
    pub answers: BTreeMap<String, usize>,
    pub retries: usize,
    /// Answers to the deliveries made again.
    pub retry_answers: BTreeMap<String, usize>,
    /// Instances stopped at the delivery limit and replaced, as Lambda does after a timeout.
    pub restarts: usize,
    /// Replacements whose init failed or overran; the instance's next delivery tried again.
    pub failed_restarts: usize,
    pub cpu_ms_per_delivery: f64,
    /// Time the instances spent waiting for DynamoDB (Local), summed.
    pub store_wait_s: f64,
    pub peak_rss_kib: u64,
    /// The faulted run's injected faults; none for the clean run.
    pub faults: Option<FaultTally>,
    pub checks: Vec<Check>,
}

impl BurstResult {
    pub fn correct(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// What a delivery's answer means for exactly-once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Processed,
    Duplicate,
    Ignored,
    /// 5xx: Stripe delivers it again later.
    Retry,
    /// No answer within the limit: the instance was stopped, maybe after its work was
    /// committed; Stripe delivers it again later.
    Unanswered,
    Rejected,
}

impl Kind {
    fn redelivered(self) -> bool {
        matches!(self, Kind::Retry | Kind::Unanswered)
    }
}

fn kind(answer: &Answer) -> Kind {
    match answer.status {
        200 if answer.body["duplicate"] == true => Kind::Duplicate,
        200 if answer.body["ignored"] == true => Kind::Ignored,
        200 => Kind::Processed,
        504 if answer.body["error_code"] == NO_ANSWER => Kind::Unanswered,
        500..=599 => Kind::Retry,
        _ => Kind::Rejected,
    }
}

struct Delivery {
    event_id: String,
    customer: String,
    body: String,
}

/// How big the burst is.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub deliveries: usize,
    /// Of the deliveries, how many repeat an event delivered before.
    pub duplicates: usize,
    /// Function processes taking deliveries at once, as Lambda scales out.
    pub instances: usize,
}

/// Where a function process runs from, to start it again.
#[derive(Clone, Copy)]
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub env: &'a [(String, String)],
    pub log: &'a Path,
}

/// One instance taking deliveries: a function process, replaced when an invocation overruns
/// the limit (Lambda stops a timed-out sandbox; the next event gets a fresh one).
struct Instance {
    process: FunctionProcess,
    cpu_start: Option<HashMap<u32, u64>>,
    /// CPU and peak memory of the processes this instance replaced.
    cpu_ns: u64,
    peak_rss_kib: u64,
    restarts: usize,
    /// Replacements that did not finish their init in time; the next delivery tries again.
    failed_restarts: usize,
}

impl Instance {
    async fn start(launch: Launch<'_>) -> Result<Instance, String> {
        let mut process = FunctionProcess::launch(launch.binary, launch.env, launch.log).await?;
        process.init().await?;
        Ok(Instance {
            cpu_start: procfs::thread_cpu_ns(process.pid()).ok(),
            process,
            cpu_ns: 0,
            peak_rss_kib: 0,
            restarts: 0,
            failed_restarts: 0,
        })
    }

    /// CPU since the burst began and peak memory, of this process and those it replaced.
    fn usage(&self) -> (u64, u64) {
        let pid = self.process.pid();
        let cpu = match (&self.cpu_start, procfs::thread_cpu_ns(pid)) {
            (Some(before), Ok(after)) => procfs::cpu_delta_ns(before, &after),
            _ => 0,
        };
        let rss = self.process.peak_rss_kib().unwrap_or(0);
        (self.cpu_ns + cpu, self.peak_rss_kib.max(rss))
    }

    /// One delivery; no answer in time counts as a 504, which Stripe retries like any 5xx.
    async fn deliver(
        &mut self,
        launch: Launch<'_>,
        payload: axum::body::Bytes,
        limit: Duration,
    ) -> Answer {
        match self.process.api.invoke(payload, limit).await {
            Ok(done) => Answer::parse(&done.outcome),
            Err(e) => {
                let detail = match self.restart(launch).await {
                    Ok(()) => e,
                    Err(restart) => format!("{e}; restart failed: {restart}"),
                };
                Answer {
                    status: 504,
                    body: serde_json::json!({"error_code": NO_ANSWER, "detail": detail}),
                    not_http: false,
                }
            }
        }
    }

    async fn restart(&mut self, launch: Launch<'_>) -> Result<(), String> {
        (self.cpu_ns, self.peak_rss_kib) = self.usage();
        self.cpu_start = None;
        // Stopped first, in the middle of its invocation, as Lambda does at the timeout.
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
        let fresh = Instance::start(launch)
            .await
            .inspect_err(|_| self.failed_restarts += 1)?;
        self.process = fresh.process;
        self.cpu_start = fresh.cpu_start;
        self.restarts += 1;
        Ok(())
    }
}

/// A small seeded generator (Knuth's MMIX LCG): reproducible runs.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn unit(&mut self) -> f64 {
        self.next() as f64 / (1u64 << 31) as f64
    }
}

/// The faulted run's DynamoDB faults, about 10% of requests: conflicts on transactions,
/// throttling and 500s on any table request (which the SDK retries), and three hangs. Only
/// table requests (their bodies name a `TableName`), so Secrets Manager at cold start is spared.
fn dynamodb_faults() -> Vec<Rule> {
    const TABLE: &str = "\"TableName\"";
    vec![
        Rule::new(Fault::Hang)
            .key_contains(TABLE)
            .probability(0.002)
            .times(3),
        Rule::new(Fault::TransactionConflict)
            .operation("TransactWriteItems")
            .probability(0.1),
        Rule::new(Fault::Throttling)
            .key_contains(TABLE)
            .probability(0.04),
        Rule::new(Fault::InternalServerError)
            .key_contains(TABLE)
            .probability(0.04),
    ]
}

/// One Stripe fault, taken by the next Stripe request of any instance: 500, 429 or 409
/// `lock_timeout`, chosen by the generator.
fn stripe_fault(random: &mut Lcg) -> stripe_emulator::Fault {
    let status = [500, 429, 409][(random.next() % 3) as usize];
    stripe_emulator::Fault {
        path: "/v1/*".into(),
        method: None,
        times: 1,
        status: Some(status),
        latency_ms: None,
    }
}

fn stripe_fault_name(status: u16) -> Option<&'static str> {
    match status {
        500 => Some("500 api_error"),
        429 => Some("429 rate_limit"),
        409 => Some("409 lock_timeout"),
        _ => None,
    }
}

pub async fn run(
    world: &World,
    launch: Launch<'_>,
    template: &str,
    size: Size,
    variant: Variant,
) -> Result<BurstResult, String> {
    let Size {
        deliveries,
        duplicates,
        instances,
    } = size;
    let unique_target = deliveries.saturating_sub(duplicates).max(1);
    let (customers, unique) = arrange(world, unique_target).await?;
    let plan = plan(&unique, deliveries);

    let mut pool = Vec::new();
    for _ in 0..instances.max(1) {
        pool.push(Instance::start(launch).await?);
    }
    let emulator = &world.h.emulator;
    let stripe_before = emulator.requests().len();
    world.proxy.take_counts();
    world.proxy.take_waited_ns();
    let injected_before = world.proxy.injected();
    let stripe_faults = (variant == Variant::Faulted).then(|| Mutex::new(Lcg(SEED)));
    if variant == Variant::Faulted {
        world.proxy.reseed(SEED);
        for rule in dynamodb_faults() {
            world.proxy.inject(rule);
        }
    }
    let round = Round {
        world,
        launch,
        template,
        limit: variant.delivery_limit(),
        stripe_faults: stripe_faults.as_ref(),
    };

    let started = Instant::now();
    let first: Vec<(usize, &Delivery)> = plan.iter().copied().enumerate().collect();
    let results = round.deliver_all(&mut pool, &first).await?;
    let mut answers = BTreeMap::new();
    let mut outcomes: HashMap<String, Vec<Kind>> = HashMap::new();
    let mut last = vec![Kind::Retry; plan.len()];
    let mut again = Vec::new();
    let mut record = |results: Vec<(usize, Answer)>,
                      answers: &mut BTreeMap<String, usize>,
                      again: &mut Vec<usize>| {
        for (n, answer) in results {
            *answers.entry(answer.label()).or_default() += 1;
            let k = kind(&answer);
            outcomes
                .entry(plan[n].event_id.clone())
                .or_default()
                .push(k);
            last[n] = k;
            if k.redelivered() {
                again.push(n);
            }
        }
    };
    record(results, &mut answers, &mut again);

    let (mut retries, mut retry_answers) = (0, BTreeMap::new());
    let mut backoff = FIRST_BACKOFF;
    let redelivering = Instant::now();
    while !again.is_empty() && redelivering.elapsed() < REDELIVERY_WINDOW {
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        let this_round: Vec<(usize, &Delivery)> = again.drain(..).map(|n| (n, plan[n])).collect();
        retries += this_round.len();
        let results = round.deliver_all(&mut pool, &this_round).await?;
        record(results, &mut retry_answers, &mut again);
    }
    let wall = started.elapsed().as_secs_f64();
    let store_wait_s = world.proxy.take_waited_ns() as f64 / 1e9;

    let faults = if variant == Variant::Faulted {
        world.proxy.clear();
        emulator.clear_faults();
        Some(tally(world, stripe_before, &injected_before))
    } else {
        None
    };
    let (mut cpu_ns, mut peak_rss_kib) = (0, 0);
    for instance in &pool {
        let (cpu, rss) = instance.usage();
        cpu_ns += cpu;
        peak_rss_kib = peak_rss_kib.max(rss);
    }
    let restarts = pool.iter().map(|i| i.restarts).sum();
    let failed_restarts = pool.iter().map(|i| i.failed_restarts).sum();
    drop(pool);

    // Only customers with an event in the burst; the others were left out by the event count.
    let delivered: Vec<(UserId, CustomerId)> = customers
        .iter()
        .filter(|(_, c)| unique.iter().any(|d| d.customer == c.as_str()))
        .cloned()
        .collect();
    let checks = verify(world, &delivered, &unique, &outcomes, &last).await;
    Ok(BurstResult {
        deliveries: plan.len(),
        unique_events: unique.len(),
        duplicate_deliveries: plan.len() - unique.len(),
        customers: delivered.len(),
        instances: instances.max(1),
        wall_s: wall,
        events_per_s: plan.len() as f64 / wall,
        answers,
        retries,
        retry_answers,
        restarts,
        failed_restarts,
        cpu_ms_per_delivery: cpu_ns as f64 / 1e6 / plan.len().max(1) as f64,
        store_wait_s,
        peak_rss_kib,
        faults,
        checks,
    })
}

/// The faults injected since the burst began, from the proxy's and the emulator's records.
fn tally(
    world: &World,
    stripe_before: usize,
    injected_before: &BTreeMap<String, u64>,
) -> FaultTally {
    let mut t = FaultTally::default();
    for (target, n) in world.proxy.take_counts() {
        if target.starts_with("DynamoDB_") {
            t.dynamodb_requests += n;
        }
    }
    for (kind, n) in world.proxy.injected() {
        let new = n - injected_before.get(&kind).copied().unwrap_or(0);
        if new > 0 {
            t.dynamodb_faults.insert(kind, new);
        }
    }
    for request in world.h.emulator.requests().into_iter().skip(stripe_before) {
        t.stripe_requests += 1;
        if let Some(name) = stripe_fault_name(request.status) {
            *t.stripe_faults.entry(name.into()).or_default() += 1;
        }
    }
    t
}

/// What every delivery round shares.
struct Round<'a> {
    world: &'a World,
    launch: Launch<'a>,
    template: &'a str,
    limit: Duration,
    stripe_faults: Option<&'a Mutex<Lcg>>,
}

impl Round<'_> {
    /// Delivers each `(plan index, delivery)` once, the instances taking them from one queue.
    async fn deliver_all(
        &self,
        pool: &mut [Instance],
        deliveries: &[(usize, &Delivery)],
    ) -> Result<Vec<(usize, Answer)>, String> {
        let queue: Mutex<VecDeque<(usize, &str)>> = Mutex::new(
            deliveries
                .iter()
                .map(|(n, d)| (*n, d.body.as_str()))
                .collect(),
        );
        let queue = &queue;
        let workers = pool.iter_mut().map(|instance| async move {
            let mut answers = Vec::new();
            loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop_front();
                let Some((n, body)) = next else {
                    return Ok::<_, String>(answers);
                };
                if let Some(random) = self.stripe_faults {
                    let fault = {
                        let mut random = random.lock().unwrap_or_else(PoisonError::into_inner);
                        (random.unit() < STRIPE_FAULTS_PER_DELIVERY)
                            .then(|| stripe_fault(&mut random))
                    };
                    if let Some(fault) = fault {
                        self.world
                            .h
                            .emulator
                            .inject_fault(fault)
                            .map_err(|e| format!("stripe fault: {e:?}"))?;
                    }
                }
                // Signed at delivery, as Stripe does: a slow burst must not outlive the tolerance.
                let payload = webhook_payload(self.template, body)?;
                answers.push((n, instance.deliver(self.launch, payload, self.limit).await));
            }
        });
        let mut all = Vec::new();
        // Polled together on this task: the instances run in their own processes anyway.
        let workers: Vec<_> = workers.map(Box::pin).collect();
        for result in join_all(workers).await {
            all.extend(result?);
        }
        Ok(all)
    }
}

/// Subscribed customers, each linked to a user, until their handled events reach `target`.
async fn arrange(
    world: &World,
    target: usize,
) -> Result<(Vec<(UserId, CustomerId)>, Vec<Delivery>), String> {
    let h = &world.h;
    let start = h.emulator.events().len();
    let mut customers = Vec::new();
    let mut unique = Vec::new();
    // Batches: listing the emulator's events copies them all.
    while unique.len() < target && customers.len() < 1_000 {
        for _ in 0..10 {
            let n = customers.len();
            let sub = format!("burst-{n}");
            let mut new = NewCustomer::new(format!("{sub}@example.test"));
            new.metadata
                .push((shared::customer_link::USER_ID_METADATA.into(), sub.clone()));
            if n % 3 == 0 {
                new.price = Some("price_pro_yearly".into());
            }
            let created = h
                .emulator
                .create_customer(new)
                .map_err(|e| format!("burst customer: {e:?}"))?;
            let id = CustomerId::parse(
                created["customer"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
            .map_err(|e| format!("burst customer id: {e}"))?;
            let user = UserId::parse(&sub).map_err(|e| format!("user id: {e}"))?;
            h.services
                .table
                .link_customer(&user, None, &id, &h.services.clock.timestamp())
                .await
                .map_err(|e| format!("link burst customer: {e}"))?;
            customers.push((user, id));
        }
        let ours: Vec<&str> = customers.iter().map(|(_, c)| c.as_str()).collect();
        unique = h
            .emulator
            .events()
            .into_iter()
            .skip(start)
            .map(|e| e.event)
            .filter(|e| shared::webhook::is_handled(e["type"].as_str().unwrap_or_default()))
            .filter_map(|e| {
                let object = &e["data"]["object"];
                let customer = [&object["customer"], &object["id"]]
                    .into_iter()
                    .filter_map(Value::as_str)
                    .find(|c| ours.contains(c))?
                    .to_string();
                Some(Delivery {
                    event_id: e["id"].as_str().unwrap_or_default().to_string(),
                    customer,
                    body: e.to_string(),
                })
            })
            .collect();
    }
    unique.truncate(target);
    Ok((customers, unique))
}

/// Every unique event once plus duplicates spread over them, in a fixed shuffled order (the
/// same on every run, so runs compare).
fn plan(unique: &[Delivery], total: usize) -> Vec<&Delivery> {
    let mut plan: Vec<&Delivery> = unique.iter().collect();
    let mut i = 0usize;
    while plan.len() < total && !unique.is_empty() {
        plan.push(&unique[(i * 7) % unique.len()]);
        i += 1;
    }
    let mut random = Lcg(SEED);
    for k in (1..plan.len()).rev() {
        let j = random.next() as usize % (k + 1);
        plan.swap(k, j);
    }
    plan
}

/// Awaits every future, polling them concurrently.
async fn join_all<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match std::pin::Pin::new(future).poll(cx) {
                    std::task::Poll::Ready(v) => *output = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

async fn verify(
    world: &World,
    customers: &[(UserId, CustomerId)],
    unique: &[Delivery],
    outcomes: &HashMap<String, Vec<Kind>>,
    last: &[Kind],
) -> Vec<Check> {
    let table = &world.h.services.table;
    let mut checks = Vec::new();

    // Exactly once by the answers: no event answered `processed` twice, and each answered it
    // once, unless the instance processing it was stopped before answering (its redelivery then
    // answers `duplicate`; the ledger and audit checks below prove the work was done, once).
    let (mut once, mut unanswered, mut twice, mut never) = (0, 0, 0, 0);
    for d in unique {
        let kinds = outcomes.get(&d.event_id).map_or(&[][..], Vec::as_slice);
        match kinds.iter().filter(|k| **k == Kind::Processed).count() {
            1 => once += 1,
            0 if kinds.contains(&Kind::Unanswered) => unanswered += 1,
            0 => never += 1,
            _ => twice += 1,
        }
    }
    checks.push(Check {
        name: "every event processed exactly once".into(),
        passed: twice == 0 && never == 0,
        detail: format!(
            "{once} of {} events answered processed once, {unanswered} processed by an instance \
             stopped before it answered; {twice} processed twice, {never} never",
            unique.len()
        ),
    });

    let answered = last
        .iter()
        .filter(|k| matches!(k, Kind::Processed | Kind::Duplicate))
        .count();
    checks.push(Check {
        name: "every delivery eventually answered 2xx (processed or duplicate)".into(),
        passed: answered == last.len(),
        detail: format!("{answered} of {} deliveries", last.len()),
    });
    let odd: usize = outcomes
        .values()
        .flatten()
        .filter(|k| matches!(k, Kind::Rejected | Kind::Ignored))
        .count();
    checks.push(Check {
        name: "no delivery rejected or ignored".into(),
        passed: odd == 0,
        detail: format!("{odd} rejected or ignored"),
    });

    let mut done = 0;
    for d in unique {
        if let Ok(Some(entry)) = table.ledger_entry(&d.event_id).await {
            done += usize::from(entry.state == shared::store::LedgerState::Done);
        }
    }
    checks.push(Check {
        name: "every event's ledger entry is done".into(),
        passed: done == unique.len(),
        detail: format!("{done} of {}", unique.len()),
    });

    let (mut audited_once, mut premium) = (0, 0);
    for (_, customer) in customers {
        let Ok(Some(state)) = table.get_customer_state(customer).await else {
            continue;
        };
        premium += usize::from(state.premium.premium);
        let truth = diff(&CustomerSnapshot::empty(customer.clone()), &state.snapshot);
        if let Ok(audit) = table.audit_entries(customer).await {
            audited_once += usize::from(audit.len() == truth.len());
        }
    }
    checks.push(Check {
        name: "each customer's changes audited exactly once".into(),
        passed: audited_once == customers.len(),
        detail: format!("{audited_once} of {} customers", customers.len()),
    });
    checks.push(Check {
        name: "each customer premium, as subscribed in Stripe".into(),
        passed: premium == customers.len(),
        detail: format!("{premium} of {} customers premium", customers.len()),
    });

    let mut users_linked = 0;
    for (user, customer) in customers {
        if let Ok(Some(u)) = table.get_user(user).await {
            users_linked += usize::from(u.customer_id.as_ref() == Some(customer));
        }
    }
    checks.push(Check {
        name: "each user still linked to its one customer".into(),
        passed: users_linked == customers.len(),
        detail: format!("{users_linked} of {}", customers.len()),
    });

    // Last, as it writes when it finds a difference: a sync from Stripe now, with no faults.
    let trigger = SyncTrigger {
        source: AuditSource::Reconcile,
        reference: Some("bench-verify".into()),
    };
    let (mut as_stripe, mut differing) = (0, Vec::new());
    for (_, customer) in customers {
        match sync_customer(world.h.services.sync_context(), customer, &trigger, &()).await {
            Ok(outcome) if outcome.changes.is_empty() => as_stripe += 1,
            Ok(outcome) => differing.push(format!("{customer}: {} changes", outcome.changes.len())),
            Err(e) => differing.push(format!("{customer}: {e}")),
        }
    }
    differing.truncate(3);
    checks.push(Check {
        name: "each customer stored as Stripe has it (a fresh sync finds nothing to change)".into(),
        passed: as_stripe == customers.len(),
        detail: if differing.is_empty() {
            format!("{as_stripe} of {} customers", customers.len())
        } else {
            format!(
                "{as_stripe} of {} customers; {}",
                customers.len(),
                differing.join("; ")
            )
        },
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_holds_each_event_and_spread_duplicates() {
        let unique: Vec<Delivery> = (0..8)
            .map(|n| Delivery {
                event_id: format!("evt_{n}"),
                customer: "cus_1".into(),
                body: String::new(),
            })
            .collect();
        let plan = plan(&unique, 10);
        assert_eq!(plan.len(), 10);
        for d in &unique {
            assert!(plan.iter().any(|p| p.event_id == d.event_id));
        }
        let again = super::plan(&unique, 10);
        let ids = |p: &[&Delivery]| p.iter().map(|d| d.event_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&plan), ids(&again), "the order is reproducible");
    }
}
