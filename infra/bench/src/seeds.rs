//! The seeds' Python stack beside Portico: one Python process importing `stripe` and `boto3`,
//! building a DynamoDB and a Secrets Manager client and setting the Stripe key
//! (`python/seeds_stack.py`), started as the functions are, timed from exec to `ready`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::measure::ms;
use crate::procfs;
use crate::stats::{summarize, Summary};

#[derive(Debug, Clone, Serialize)]
pub struct SeedsResult {
    pub python: String,
    pub runs: usize,
    /// Exec to `ready`: interpreter start, imports, clients.
    pub init_ms: Summary,
    pub peak_rss_kib: u64,
}

pub fn script(root: &Path) -> PathBuf {
    root.join("infra/bench/python/seeds_stack.py")
}

/// `runs` starts (after one untimed start, as for the functions) with `env` as the only
/// environment.
pub fn measure(
    python: &Path,
    script: &Path,
    env: &[(String, String)],
    runs: usize,
) -> Result<SeedsResult, String> {
    let version = Command::new(python)
        .arg("-c")
        .arg("import platform, stripe, boto3; print(f'Python {platform.python_version()}, stripe {stripe.VERSION}, boto3 {boto3.__version__}')")
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !version.status.success() {
        return Err(format!(
            "the seeds' stack is not installed: {}",
            String::from_utf8_lossy(&version.stderr).trim()
        ));
    }
    let (mut init, mut peak) = (Vec::new(), 0);
    for run in 0..=runs {
        let started = Instant::now();
        let mut child = Command::new(python)
            .arg(script)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{}: {e}", python.display()))?;
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| BufReader::new(out).read_line(&mut line));
        let elapsed = started.elapsed();
        let rss = procfs::peak_rss_kib(child.id()).unwrap_or(0);
        drop(child.stdin.take());
        let status = child.wait().map_err(|e| e.to_string())?;
        if line.trim() != "ready" || !matches!(read, Some(Ok(_))) {
            return Err(format!("the seeds' stack did not start ({status})"));
        }
        if run > 0 {
            init.push(ms(elapsed));
        }
        peak = peak.max(rss);
    }
    Ok(SeedsResult {
        python: String::from_utf8_lossy(&version.stdout).trim().to_string(),
        runs,
        init_ms: summarize(&init),
        peak_rss_kib: peak,
    })
}
