//! ListMetricDescriptors and ListPodSandboxMetrics: the cAdvisor-named
//! metrics kubelet serves on `/metrics/cadvisor` when it takes pod and
//! container stats from the CRI (`PodAndContainerStatsFromCRI`), made from
//! the same numbers as the stats calls.
//!
//! cAdvisor's CPU metrics are fractional seconds, which the CRI's
//! `UInt64Value` cannot carry: they go out in whole seconds, as containerd's
//! CRI sends them (a rate over minutes is still right; nano-cores come
//! through the stats calls).

use std::collections::HashMap;

use k8s_cri::v1 as cri;

use super::stats::CpuTimes;
use super::{Cri, CriError};

const NS_PER_S: u64 = 1_000_000_000;

/// (name, help, label keys, type).
const DESCRIPTORS: &[(&str, &str, &[&str], cri::MetricType)] = &[
    (
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds",
        &[],
        cri::MetricType::Counter,
    ),
    (
        "container_cpu_user_seconds_total",
        "Cumulative user cpu time consumed in seconds",
        &[],
        cri::MetricType::Counter,
    ),
    (
        "container_cpu_system_seconds_total",
        "Cumulative system cpu time consumed in seconds",
        &[],
        cri::MetricType::Counter,
    ),
    (
        "container_cpu_cfs_periods_total",
        "Number of elapsed enforcement period intervals",
        &[],
        cri::MetricType::Counter,
    ),
    (
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled period intervals",
        &[],
        cri::MetricType::Counter,
    ),
    (
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled",
        &[],
        cri::MetricType::Counter,
    ),
    (
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        &[],
        cri::MetricType::Gauge,
    ),
    (
        "container_memory_working_set_bytes",
        "Current working set in bytes",
        &[],
        cri::MetricType::Gauge,
    ),
    (
        "container_memory_rss",
        "Size of RSS in bytes",
        &[],
        cri::MetricType::Gauge,
    ),
    (
        "container_memory_swap",
        "Container swap usage in bytes",
        &[],
        cri::MetricType::Gauge,
    ),
    (
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures (page faults)",
        &["failure_type", "scope"],
        cri::MetricType::Counter,
    ),
    (
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container's writable layer",
        &[],
        cri::MetricType::Gauge,
    ),
    (
        "container_fs_inodes_used",
        "Number of inodes used by the container's writable layer",
        &[],
        cri::MetricType::Gauge,
    ),
    (
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received",
        &["interface"],
        cri::MetricType::Counter,
    ),
    (
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving",
        &["interface"],
        cri::MetricType::Counter,
    ),
    (
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted",
        &["interface"],
        cri::MetricType::Counter,
    ),
    (
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting",
        &["interface"],
        cri::MetricType::Counter,
    ),
    (
        "container_processes",
        "Number of processes running inside the pod",
        &[],
        cri::MetricType::Gauge,
    ),
];

/// Every metric this runtime reports.
pub fn descriptors() -> Vec<cri::MetricDescriptor> {
    DESCRIPTORS
        .iter()
        .map(|(name, help, keys, _)| cri::MetricDescriptor {
            name: name.to_string(),
            help: help.to_string(),
            label_keys: keys.iter().map(|k| k.to_string()).collect(),
        })
        .collect()
}

fn metric(name: &str, labels: &[&str], value: Option<u64>) -> Option<cri::Metric> {
    let (_, _, keys, kind) = DESCRIPTORS.iter().find(|d| d.0 == name)?;
    debug_assert_eq!(keys.len(), labels.len(), "{name}");
    Some(cri::Metric {
        name: name.to_string(),
        timestamp: 0,
        metric_type: *kind as i32,
        label_values: labels.iter().map(|l| l.to_string()).collect(),
        value: Some(cri::UInt64Value { value: value? }),
    })
}

fn v(x: &Option<cri::UInt64Value>) -> Option<u64> {
    x.as_ref().map(|x| x.value)
}

/// A container's metrics from its stats and, when it runs, its CPU times.
pub fn container_metrics(s: &cri::ContainerStats, cpu: Option<&CpuTimes>) -> Vec<cri::Metric> {
    let mut out = Vec::new();
    if let Some(c) = &s.cpu {
        out.extend(metric(
            "container_cpu_usage_seconds_total",
            &[],
            v(&c.usage_core_nano_seconds).map(|ns| ns / NS_PER_S),
        ));
    }
    if let Some(t) = cpu {
        for (name, value) in [
            ("container_cpu_user_seconds_total", t.user_ns / NS_PER_S),
            ("container_cpu_system_seconds_total", t.kernel_ns / NS_PER_S),
            ("container_cpu_cfs_periods_total", t.periods),
            (
                "container_cpu_cfs_throttled_periods_total",
                t.throttled_periods,
            ),
            (
                "container_cpu_cfs_throttled_seconds_total",
                t.throttled_ns / NS_PER_S,
            ),
        ] {
            out.extend(metric(name, &[], Some(value)));
        }
    }
    if let Some(m) = &s.memory {
        out.extend(metric(
            "container_memory_usage_bytes",
            &[],
            v(&m.usage_bytes),
        ));
        out.extend(metric(
            "container_memory_working_set_bytes",
            &[],
            v(&m.working_set_bytes),
        ));
        out.extend(metric("container_memory_rss", &[], v(&m.rss_bytes)));
        let minor =
            v(&m.page_faults).map(|p| p.saturating_sub(v(&m.major_page_faults).unwrap_or(0)));
        out.extend(metric(
            "container_memory_failures_total",
            &["pgfault", "container"],
            minor,
        ));
        out.extend(metric(
            "container_memory_failures_total",
            &["pgmajfault", "container"],
            v(&m.major_page_faults),
        ));
    }
    if let Some(sw) = &s.swap {
        out.extend(metric(
            "container_memory_swap",
            &[],
            v(&sw.swap_usage_bytes),
        ));
    }
    if let Some(fs) = &s.writable_layer {
        out.extend(metric("container_fs_usage_bytes", &[], v(&fs.used_bytes)));
        out.extend(metric("container_fs_inodes_used", &[], v(&fs.inodes_used)));
    }
    out
}

/// A pod's own metrics (network, processes) and its containers' from its
/// stats and their CPU times by container id.
pub fn pod_metrics(
    s: &cri::PodSandboxStats,
    cpu: &HashMap<String, CpuTimes>,
) -> cri::PodSandboxMetrics {
    let mut metrics = Vec::new();
    let mut containers = Vec::new();
    if let Some(l) = &s.linux {
        for i in l.network.iter().flat_map(|n| &n.interfaces) {
            let n = i.name.as_str();
            metrics.extend(metric(
                "container_network_receive_bytes_total",
                &[n],
                v(&i.rx_bytes),
            ));
            metrics.extend(metric(
                "container_network_receive_errors_total",
                &[n],
                v(&i.rx_errors),
            ));
            metrics.extend(metric(
                "container_network_transmit_bytes_total",
                &[n],
                v(&i.tx_bytes),
            ));
            metrics.extend(metric(
                "container_network_transmit_errors_total",
                &[n],
                v(&i.tx_errors),
            ));
        }
        if let Some(p) = &l.process {
            metrics.extend(metric("container_processes", &[], v(&p.process_count)));
        }
        for c in &l.containers {
            let id = c
                .attributes
                .as_ref()
                .map(|a| a.id.clone())
                .unwrap_or_default();
            containers.push(cri::ContainerMetrics {
                metrics: container_metrics(c, cpu.get(&id)),
                container_id: id,
            });
        }
    }
    cri::PodSandboxMetrics {
        pod_sandbox_id: s
            .attributes
            .as_ref()
            .map(|a| a.id.clone())
            .unwrap_or_default(),
        metrics,
        container_metrics: containers,
    }
}

impl Cri {
    /// ListPodSandboxMetrics: every pod's.
    pub async fn pod_sandbox_metrics(&self) -> Result<Vec<cri::PodSandboxMetrics>, CriError> {
        let mut out = Vec::new();
        for p in self.pods()? {
            let (stats, cpu) = self.pod_sandbox_stats_and_cpu(&p).await?;
            out.push(pod_metrics(&stats, &cpu));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_its_descriptors_labels() {
        let s = cri::PodSandboxStats {
            attributes: Some(cri::PodSandboxAttributes {
                id: "p".into(),
                ..Default::default()
            }),
            linux: Some(cri::LinuxPodSandboxStats {
                network: Some(cri::NetworkUsage {
                    interfaces: vec![cri::NetworkInterfaceUsage {
                        name: "eth0".into(),
                        rx_bytes: Some(cri::UInt64Value { value: 10 }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                containers: vec![cri::ContainerStats {
                    attributes: Some(cri::ContainerAttributes {
                        id: "c".into(),
                        ..Default::default()
                    }),
                    cpu: Some(cri::CpuUsage {
                        usage_core_nano_seconds: Some(cri::UInt64Value {
                            value: 2_500_000_000,
                        }),
                        ..Default::default()
                    }),
                    memory: Some(cri::MemoryUsage {
                        working_set_bytes: Some(cri::UInt64Value { value: 5 }),
                        page_faults: Some(cri::UInt64Value { value: 9 }),
                        major_page_faults: Some(cri::UInt64Value { value: 2 }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            windows: None,
        };
        let cpu = HashMap::from([(
            "c".to_string(),
            CpuTimes {
                user_ns: 1_900_000_000,
                kernel_ns: 600_000_000,
                periods: 12,
                throttled_periods: 3,
                throttled_ns: 1_000_000_000,
            },
        )]);
        let m = pod_metrics(&s, &cpu);
        let d = descriptors();
        let all = m
            .metrics
            .iter()
            .chain(m.container_metrics.iter().flat_map(|c| &c.metrics));
        for x in all {
            let desc = d.iter().find(|d| d.name == x.name).expect("described");
            assert_eq!(desc.label_keys.len(), x.label_values.len(), "{}", x.name);
        }
        let rx = m
            .metrics
            .iter()
            .find(|x| x.name == "container_network_receive_bytes_total")
            .unwrap();
        assert_eq!(
            (rx.label_values.clone(), rx.value.as_ref().unwrap().value),
            (vec!["eth0".to_string()], 10)
        );
        let c = &m.container_metrics[0];
        assert_eq!(c.container_id, "c");
        let minor = c
            .metrics
            .iter()
            .find(|x| x.name == "container_memory_failures_total" && x.label_values[0] == "pgfault")
            .unwrap();
        assert_eq!(minor.value.as_ref().unwrap().value, 7);
        // CPU in whole seconds, as containerd's CRI sends it.
        let value = |name: &str| {
            c.metrics
                .iter()
                .find(|x| x.name == name)
                .map(|x| x.value.as_ref().unwrap().value)
        };
        assert_eq!(value("container_cpu_usage_seconds_total"), Some(2));
        assert_eq!(value("container_cpu_user_seconds_total"), Some(1));
        assert_eq!(value("container_cpu_system_seconds_total"), Some(0));
        assert_eq!(value("container_cpu_cfs_throttled_periods_total"), Some(3));
        assert_eq!(value("container_cpu_cfs_throttled_seconds_total"), Some(1));
    }
}
