//! Runs one release binary as Lambda would and measures it: cold starts (exec to the first
//! `next`, then the first invocation) and warm invocations (latency, CPU, calls made).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use fault_proxy::split_operation;
use serde::Serialize;
use serde_json::Value;

use crate::procfs;
use crate::runtime_api::{Outcome, Phase, RuntimeApi};
use crate::stats::{summarize, Summary};
use crate::world::{Case, World};

pub const INVOKE_LIMIT: Duration = Duration::from_secs(15);
const INIT_LIMIT: Duration = Duration::from_secs(15);
/// Invocations of each case before measuring it: its first connections and caches are warm.
pub const WARMUP: usize = 3;

/// A function process under this bench's runtime API; killed when dropped.
pub struct FunctionProcess {
    pub api: RuntimeApi,
    pub child: Child,
    spawned: Instant,
}

impl FunctionProcess {
    pub async fn launch(
        binary: &Path,
        env: &[(String, String)],
        log: &Path,
    ) -> Result<Self, String> {
        Self::launch_under(&[], binary, env, log).await
    }

    /// Runs `binary` as the last argument of `wrapper` (a profiler), or alone when it is empty.
    pub async fn launch_under(
        wrapper: &[String],
        binary: &Path,
        env: &[(String, String)],
        log: &Path,
    ) -> Result<Self, String> {
        let api = RuntimeApi::start()
            .await
            .map_err(|e| format!("runtime API: {e}"))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("log {}: {e}", log.display()))?;
        let stderr = log.try_clone().map_err(|e| format!("log: {e}"))?;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", api.host_port())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        let spawned = Instant::now();
        let child = command
            .spawn()
            .map_err(|e| format!("exec {}: {e}", binary.display()))?;
        Ok(FunctionProcess {
            api,
            child,
            spawned,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Time from exec to the runtime's first `next`.
    pub async fn init(&mut self) -> Result<Duration, String> {
        self.init_within(INIT_LIMIT).await
    }

    async fn init_within(&mut self, within: Duration) -> Result<Duration, String> {
        let limit = Instant::now() + within;
        while Instant::now() < limit {
            match self.api.wait_for_init(Duration::from_millis(20)).await {
                Phase::Ready(at) => return Ok(at.saturating_duration_since(self.spawned)),
                Phase::InitFailed(reason) => return Err(format!("init error: {reason}")),
                Phase::Starting => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        return Err(format!("exited during init: {status}"));
                    }
                }
            }
        }
        Err(format!("no `next` within {within:?}"))
    }

    pub fn peak_rss_kib(&self) -> Option<u64> {
        procfs::peak_rss_kib(self.pid()).ok()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one invocation answered, as the API Gateway response's status and `error_code`.
#[derive(Debug, Clone)]
pub struct Answer {
    /// 0 for an `/error` answer.
    pub status: u16,
    pub body: Value,
    /// The answer of a function that is not behind HTTP (the scheduled reconcile): a response
    /// without `statusCode`, a success as the runtime sees it.
    pub not_http: bool,
}

/// The label of a successful answer of a function that is not behind HTTP.
pub const NOT_HTTP_OK: &str = "2xx (not HTTP: answered)";

impl Answer {
    pub fn parse(outcome: &Outcome) -> Answer {
        match outcome {
            Outcome::Response(bytes) => {
                let response: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
                let Some(status) = response["statusCode"].as_u64() else {
                    return Answer {
                        status: 200,
                        body: response,
                        not_http: true,
                    };
                };
                let body = response["body"]
                    .as_str()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .unwrap_or(Value::Null);
                Answer {
                    status: status as u16,
                    body,
                    not_http: false,
                }
            }
            Outcome::Error(bytes) => Answer {
                status: 0,
                body: serde_json::json!({"error_code": String::from_utf8_lossy(bytes)}),
                not_http: false,
            },
        }
    }

    /// `200`, `401 missing_token`, [`NOT_HTTP_OK`], or `runtime error` for an `/error` answer.
    pub fn label(&self) -> String {
        match (self.status, self.body["error_code"].as_str()) {
            _ if self.not_http => NOT_HTTP_OK.into(),
            (0, _) => "runtime error".into(),
            (status, Some(code)) => format!("{status} {code}"),
            (status, None) => status.to_string(),
        }
    }
}

/// Calls counted around invocations: per invocation (for min/max) and by operation.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Calls {
    pub stripe: Vec<u64>,
    pub dynamodb: Vec<u64>,
    pub secretsmanager: Vec<u64>,
    pub operations: BTreeMap<String, u64>,
    pub store_wait_ns: u64,
}

impl Calls {
    fn record(&mut self, world: &World) {
        let aws = world.proxy.take_counts();
        self.store_wait_ns += world.proxy.take_waited_ns();
        let stripe = world.take_stripe_calls();
        let (mut ddb, mut sm) = (0, 0);
        for (target, n) in aws {
            let (service, op) = split_operation(&target);
            match service.as_str() {
                "dynamodb" => ddb += n,
                "secretsmanager" => sm += n,
                _ => {}
            }
            *self
                .operations
                .entry(format!("{service} {op}"))
                .or_default() += n;
        }
        for call in &stripe {
            *self.operations.entry(format!("stripe {call}")).or_default() += 1;
        }
        self.stripe.push(stripe.len() as u64);
        self.dynamodb.push(ddb);
        self.secretsmanager.push(sm);
    }

    fn reset(world: &World) {
        world.proxy.take_counts();
        world.proxy.take_waited_ns();
        world.take_stripe_calls();
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CallFigures {
    pub mean: f64,
    pub min: u64,
    pub max: u64,
}

fn figures(values: &[u64]) -> CallFigures {
    CallFigures {
        mean: if values.is_empty() {
            0.0
        } else {
            values.iter().sum::<u64>() as f64 / values.len() as f64
        },
        min: values.iter().copied().min().unwrap_or(0),
        max: values.iter().copied().max().unwrap_or(0),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CallSummary {
    pub stripe: CallFigures,
    pub dynamodb: CallFigures,
    pub secretsmanager: CallFigures,
    /// Total calls by `service operation` over all the invocations.
    pub operations: BTreeMap<String, u64>,
    /// Mean time per invocation spent waiting for DynamoDB Local: part of the latency, not
    /// Portico's.
    pub store_wait_ms: f64,
}

impl From<&Calls> for CallSummary {
    fn from(c: &Calls) -> Self {
        CallSummary {
            stripe: figures(&c.stripe),
            dynamodb: figures(&c.dynamodb),
            secretsmanager: figures(&c.secretsmanager),
            operations: c.operations.clone(),
            store_wait_ms: c.store_wait_ns as f64 / 1e6 / c.stripe.len().max(1) as f64,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ColdResult {
    pub case: String,
    pub runs: usize,
    pub init_ms: Summary,
    pub first_invocation_ms: Summary,
    pub answers: BTreeMap<String, usize>,
    pub calls: CallSummary,
    pub peak_rss_kib: u64,
}

/// `runs` cold starts of `binary`, each answering `event()` once, after one untimed start that
/// brings the binary into the page cache (as every later start on a warm host finds it).
pub async fn cold_starts(
    world: Option<&World>,
    binary: &Path,
    env: &[(String, String)],
    log: &Path,
    runs: usize,
    case: &str,
    mut event: impl FnMut() -> Result<Bytes, String>,
) -> Result<ColdResult, String> {
    let (mut init, mut first) = (Vec::new(), Vec::new());
    let mut answers = BTreeMap::new();
    let mut calls = Calls::default();
    let mut peak = 0;
    for run in 0..=runs {
        let payload = event()?;
        if let Some(w) = world {
            Calls::reset(w);
        }
        let mut process = FunctionProcess::launch(binary, env, log).await?;
        let init_time = process.init().await?;
        let done = process.api.invoke(payload, INVOKE_LIMIT).await?;
        peak = peak.max(process.peak_rss_kib().unwrap_or(0));
        drop(process);
        if run == 0 {
            continue;
        }
        if let Some(w) = world {
            calls.record(w);
        }
        init.push(ms(init_time));
        first.push(ms(done.latency));
        *answers
            .entry(Answer::parse(&done.outcome).label())
            .or_default() += 1;
    }
    Ok(ColdResult {
        case: case.to_string(),
        runs,
        init_ms: summarize(&init),
        first_invocation_ms: summarize(&first),
        answers,
        calls: CallSummary::from(&calls),
        peak_rss_kib: peak,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub case: String,
    /// Why the case was not run (an unknown placeholder), if it was not.
    pub skipped: Option<String>,
    pub invocations: usize,
    pub answers: BTreeMap<String, usize>,
    pub latency_ms: Summary,
    /// On-CPU time of the function process per invocation (all its threads), microseconds.
    pub cpu_us_per_invocation: f64,
    pub calls: Option<CallSummary>,
}

impl CaseResult {
    pub fn succeeded(&self) -> bool {
        self.skipped.is_none() && self.answers.keys().all(|a| a.starts_with('2'))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WarmResult {
    pub cases: Vec<CaseResult>,
    pub invocations: usize,
    pub latency_ms: Summary,
    pub cpu_us_per_invocation: f64,
    /// The same from `/proc/<pid>/stat` (10 ms ticks) over the whole run, as a cross-check.
    pub cpu_us_per_invocation_stat: f64,
    pub peak_rss_kib: u64,
}

/// One process, every case in turn: `per_case` measured invocations each, after a warm-up.
pub async fn warm(
    world: &World,
    binary: &Path,
    env: &[(String, String)],
    log: &Path,
    cases: &[Case],
    per_case: usize,
) -> Result<WarmResult, String> {
    let mut process = FunctionProcess::launch(binary, env, log).await?;
    process.init().await?;
    let pid = process.pid();
    let ticks_before = procfs::process_cpu_ticks(pid).map_err(|e| e.to_string())?;
    let mut all_latency = Vec::new();
    let mut all_cpu_ns = 0u64;
    let mut warmups = 0;
    let mut results = Vec::new();
    for case in cases {
        if let Err(reason) = world.payload(case) {
            results.push(CaseResult {
                case: case.name.clone(),
                skipped: Some(reason),
                invocations: 0,
                answers: BTreeMap::new(),
                latency_ms: Summary::default(),
                cpu_us_per_invocation: 0.0,
                calls: None,
            });
            continue;
        }
        for _ in 0..WARMUP {
            process
                .api
                .invoke(world.payload(case)?, INVOKE_LIMIT)
                .await?;
            warmups += 1;
        }
        let (result, cpu_ns, latencies) = measure_case(world, &process, case, per_case).await?;
        all_cpu_ns += cpu_ns;
        all_latency.extend(latencies);
        results.push(result);
    }
    let ticks = procfs::process_cpu_ticks(pid)
        .map_err(|e| e.to_string())?
        .saturating_sub(ticks_before);
    let invocations = all_latency.len();
    let per = |total_us: f64| {
        if invocations == 0 {
            0.0
        } else {
            total_us / invocations as f64
        }
    };
    Ok(WarmResult {
        cases: results,
        invocations,
        latency_ms: summarize(&all_latency),
        cpu_us_per_invocation: per(all_cpu_ns as f64 / 1_000.0),
        // The tick window also holds the warm-ups.
        cpu_us_per_invocation_stat: ticks as f64 * 1e6
            / procfs::TICKS_PER_SECOND as f64
            / (invocations + warmups).max(1) as f64,
        peak_rss_kib: process.peak_rss_kib().unwrap_or(0),
    })
}

async fn measure_case(
    world: &World,
    process: &FunctionProcess,
    case: &Case,
    n: usize,
) -> Result<(CaseResult, u64, Vec<f64>), String> {
    let pid = process.pid();
    let mut latencies = Vec::with_capacity(n);
    let mut answers = BTreeMap::new();
    let mut calls = Calls::default();
    let mut cpu_ns = 0;
    Calls::reset(world);
    for _ in 0..n {
        // Built before the CPU reading: filling and signing is the bench's work, not the function's.
        let payload = world.payload(case)?;
        let before = procfs::thread_cpu_ns(pid).map_err(|e| e.to_string())?;
        let done = process.api.invoke(payload, INVOKE_LIMIT).await?;
        let after = procfs::thread_cpu_ns(pid).map_err(|e| e.to_string())?;
        cpu_ns += procfs::cpu_delta_ns(&before, &after);
        calls.record(world);
        latencies.push(ms(done.latency));
        *answers
            .entry(Answer::parse(&done.outcome).label())
            .or_default() += 1;
    }
    let result = CaseResult {
        case: case.name.clone(),
        skipped: None,
        invocations: n,
        answers,
        latency_ms: summarize(&latencies),
        cpu_us_per_invocation: cpu_ns as f64 / 1_000.0 / n.max(1) as f64,
        calls: Some(CallSummary::from(&calls)),
    };
    Ok((result, cpu_ns, latencies))
}

/// The floor's warm figures: `n` hello invocations.
pub async fn floor_warm(
    binary: &Path,
    env: &[(String, String)],
    log: &Path,
    n: usize,
) -> Result<WarmResult, String> {
    let mut process = FunctionProcess::launch(binary, env, log).await?;
    process.init().await?;
    let pid = process.pid();
    let hello = Bytes::from_static(br#"{"hello":"bench"}"#);
    for _ in 0..WARMUP {
        process.api.invoke(hello.clone(), INVOKE_LIMIT).await?;
    }
    let ticks_before = procfs::process_cpu_ticks(pid).map_err(|e| e.to_string())?;
    let (mut latencies, mut cpu_ns, mut answers) = (Vec::new(), 0, BTreeMap::new());
    for _ in 0..n {
        let before = procfs::thread_cpu_ns(pid).map_err(|e| e.to_string())?;
        let done = process.api.invoke(hello.clone(), INVOKE_LIMIT).await?;
        let after = procfs::thread_cpu_ns(pid).map_err(|e| e.to_string())?;
        cpu_ns += procfs::cpu_delta_ns(&before, &after);
        latencies.push(ms(done.latency));
        *answers
            .entry(Answer::parse(&done.outcome).label())
            .or_default() += 1;
    }
    let ticks = procfs::process_cpu_ticks(pid)
        .map_err(|e| e.to_string())?
        .saturating_sub(ticks_before);
    let summary = summarize(&latencies);
    let cpu_us = cpu_ns as f64 / 1_000.0 / n.max(1) as f64;
    Ok(WarmResult {
        cases: vec![CaseResult {
            case: "hello".into(),
            skipped: None,
            invocations: n,
            answers,
            latency_ms: summary,
            cpu_us_per_invocation: cpu_us,
            calls: None,
        }],
        invocations: n,
        latency_ms: summary,
        cpu_us_per_invocation: cpu_us,
        cpu_us_per_invocation_stat: ticks as f64 * 1e6
            / procfs::TICKS_PER_SECOND as f64
            / n.max(1) as f64,
        peak_rss_kib: process.peak_rss_kib().unwrap_or(0),
    })
}

/// Instructions executed by a function process (valgrind's callgrind): repeatable where the
/// CPU time of a shared machine is not, so a change can be judged by them.
#[derive(Debug, Clone, Serialize)]
pub struct InstructionCounts {
    pub case: String,
    /// Exec to the first `next`.
    pub init: u64,
    /// The first invocation after init (first connections, the secrets, the signing keys).
    pub first_invocation: u64,
    /// Mean over `invocations` warm ones, after the warm-up.
    pub per_invocation: u64,
    pub invocations: usize,
}

/// Runs `binary` under callgrind and reads its counters after init, after the first
/// invocation and over `n` warm invocations of `case` (`callgrind_control` dumps them). The
/// warm invocations' dump is copied to `keep` when given, and init's beside it
/// (`<name>.init.callgrind`): with a binary that keeps its symbols, `callgrind_annotate` reads
/// where the instructions go.
pub async fn instructions(
    world: &World,
    binary: &Path,
    env: &[(String, String)],
    log: &Path,
    case: &Case,
    n: usize,
    keep: Option<PathBuf>,
) -> Result<InstructionCounts, String> {
    let dir = std::env::temp_dir().join(format!("portico-callgrind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let wrapper = vec![
        "valgrind".to_string(),
        "--tool=callgrind".into(),
        format!(
            "--callgrind-out-file={}",
            dir.join("callgrind.out").display()
        ),
        // Only the counts are read: no per-line or per-instruction detail to write.
        "--dump-line=no".into(),
        "--compress-pos=no".into(),
    ];
    let mut process = FunctionProcess::launch_under(&wrapper, binary, env, log).await?;
    // Valgrind translates the binary as it runs: tens of times slower than native.
    process.init_within(INIT_LIMIT * 4).await?;
    let pid = process.pid();
    let (init, init_file) = dump(pid, &dir).await?;
    process
        .api
        .invoke(world.payload(case)?, INVOKE_LIMIT * 4)
        .await?;
    let (first_invocation, _) = dump(pid, &dir).await?;
    for _ in 0..WARMUP {
        process
            .api
            .invoke(world.payload(case)?, INVOKE_LIMIT * 4)
            .await?;
    }
    callgrind_control(&["--zero", &pid.to_string()]).await?;
    for _ in 0..n {
        let payload = world.payload(case)?;
        process.api.invoke(payload, INVOKE_LIMIT * 4).await?;
    }
    let (warm, warm_file) = dump(pid, &dir).await?;
    drop(process);
    if let Some(keep) = keep {
        if let Some(parent) = keep.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let init_copy = keep.with_extension("init.callgrind");
        for (from, to) in [(&warm_file, &keep), (&init_file, &init_copy)] {
            std::fs::copy(from, to).map_err(|e| format!("{}: {e}", to.display()))?;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(InstructionCounts {
        case: case.name.clone(),
        init,
        first_invocation,
        per_invocation: warm / n.max(1) as u64,
        invocations: n,
    })
}

async fn callgrind_control(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("callgrind_control")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("callgrind_control: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "callgrind_control {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Dumps (and so zeroes) the counters; the instruction total of the new dump file, and the file.
async fn dump(pid: u32, dir: &Path) -> Result<(u64, PathBuf), String> {
    let listing = || -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    let before = listing();
    callgrind_control(&["--dump", &pid.to_string()]).await?;
    let limit = Instant::now() + INIT_LIMIT;
    while Instant::now() < limit {
        for path in listing().into_iter().filter(|p| !before.contains(p)) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let total = text.lines().find_map(|l| {
                l.strip_prefix("summary:")
                    .or_else(|| l.strip_prefix("totals:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            });
            if let Some(total) = total {
                return Ok((total, path));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("callgrind wrote no dump".into())
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}
