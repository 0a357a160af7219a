//! `make bench`: measures Portico's release functions on this machine and writes the figures to
//! `infra/bench/results.json` and the generated part of `BENCHMARKS.md`.
//!
//! Functions are the folders of `functions/`, their cases the files of `events/<function>/`;
//! nothing here lists them, so a new function is measured on the next run.

mod burst;
mod measure;
mod procfs;
mod report;
mod runtime_api;
mod seeds;
mod stats;
mod world;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use axum::body::Bytes;

use report::{Report, Settings, Subject};
use world::{discover_cases, discover_functions, World};

/// The case a function's cold starts answer first, where the name alone does not tell: the
/// request a user makes most. Other functions use their first case that answers 2xx.
const PRIMARY_CASES: &[(&str, &str)] = &[
    ("billing-account", "get-account"),
    ("portal-session", "create-default"),
    ("portal-return", "return"),
    ("stripe-webhook", "event"),
    ("portal-config", "list-configurations"),
    ("portal-analytics", "analytics"),
];
const FLOOR: &str = "bench-floor";
const WEBHOOK: &str = "stripe-webhook";
/// Fewer than this per case and p99 is just the maximum.
const MIN_PER_CASE: usize = 50;

struct Args {
    root: PathBuf,
    release_dir: PathBuf,
    lambda_dir: PathBuf,
    cold_runs: usize,
    warm: usize,
    burst: usize,
    burst_duplicates: usize,
    burst_instances: usize,
    burst_variants: Vec<burst::Variant>,
    callgrind: usize,
    /// Where each function's warm callgrind dump is kept, for `callgrind_annotate`.
    profile_dir: Option<PathBuf>,
    seeds_runs: usize,
    python: PathBuf,
    json: PathBuf,
    markdown: PathBuf,
    only: Vec<String>,
}

const USAGE: &str = "usage: bench [--root DIR] [--release-dir DIR] [--lambda-dir DIR] \
[--cold N] [--warm N] [--burst N] [--burst-duplicates N] [--burst-instances N] \
[--burst-variant clean|faulted|both] [--callgrind N] [--profile-dir DIR] [--seeds N] [--json FILE] [--markdown FILE] \
[--only FUNCTION]...";

impl Args {
    fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
        let root = shared::testing::workspace_root();
        let mut args = Args {
            release_dir: root.join("target/release"),
            lambda_dir: root.join("target/lambda"),
            json: root.join("infra/bench/results.json"),
            markdown: root.join("BENCHMARKS.md"),
            root,
            cold_runs: 20,
            warm: 500,
            burst: 1_000,
            burst_duplicates: 200,
            burst_instances: 2,
            burst_variants: vec![burst::Variant::Clean, burst::Variant::Faulted],
            callgrind: 10,
            profile_dir: None,
            seeds_runs: 10,
            python: std::env::var_os("PORTICO_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|| "python3".into()),
            only: Vec::new(),
        };
        while let Some(flag) = argv.next() {
            let mut value = || argv.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
            let number = |v: String| {
                v.parse::<usize>()
                    .map_err(|_| format!("{flag}: not a number"))
            };
            match flag.as_str() {
                "--root" => args.root = value()?.into(),
                "--release-dir" => args.release_dir = value()?.into(),
                "--lambda-dir" => args.lambda_dir = value()?.into(),
                "--cold" => args.cold_runs = number(value()?)?,
                "--warm" => args.warm = number(value()?)?,
                "--burst" => args.burst = number(value()?)?,
                "--burst-duplicates" => args.burst_duplicates = number(value()?)?,
                "--burst-instances" => args.burst_instances = number(value()?)?,
                "--burst-variant" => {
                    args.burst_variants = match value()?.as_str() {
                        "clean" => vec![burst::Variant::Clean],
                        "faulted" => vec![burst::Variant::Faulted],
                        "both" => vec![burst::Variant::Clean, burst::Variant::Faulted],
                        other => return Err(format!("--burst-variant: {other}?\n{USAGE}")),
                    }
                }
                "--callgrind" => args.callgrind = number(value()?)?,
                "--profile-dir" => args.profile_dir = Some(value()?.into()),
                "--seeds" => args.seeds_runs = number(value()?)?,
                "--json" => args.json = value()?.into(),
                "--markdown" => args.markdown = value()?.into(),
                "--only" => args.only.push(value()?),
                "-h" | "--help" => return Err(USAGE.into()),
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
        }
        Ok(args)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&args).await {
        Ok(report) => {
            for t in &report.targets {
                let status = match t.met {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "not measured",
                };
                println!(
                    "  {status:<12} {:<50} {:<36} {}",
                    t.target, t.subject, t.figure
                );
            }
            println!(
                "figures: {} and {}",
                args.json.display(),
                args.markdown.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn zip_size(lambda_dir: &Path, name: &str) -> Option<u64> {
    std::fs::metadata(lambda_dir.join(name).join("bootstrap.zip"))
        .ok()
        .map(|m| m.len())
}

async fn run(args: &Args) -> Result<Report, String> {
    let machine = report::machine();
    let mut functions = discover_functions(&args.root);
    if !args.only.is_empty() {
        functions.retain(|f| args.only.contains(f));
    }
    // Taken before measuring: sources may change (and commits land) while the run goes on.
    let binaries: Vec<PathBuf> = functions.iter().map(|f| args.release_dir.join(f)).collect();
    let commit = report::commit(&args.root, &binaries);
    let logs = args.root.join("target/bench");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let log = |name: &str| logs.join(format!("{name}.log"));
    for name in functions.iter().map(String::as_str).chain([FLOOR]) {
        let _ = std::fs::remove_file(log(name));
    }

    // Each function gets a world of its own (table, emulator, user), so no phase measures what
    // an earlier one left behind.
    eprintln!("bench: {FLOOR}");
    let world = World::arrange(0).await?;
    let mut floor = Subject::new(FLOOR);
    let floor_binary = args.release_dir.join(FLOOR);
    let floor_env = world.env(FLOOR);
    let hello = || Ok(Bytes::from_static(br#"{"hello":"bench"}"#));
    match measure::cold_starts(
        None,
        &floor_binary,
        &floor_env,
        &log(FLOOR),
        args.cold_runs,
        "hello",
        hello,
    )
    .await
    {
        Ok(cold) => floor.cold = Some(cold),
        Err(e) => floor.errors.push(format!("cold starts: {e}")),
    }
    match measure::floor_warm(&floor_binary, &floor_env, &log(FLOOR), args.warm).await {
        Ok(warm) => floor.warm = Some(warm),
        Err(e) => floor.errors.push(format!("warm: {e}")),
    }
    let seeds = if args.seeds_runs == 0 {
        Err("not run (--seeds 0)".to_string())
    } else {
        eprintln!("bench: the seeds' Python stack");
        let mut env = world.env("seeds-python");
        env.push((
            "STRIPE_SECRET_KEY".into(),
            shared::testing::STRIPE_TEST_KEY.into(),
        ));
        let (python, script, runs) = (
            args.python.clone(),
            seeds::script(&args.root),
            args.seeds_runs,
        );
        tokio::task::spawn_blocking(move || seeds::measure(&python, &script, &env, runs))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
    };
    drop(world);
    floor.primary_case = Some("hello".into());
    floor.peak_rss_kib = floor
        .warm
        .iter()
        .map(|w| w.peak_rss_kib)
        .chain(floor.cold.iter().map(|c| c.peak_rss_kib))
        .max()
        .unwrap_or(0);
    floor.zip_bytes = zip_size(&args.lambda_dir, FLOOR);
    let floor_init = floor.cold.as_ref().map(|c| c.init_ms.p50);

    let mut subjects = Vec::new();
    for name in &functions {
        eprintln!("bench: {name}");
        let mut subject = Subject::new(name);
        subject.zip_bytes = zip_size(&args.lambda_dir, name);
        let binary = args.release_dir.join(name);
        let cases = discover_cases(&args.root, name);
        if !binary.is_file() {
            subject
                .errors
                .push(format!("{} not built", binary.display()));
        } else if cases.is_empty() {
            subject.errors.push(format!("no events/{name}/*.json"));
        } else {
            let signed = cases
                .iter()
                .filter(|c| c.template.contains("${BODY}"))
                .count();
            let per_case = args.warm.div_ceil(cases.len()).max(MIN_PER_CASE);
            // Every invocation of a webhook case takes a fresh event.
            let events = signed * (per_case + measure::WARMUP)
                + args.cold_runs
                + 1
                + measure::WARMUP
                + args.callgrind
                + 10;
            eprintln!("bench: {name}: arranging");
            match World::arrange(if signed > 0 { events } else { 0 }).await {
                Ok(world) => {
                    eprintln!("bench: {name}: measuring {} cases", cases.len());
                    measure_function(
                        &world,
                        args,
                        &mut subject,
                        &binary,
                        &cases,
                        &log(name),
                        per_case,
                    )
                    .await
                }
                Err(e) => subject.errors.push(format!("arrange: {e}")),
            }
        }
        subject.init_ratio_to_floor = match (&subject.cold, floor_init) {
            (Some(c), Some(f)) if f > 0.0 => Some(c.init_ms.p50 / f),
            _ => None,
        };
        subjects.push(subject);
    }

    let (mut burst, mut burst_error) = (None, None);
    let (mut faulted_burst, mut faulted_burst_error) = (None, None);
    let webhook_case = discover_cases(&args.root, WEBHOOK)
        .into_iter()
        .find(|c| c.template.contains("${BODY}"));
    let webhook_binary = args.release_dir.join(WEBHOOK);
    if functions.iter().any(|f| f == WEBHOOK) && args.burst > 0 {
        for variant in args.burst_variants.clone() {
            let (result, error) = match variant {
                burst::Variant::Clean => (&mut burst, &mut burst_error),
                burst::Variant::Faulted => (&mut faulted_burst, &mut faulted_burst_error),
            };
            let Some(case) = webhook_case.as_ref().filter(|_| webhook_binary.is_file()) else {
                *error = Some("no built stripe-webhook with a ${BODY} event".into());
                continue;
            };
            eprintln!("bench: webhook burst of {} ({variant:?})", args.burst);
            // A world of its own: the faulted run starts from a table as small as the clean one.
            let world = World::arrange(0).await?;
            let env = world.env(WEBHOOK);
            let webhook_log = log(WEBHOOK);
            let launch = burst::Launch {
                binary: &webhook_binary,
                env: &env,
                log: &webhook_log,
            };
            let size = burst::Size {
                deliveries: args.burst,
                duplicates: args.burst_duplicates,
                instances: args.burst_instances,
            };
            match burst::run(&world, launch, &case.template, size, variant).await {
                Ok(b) => {
                    if let Some(s) = subjects.iter_mut().find(|s| s.name == WEBHOOK) {
                        s.peak_rss_kib = s.peak_rss_kib.max(b.peak_rss_kib);
                    }
                    *result = Some(b);
                }
                Err(e) => *error = Some(e),
            }
        }
    }

    let report = Report {
        date: report::now_utc(),
        commit,
        machine,
        settings: Settings {
            cold_starts_per_function: args.cold_runs,
            warm_invocations_per_function: args.warm,
            burst_deliveries: args.burst,
            burst_duplicates: args.burst_duplicates,
            burst_instances: args.burst_instances,
            host_binaries: "`cargo build --release` for this host (x86_64)".into(),
            zips: "`cargo lambda build --release --arm64 --output-format zip` (target/lambda)"
                .into(),
        },
        targets: report::targets(&floor, &subjects, seeds.as_ref().ok(), burst.as_ref()),
        floor,
        functions: subjects,
        seeds: seeds.as_ref().ok().cloned(),
        seeds_error: seeds.err(),
        burst,
        burst_error,
        faulted_burst,
        faulted_burst_error,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&args.json, json + "\n").map_err(|e| format!("{}: {e}", args.json.display()))?;
    report::write_markdown(&args.markdown, &report)
        .map_err(|e| format!("{}: {e}", args.markdown.display()))?;
    Ok(report)
}

async fn measure_function(
    world: &World,
    args: &Args,
    subject: &mut Subject,
    binary: &Path,
    cases: &[world::Case],
    log: &Path,
    per_case: usize,
) {
    let env = world.env(&subject.name);
    match measure::warm(world, binary, &env, log, cases, per_case).await {
        Ok(warm) => subject.warm = Some(warm),
        Err(e) => subject.errors.push(format!("warm: {e}")),
    }
    let hinted = PRIMARY_CASES
        .iter()
        .find(|(f, _)| *f == subject.name)
        .map(|(_, c)| c.to_string());
    let first_ok = subject
        .warm
        .as_ref()
        .and_then(|w| w.cases.iter().find(|c| c.succeeded()))
        .map(|c| c.case.clone());
    let primary = hinted.or(first_ok);
    let Some(case) = primary.and_then(|p| cases.iter().find(|c| c.name == p)) else {
        subject
            .errors
            .push("no case answers 2xx for the cold starts".into());
        return;
    };
    subject.primary_case = Some(case.name.clone());
    match measure::cold_starts(
        Some(world),
        binary,
        &env,
        log,
        args.cold_runs,
        &case.name,
        || world.payload(case),
    )
    .await
    {
        Ok(cold) => subject.cold = Some(cold),
        Err(e) => subject.errors.push(format!("cold starts: {e}")),
    }
    if args.callgrind > 0 {
        eprintln!("bench: {}: callgrind", subject.name);
        let keep = args
            .profile_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}.callgrind", subject.name)));
        match measure::instructions(world, binary, &env, log, case, args.callgrind, keep).await {
            Ok(counts) => subject.instructions = Some(counts),
            Err(e) => subject.errors.push(format!("callgrind: {e}")),
        }
    }
    subject.peak_rss_kib = subject
        .warm
        .iter()
        .map(|w| w.peak_rss_kib)
        .chain(subject.cold.iter().map(|c| c.peak_rss_kib))
        .max()
        .unwrap_or(0);
}
