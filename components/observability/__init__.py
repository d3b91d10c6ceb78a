"""The consumer's alert rules and dashboard, written once for any Prometheus and Grafana."""
