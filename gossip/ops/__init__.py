"""What a run exposes live: Prometheus metrics, alert and recording rules, scrape configs and Grafana dashboards."""
