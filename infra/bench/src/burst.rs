//! The webhook burst: real Stripe events for many customers, delivered signed, with duplicates
//! and in a shuffled order, through webhook function processes under the runtime API; then a
//! check in DynamoDB that every effect happened exactly once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use shared::ids::{CustomerId, UserId};
use shared::store::{CustomerStore, UserStore};
use shared::sync::{diff, CustomerSnapshot};
use stripe_emulator::NewCustomer;

use crate::measure::{Answer, FunctionProcess};
use crate::procfs;
use crate::runtime_api::RuntimeApi;
use crate::world::{webhook_payload, World};

/// How many times a delivery answered 5xx is delivered again, as Stripe retries.
const RETRY_ROUNDS: usize = 5;
/// Stripe gives up on a delivery after its own timeout and retries it later; moto, copying a
/// growing table for every transaction, can be slower than the warm runs' limit.
const DELIVERY_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
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
    pub cpu_ms_per_delivery: f64,
    /// Time the instances spent waiting for moto, summed: moto serves one request at a time.
    pub moto_wait_s: f64,
    pub peak_rss_kib: u64,
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
    Rejected,
}

fn kind(answer: &Answer) -> Kind {
    match answer.status {
        200 if answer.body["duplicate"] == true => Kind::Duplicate,
        200 if answer.body["ignored"] == true => Kind::Ignored,
        200 => Kind::Processed,
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

pub async fn run(
    world: &World,
    binary: &Path,
    env: &[(String, String)],
    log: &Path,
    template: &str,
    size: Size,
) -> Result<BurstResult, String> {
    let Size {
        deliveries,
        duplicates,
        instances,
    } = size;
    let unique_target = deliveries.saturating_sub(duplicates).max(1);
    let (customers, unique) = arrange(world, unique_target).await?;
    let plan = plan(&unique, deliveries);

    let mut processes = Vec::new();
    for _ in 0..instances.max(1) {
        let mut process = FunctionProcess::launch(binary, env, log).await?;
        process.init().await?;
        processes.push(process);
    }
    let pids: Vec<u32> = processes.iter().map(FunctionProcess::pid).collect();
    let cpu_before: Vec<_> = pids.iter().map(|p| procfs::thread_cpu_ns(*p)).collect();

    let queue: VecDeque<(String, String)> = plan
        .iter()
        .map(|d| (d.event_id.clone(), d.body.clone()))
        .collect();
    let queue = Arc::new(Mutex::new(queue));
    world.proxy.take_waited_ns();
    let started = Instant::now();
    let apis: Vec<&RuntimeApi> = processes.iter().map(|p| &p.api).collect();
    let results = deliver_all(&apis, queue, template).await?;

    let mut answers = BTreeMap::new();
    let mut outcomes: HashMap<String, Vec<Kind>> = HashMap::new();
    let mut again = Vec::new();
    for (event_id, answer) in results {
        *answers.entry(answer.label()).or_default() += 1;
        let k = kind(&answer);
        outcomes.entry(event_id.clone()).or_default().push(k);
        if k == Kind::Retry {
            again.push(event_id);
        }
    }
    let bodies: HashMap<&str, &str> = unique
        .iter()
        .map(|d| (d.event_id.as_str(), d.body.as_str()))
        .collect();
    let mut retries = 0;
    for _ in 0..RETRY_ROUNDS {
        if again.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for event_id in again {
            let body = bodies.get(event_id.as_str()).copied().unwrap_or_default();
            let answer = deliver(apis[0], webhook_payload(template, body)?).await;
            retries += 1;
            let k = kind(&answer);
            outcomes.entry(event_id.clone()).or_default().push(k);
            if k == Kind::Retry {
                next.push(event_id);
            }
        }
        again = next;
    }
    let wall = started.elapsed().as_secs_f64();
    let moto_wait_s = world.proxy.take_waited_ns() as f64 / 1e9;

    let mut cpu_ns = 0;
    for (pid, before) in pids.iter().zip(cpu_before) {
        if let (Ok(before), Ok(after)) = (before, procfs::thread_cpu_ns(*pid)) {
            cpu_ns += procfs::cpu_delta_ns(&before, &after);
        }
    }
    let peak_rss_kib = processes
        .iter()
        .filter_map(FunctionProcess::peak_rss_kib)
        .max()
        .unwrap_or(0);
    drop(processes);

    // Only customers with an event in the burst; the others were left out by the event count.
    let delivered: Vec<(UserId, CustomerId)> = customers
        .iter()
        .filter(|(_, c)| unique.iter().any(|d| d.customer == c.as_str()))
        .cloned()
        .collect();
    let checks = verify(world, &delivered, &unique, &outcomes, again.len()).await;
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
        cpu_ms_per_delivery: cpu_ns as f64 / 1e6 / plan.len().max(1) as f64,
        moto_wait_s,
        peak_rss_kib,
        checks,
    })
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
                .push((shared::customers::USER_ID_METADATA.into(), sub.clone()));
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
    let mut seed: u64 = 0x5eed_cafe;
    for k in (1..plan.len()).rev() {
        // A 64-bit LCG (Knuth's MMIX constants): reproducible, and random enough to shuffle.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = (seed >> 33) as usize % (k + 1);
        plan.swap(k, j);
    }
    plan
}

/// One delivery; no answer in time counts as a 504, which Stripe retries like any 5xx.
async fn deliver(api: &RuntimeApi, payload: axum::body::Bytes) -> Answer {
    match api.invoke(payload, DELIVERY_LIMIT).await {
        Ok(done) => Answer::parse(&done.outcome),
        Err(e) => Answer {
            status: 504,
            body: serde_json::json!({"error_code": "no_answer", "detail": e}),
        },
    }
}

async fn deliver_all(
    apis: &[&RuntimeApi],
    queue: Arc<Mutex<VecDeque<(String, String)>>>,
    template: &str,
) -> Result<Vec<(String, Answer)>, String> {
    let workers = apis.iter().map(|api| {
        let queue = queue.clone();
        async move {
            let mut answers = Vec::new();
            loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop_front();
                let Some((event_id, body)) = next else {
                    return Ok::<_, String>(answers);
                };
                // Signed at delivery, as Stripe does: a slow burst must not outlive the tolerance.
                let payload = webhook_payload(template, &body)?;
                answers.push((event_id, deliver(api, payload).await));
            }
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
    still_failing: usize,
) -> Vec<Check> {
    let table = &world.h.services.table;
    let mut checks = Vec::new();

    let processed_once = unique
        .iter()
        .filter(|d| {
            outcomes
                .get(&d.event_id)
                .is_some_and(|k| k.iter().filter(|k| **k == Kind::Processed).count() == 1)
        })
        .count();
    checks.push(Check {
        name: "every event processed exactly once".into(),
        passed: processed_once == unique.len(),
        detail: format!("{processed_once} of {} events", unique.len()),
    });

    let odd: usize = outcomes
        .values()
        .flatten()
        .filter(|k| matches!(k, Kind::Rejected | Kind::Ignored))
        .count();
    checks.push(Check {
        name: "every other delivery answered as a duplicate (5xx ones after a retry)".into(),
        passed: odd == 0 && still_failing == 0,
        detail: format!("{odd} rejected or ignored, {still_failing} still failing after retries"),
    });

    let mut done = 0;
    for d in unique {
        if let Ok(Some(entry)) = table.ledger_entry(&d.event_id).await {
            done += usize::from(entry.state == "done");
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
        name: "each customer stored as Stripe has it (subscribed, premium)".into(),
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
