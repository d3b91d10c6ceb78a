"""Prometheus scrape jobs both clouds' managed collectors use: the consumers and KEDA's operator."""

from __future__ import annotations

from typing import Any

SCRAPE_INTERVAL = "30s"
# The operator's Prometheus endpoint (keda.sh, "Integrate with Prometheus").
KEDA_METRICS_PORT = 8080


def consumer_job(namespace: str) -> dict[str, Any]:
    """The consumer pods of the namespace, by their prometheus.io annotations."""
    return {
        "job_name": "edw-consumers",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                "action": "keep",
                "regex": "true",
            },
            # Pod discovery makes a target of every container port; a handler's pod has two
            # containers (components/k8s/consumer.py) and only the consumer serves metrics.
            {
                "source_labels": ["__meta_kubernetes_pod_container_name"],
                "action": "keep",
                "regex": "consumer",
            },
            {
                "source_labels": [
                    "__address__",
                    "__meta_kubernetes_pod_annotation_prometheus_io_port",
                ],
                "regex": r"([^:]+)(?::\d+)?;(\d+)",
                "replacement": "$1:$2",
                "target_label": "__address__",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }


def keda_job(namespace: str) -> dict[str, Any]:
    """KEDA's operator: keda_scaler_metrics_value keeps its own namespace label (honor_labels),
    the ScaledObject's, which the EdwNoProgress rule joins on."""
    return {
        "job_name": "keda-operator",
        "honor_labels": True,
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_label_app"],
                "action": "keep",
                "regex": "keda-operator",
            },
            {
                "source_labels": ["__address__"],
                "regex": r"([^:]+)(?::\d+)?",
                "replacement": f"$1:{KEDA_METRICS_PORT}",
                "target_label": "__address__",
            },
        ],
    }
