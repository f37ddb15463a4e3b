//! PodSandboxStats and ListPodSandboxStats: a pod's containers' stats,
//! their sums as the pod's CPU and memory, its processes, and the counters
//! of its network interfaces (read from the pod's namespace through
//! `/proc/<pid>/net/dev` of a container's process, no setns; a pod with no
//! running container reports none).

use std::collections::HashMap;

use k8s_cri::v1 as cri;

use super::pods::{host_network, Pod};
use super::stats::CpuTimes;
use super::{Cri, CriError, NAMESPACE};
use crate::containers::tasks::Status;

/// The interface kubelet reports as the pod's (CNI's default).
const DEFAULT_INTERFACE: &str = "eth0";

/// The interfaces of a `/proc/net/dev` text, loopback left out.
pub fn net_dev(text: &str) -> Vec<cri::NetworkInterfaceUsage> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            let name = name.trim();
            if name == "lo" || f.len() < 16 {
                return None;
            }
            let v = |x| Some(cri::UInt64Value { value: x });
            Some(cri::NetworkInterfaceUsage {
                name: name.to_string(),
                rx_bytes: v(f[0]),
                rx_errors: v(f[2]),
                tx_bytes: v(f[8]),
                tx_errors: v(f[10]),
            })
        })
        .collect()
}

fn add(a: &mut Option<cri::UInt64Value>, b: &Option<cri::UInt64Value>) {
    if let Some(b) = b {
        a.get_or_insert(cri::UInt64Value { value: 0 }).value += b.value;
    }
}

impl Cri {
    /// The stats of one pod.
    pub async fn pod_sandbox_stats(&self, p: &Pod) -> Result<cri::PodSandboxStats, CriError> {
        Ok(self.pod_sandbox_stats_and_cpu(p).await?.0)
    }

    /// The stats of one pod, with the CPU times of its running containers
    /// by id.
    pub async fn pod_sandbox_stats_and_cpu(
        &self,
        p: &Pod,
    ) -> Result<(cri::PodSandboxStats, HashMap<String, CpuTimes>), CriError> {
        let now = super::now_ns();
        let meta = p.config.metadata.clone();
        let mut containers = Vec::new();
        let mut pids = 0u64;
        // A process in the pod's network namespace: a container's (the
        // namespace holder keeps IPC, UTS and PID, not the network).
        let mut a_pid = None;
        let mut cpu_times = HashMap::new();
        for c in self.pod_containers(&p.id)? {
            let (status, pid) = self.manager.status(NAMESPACE, &c.id).await;
            if status != Status::Running {
                continue;
            }
            a_pid.get_or_insert(pid);
            pids += u64::try_from(
                self.manager
                    .pids(NAMESPACE, &c.id)
                    .await
                    .map(|p| p.len())
                    .unwrap_or(0),
            )
            .unwrap_or(0);
            let (stats, times) = self.container_stats_and_cpu(&c).await?;
            containers.push(stats);
            cpu_times.extend(times.map(|t| (c.id.clone(), t)));
        }
        let mut cpu = cri::CpuUsage {
            timestamp: now,
            ..Default::default()
        };
        let mut memory = cri::MemoryUsage {
            timestamp: now,
            ..Default::default()
        };
        for s in &containers {
            if let Some(c) = &s.cpu {
                add(&mut cpu.usage_core_nano_seconds, &c.usage_core_nano_seconds);
                add(&mut cpu.usage_nano_cores, &c.usage_nano_cores);
            }
            if let Some(m) = &s.memory {
                add(&mut memory.working_set_bytes, &m.working_set_bytes);
                add(&mut memory.usage_bytes, &m.usage_bytes);
                add(&mut memory.rss_bytes, &m.rss_bytes);
                add(&mut memory.page_faults, &m.page_faults);
                add(&mut memory.major_page_faults, &m.major_page_faults);
            }
        }
        let network = match (host_network(&p.config), a_pid) {
            (false, Some(pid)) if p.ready => {
                let text =
                    std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
                let interfaces = net_dev(&text);
                Some(cri::NetworkUsage {
                    timestamp: now,
                    default_interface: interfaces
                        .iter()
                        .find(|i| i.name == DEFAULT_INTERFACE)
                        .cloned(),
                    interfaces,
                })
            }
            _ => None,
        };
        let stats = cri::PodSandboxStats {
            attributes: Some(cri::PodSandboxAttributes {
                id: p.id.clone(),
                metadata: meta,
                labels: p.config.labels.clone(),
                annotations: p.config.annotations.clone(),
            }),
            linux: Some(cri::LinuxPodSandboxStats {
                cpu: Some(cpu),
                memory: Some(memory),
                network,
                process: Some(cri::ProcessUsage {
                    timestamp: now,
                    process_count: Some(cri::UInt64Value { value: pids }),
                }),
                containers,
            }),
            windows: None,
        };
        Ok((stats, cpu_times))
    }

    /// ListPodSandboxStats with its filter (id prefix, labels).
    pub async fn list_pod_sandbox_stats(
        &self,
        f: Option<&cri::PodSandboxStatsFilter>,
    ) -> Result<Vec<cri::PodSandboxStats>, CriError> {
        let mut out = Vec::new();
        for p in self.pods()? {
            if let Some(f) = f {
                if !super::matches_id(&p.id, &f.id)
                    || !super::matches_labels(&p.config.labels, &f.label_selector)
                {
                    continue;
                }
            }
            out.push(self.pod_sandbox_stats(&p).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_from_net_dev_without_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    5000      40    1    0    0     0          0         0     3000      30    2    0    0     0       0          0
";
        let i = net_dev(text);
        assert_eq!(i.len(), 1);
        assert_eq!(i[0].name, "eth0");
        assert_eq!(
            (
                i[0].rx_bytes.as_ref().unwrap().value,
                i[0].rx_errors.as_ref().unwrap().value,
                i[0].tx_bytes.as_ref().unwrap().value,
                i[0].tx_errors.as_ref().unwrap().value
            ),
            (5000, 1, 3000, 2)
        );
    }
}
