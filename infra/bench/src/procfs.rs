//! What the kernel knows about a function process: CPU time and peak memory, from /proc.

use std::collections::HashMap;
use std::io;

/// On-CPU nanoseconds of each thread of `pid`, from `/proc/<pid>/task/<tid>/schedstat`.
/// Nanoseconds, because `/proc/<pid>/stat` counts in 10 ms ticks: coarser than one invocation.
pub fn thread_cpu_ns(pid: u32) -> io::Result<HashMap<u32, u64>> {
    let mut threads = HashMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A thread may end between the listing and the read; it then simply has no entry.
        if let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) {
            if let Some(ns) = text.split_whitespace().next().and_then(|v| v.parse().ok()) {
                threads.insert(tid, ns);
            }
        }
    }
    Ok(threads)
}

/// CPU nanoseconds the process spent between two readings. Threads born in between count from
/// zero; a thread that ended in between loses only its share of the interval.
pub fn cpu_delta_ns(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// utime + stime of the whole process (dead threads included), in clock ticks.
pub fn process_cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_ticks(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/<pid>/stat"))
}

/// Linux reports /proc times in USER_HZ, 100 on every architecture Lambda runs.
pub const TICKS_PER_SECOND: u64 = 100;

fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of stat(5), so utime (14) and stime (15) are at 11, 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Peak resident set size (VmHWM) in KiB.
pub fn peak_rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmHWM in /proc/<pid>/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 100 1000 200";
        assert_eq!(parse_stat_ticks(stat), Some(12));
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(peak_rss_kib(pid).unwrap() > 0);
        assert!(!thread_cpu_ns(pid).unwrap().is_empty());
        process_cpu_ticks(pid).unwrap();
    }

    #[test]
    fn delta_counts_new_threads_from_zero() {
        let before = HashMap::from([(1, 100), (2, 50)]);
        let after = HashMap::from([(1, 160), (3, 20)]);
        assert_eq!(cpu_delta_ns(&before, &after), 80);
    }
}
