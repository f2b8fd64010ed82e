//! CPU time spent by this process, by its finished child processes, and by the local PostgreSQL server's
//! processes, for benchmarks that report CPU microseconds per request or per event beside wall-clock rates.
//!
//! This process and its children come from `getrusage` (microsecond resolution); PostgreSQL's share is the sum
//! over every process named `postgres` on the machine, read from `/proc` (Linux; clock ticks of 10 ms). A
//! backend that exits during a measurement takes its time with it, so benchmarks keep their connections open
//! (pooled).

use std::time::Duration;

/// CPU time (user plus system) used so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    pub own: Duration,
    /// Child processes that have ended and been waited for.
    pub children: Duration,
    pub postgres: Duration,
}

impl CpuTimes {
    /// The times now; zero where they cannot be read.
    pub fn now() -> Self {
        Self { own: rusage(Who::Own), children: rusage(Who::Children), postgres: postgres_cpu() }
    }

    /// The time used since `earlier`.
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            own: self.own.saturating_sub(earlier.own),
            children: self.children.saturating_sub(earlier.children),
            postgres: self.postgres.saturating_sub(earlier.postgres),
        }
    }

    /// `attune N µs + postgresql M µs of CPU each` for one of `count` units.
    pub fn per_unit(&self, count: usize) -> String {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / count.max(1) as f64;
        format!("attune {:.1} µs + postgresql {:.1} µs of CPU each", per(self.own), per(self.postgres))
    }
}

enum Who {
    Own,
    Children,
}

#[cfg(unix)]
fn rusage(who: Who) -> Duration {
    let who = match who {
        Who::Own => libc::RUSAGE_SELF,
        Who::Children => libc::RUSAGE_CHILDREN,
    };
    // SAFETY: getrusage only writes the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    time(usage.ru_utime) + time(usage.ru_stime)
}

#[cfg(not(unix))]
fn rusage(_who: Who) -> Duration {
    Duration::ZERO
}

/// User plus system time from a `/proc/<pid>/stat` line (fields 14 and 15, in clock ticks of 1/100 s).
fn process_cpu(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn postgres_cpu() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Duration::ZERO };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| stat.contains("(postgres)"))
        .filter_map(|stat| process_cpu(&stat))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_user_plus_system_time() {
        let line = "4242 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 1 0 100 0 0";
        assert_eq!(process_cpu(line), Some(Duration::from_millis(1_750)));
    }

    #[test]
    fn busy_work_shows_as_own_time() {
        let before = CpuTimes::now();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(60) {
            std::hint::black_box(spin.elapsed());
        }
        let used = CpuTimes::now().since(&before).own;
        assert!(used >= Duration::from_millis(30) || cfg!(not(unix)), "{used:?}");
    }
}
