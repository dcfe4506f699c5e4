//! Lambda's CPU share for a memory size (reproduced with a cgroup CPU quota) and its price.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// The CPU Lambda gives a function of `memory_mb` (memory/1769 of one vCPU), enforced on this
/// machine by a cgroup CFS quota, so CPU-bound routes (argon2) can be timed at each memory size.
/// `None` when this machine lets us create no cgroup (then the section is skipped).
pub struct CpuShare {
    dir: PathBuf,
    procs: &'static str,
}

impl CpuShare {
    const PERIOD_US: u64 = 20_000;

    pub fn new(memory_mb: u64) -> Option<CpuShare> {
        let quota = Self::PERIOD_US * memory_mb / 1769;
        let name = format!("codechat-bench-{}-{memory_mb}", std::process::id());
        // cgroup v1 (a `cpu` hierarchy), else v2 with the cpu controller on.
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(name);
            std::fs::create_dir_all(&dir).ok()?;
            std::fs::write(dir.join("cpu.cfs_period_us"), Self::PERIOD_US.to_string()).ok()?;
            std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string()).ok()?;
            return Some(CpuShare {
                dir,
                procs: "cgroup.procs",
            });
        }
        let dir = Path::new("/sys/fs/cgroup").join(name);
        std::fs::create_dir_all(&dir).ok()?;
        let set = std::fs::write(dir.join("cpu.max"), format!("{quota} {}", Self::PERIOD_US));
        match set {
            Ok(()) => Some(CpuShare {
                dir,
                procs: "cgroup.procs",
            }),
            Err(_) => {
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }

    pub fn add(&self, pid: u32) -> bool {
        std::fs::write(self.dir.join(self.procs), pid.to_string()).is_ok()
    }
}

impl Drop for CpuShare {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Lambda's price for arm64 (us-east-1): per GB-second, billed per started millisecond, plus per request.
const ARM64_PRICE_PER_GB_SECOND: f64 = 0.000_013_333_4;
const PRICE_PER_MILLION_REQUESTS: f64 = 0.20;

/// Dollars per million invocations of a route taking `took` at `memory_mb`.
pub fn cost_per_million(memory_mb: u64, took: Duration) -> f64 {
    let billed_ms = (took.as_secs_f64() * 1000.0).ceil();
    memory_mb as f64 / 1024.0 * billed_ms / 1000.0 * ARM64_PRICE_PER_GB_SECOND * 1e6
        + PRICE_PER_MILLION_REQUESTS
}
