//! ContainerStats and ListContainerStats: CPU (cumulative core-nanoseconds
//! and, from the previous sample, nano-cores), memory (working set as
//! kubelet and cAdvisor count it: usage less inactive file pages; RSS; page
//! faults), swap, and the writable layer's bytes and inodes. Running
//! containers report all of it (from the runtime's `events --stats` through
//! their shim); others only their attributes and writable layer.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_cri::v1 as cri;
use serde_json::Value;

use super::containers::CriContainer;
use super::{Cri, CriError, NAMESPACE};
use crate::containers::tasks::Status;

/// The previous CPU sample of each container: (time ns, usage ns).
#[derive(Default)]
pub struct CpuSamples(Mutex<HashMap<String, (i64, u64)>>);

impl CpuSamples {
    /// Nano-cores since the container's previous sample (0 at the first),
    /// recording this one.
    pub fn rate(&self, id: &str, now: i64, usage: u64) -> u64 {
        let mut m = self.0.lock().unwrap();
        let r = match m.get(id) {
            Some(&(t, u)) if now > t && usage >= u => {
                let dt = u128::try_from(now - t).unwrap_or(1);
                u64::try_from(u128::from(usage - u) * 1_000_000_000 / dt).unwrap_or(u64::MAX)
            }
            _ => 0,
        };
        m.insert(id.to_string(), (now, usage));
        r
    }

    /// Forgets a removed container.
    pub fn forget(&self, id: &str) {
        self.0.lock().unwrap().remove(id);
    }
}

fn u(v: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value: v })
}

/// Memory usage from runc's `events --stats` JSON (v1 or v2 keys).
pub fn memory(stats: &Value, now: i64) -> cri::MemoryUsage {
    let m = &stats["memory"];
    let raw = &m["raw"];
    let get = |keys: &[&str]| keys.iter().find_map(|k| raw[*k].as_u64()).unwrap_or(0);
    let usage = m["usage"]["usage"].as_u64().unwrap_or(0);
    let inactive = get(&["total_inactive_file", "inactive_file"]);
    let limit = m["usage"]["limit"].as_u64().unwrap_or(u64::MAX);
    let working_set = usage.saturating_sub(inactive);
    cri::MemoryUsage {
        timestamp: now,
        working_set_bytes: u(working_set),
        available_bytes: (limit < (1 << 62)).then(|| cri::UInt64Value {
            value: limit.saturating_sub(working_set),
        }),
        usage_bytes: u(usage),
        rss_bytes: u(get(&["total_rss", "anon"])),
        page_faults: u(get(&["total_pgfault", "pgfault"])),
        major_page_faults: u(get(&["total_pgmajfault", "pgmajfault"])),
    }
}

/// The CPU times kubelet's cAdvisor metrics name, beyond the total the CRI
/// stats carry: user and kernel time and CFS throttling, all cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Time in user mode, ns.
    pub user_ns: u64,
    /// Time in kernel mode, ns.
    pub kernel_ns: u64,
    /// CFS enforcement periods elapsed.
    pub periods: u64,
    /// Periods in which the container was throttled.
    pub throttled_periods: u64,
    /// Time throttled, ns.
    pub throttled_ns: u64,
}

/// CPU times from runc's `events --stats` JSON (the runtime writes v1's and
/// v2's in the same keys, in ns).
pub fn cpu_times(stats: &Value) -> CpuTimes {
    let c = &stats["cpu"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    CpuTimes {
        user_ns: n(&c["usage"]["user"]),
        kernel_ns: n(&c["usage"]["kernel"]),
        periods: n(&c["throttling"]["periods"]),
        throttled_periods: n(&c["throttling"]["throttledPeriods"]),
        throttled_ns: n(&c["throttling"]["throttledTime"]),
    }
}

/// Swap in use: v1 counts memory and swap together (memsw), v2 swap alone.
/// v1 is told by its `memory.stat`, which always has the hierarchy's limit.
fn swap(stats: &Value) -> u64 {
    let m = &stats["memory"];
    let sw = m["swap"]["usage"].as_u64().unwrap_or(0);
    if m["raw"].get("hierarchical_memory_limit").is_some() {
        sw.saturating_sub(m["usage"]["usage"].as_u64().unwrap_or(0))
    } else {
        sw
    }
}

impl Cri {
    /// The stats of one container.
    pub async fn container_stats(&self, c: &CriContainer) -> Result<cri::ContainerStats, CriError> {
        Ok(self.container_stats_and_cpu(c).await?.0)
    }

    /// The stats of one container, with the CPU times of a running one.
    pub async fn container_stats_and_cpu(
        &self,
        c: &CriContainer,
    ) -> Result<(cri::ContainerStats, Option<CpuTimes>), CriError> {
        let now = super::now_ns();
        let mut out = cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: c.id.clone(),
                metadata: c.config.metadata.clone(),
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
            }),
            ..Default::default()
        };
        if let Ok(rec) = self.manager.get(NAMESPACE, &c.id) {
            let images = self.manager.images.clone();
            let snap = rec.snapshot.clone();
            let used =
                tokio::task::spawn_blocking(move || images.snapshots.usage(NAMESPACE, &snap))
                    .await
                    .ok()
                    .and_then(Result::ok);
            if let Some((bytes, inodes)) = used {
                out.writable_layer = Some(cri::FilesystemUsage {
                    timestamp: now,
                    fs_id: Some(cri::FilesystemIdentifier {
                        mountpoint: self.config.root.join("overlay").display().to_string(),
                    }),
                    used_bytes: u(bytes),
                    inodes_used: u(inodes),
                });
            }
        }
        if self.manager.status(NAMESPACE, &c.id).await.0 != Status::Running {
            return Ok((out, None));
        }
        let Ok(s) = self.manager.stats(NAMESPACE, &c.id).await else {
            return Ok((out, None));
        };
        // The runtime's `events --stats` envelope: the numbers are in "data".
        let json: Value = serde_json::from_str::<Value>(&s.json)
            .map(|v| v.get("data").cloned().unwrap_or(v))
            .unwrap_or_default();
        let usage = s.cpu_usage_ns;
        out.cpu = Some(cri::CpuUsage {
            timestamp: now,
            usage_core_nano_seconds: u(usage),
            usage_nano_cores: u(self.cpu_samples.rate(&c.id, now, usage)),
        });
        out.memory = Some(memory(&json, now));
        out.swap = Some(cri::SwapUsage {
            timestamp: now,
            swap_available_bytes: None,
            swap_usage_bytes: u(swap(&json)),
        });
        Ok((out, Some(cpu_times(&json))))
    }

    /// ListContainerStats with its filter.
    pub async fn list_container_stats(
        &self,
        f: Option<&cri::ContainerStatsFilter>,
    ) -> Result<Vec<cri::ContainerStats>, CriError> {
        let mut out = Vec::new();
        let none = Default::default();
        let (id, pod, labels) = f.map_or(("", "", &none), |f| {
            (f.id.as_str(), f.pod_sandbox_id.as_str(), &f.label_selector)
        });
        for c in self.filtered_containers(id, pod, labels)? {
            out.push(self.container_stats(&c).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nano_cores_come_from_two_samples() {
        let s = CpuSamples::default();
        assert_eq!(s.rate("c", 1_000_000_000, 5_000), 0);
        // Half a core: 0.5 s of CPU in 1 s.
        assert_eq!(s.rate("c", 2_000_000_000, 500_005_000), 500_000_000);
        s.forget("c");
        assert_eq!(s.rate("c", 3_000_000_000, 600_000_000), 0);
    }

    #[test]
    fn swap_is_memsw_less_memory_on_v1_and_swap_alone_on_v2() {
        let v1 = serde_json::json!({"memory": {"usage": {"limit": 9, "usage": 100},
            "swap": {"limit": 9, "usage": 130}, "raw": {"hierarchical_memory_limit": 9}}});
        assert_eq!(swap(&v1), 30);
        let v2 = serde_json::json!({"memory": {"usage": {"limit": 9, "usage": 100},
            "swap": {"limit": 9, "usage": 30}, "raw": {"anon": 1}}});
        assert_eq!(swap(&v2), 30);
    }

    #[test]
    fn cpu_times_from_the_runtimes_stats() {
        let v = serde_json::json!({"cpu": {"usage": {"total": 9, "kernel": 3, "user": 5},
            "throttling": {"periods": 10, "throttledPeriods": 4, "throttledTime": 7}}});
        assert_eq!(
            cpu_times(&v),
            CpuTimes {
                user_ns: 5,
                kernel_ns: 3,
                periods: 10,
                throttled_periods: 4,
                throttled_ns: 7
            }
        );
        assert_eq!(cpu_times(&serde_json::json!({})), CpuTimes::default());
    }

    #[test]
    fn working_set_is_usage_less_inactive_files() {
        let v1 = serde_json::json!({"memory": {"usage": {"usage": 10_000, "limit": 50_000},
            "raw": {"total_inactive_file": 3_000, "total_rss": 6_000, "total_pgfault": 7, "total_pgmajfault": 1}}});
        let m = memory(&v1, 5);
        assert_eq!(m.working_set_bytes.unwrap().value, 7_000);
        assert_eq!(m.available_bytes.unwrap().value, 43_000);
        assert_eq!(m.rss_bytes.unwrap().value, 6_000);
        assert_eq!(
            (
                m.page_faults.unwrap().value,
                m.major_page_faults.unwrap().value
            ),
            (7, 1)
        );
        // v2 keys; no limit: nothing available to report.
        let v2 = serde_json::json!({"memory": {"usage": {"usage": 10_000, "limit": u64::MAX},
            "raw": {"inactive_file": 4_000, "anon": 5_000}}});
        let m = memory(&v2, 5);
        assert_eq!(m.working_set_bytes.unwrap().value, 6_000);
        assert!(m.available_bytes.is_none());
    }
}
