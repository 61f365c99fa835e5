"""kiosk-heartbeat-exporter: heartbeat service and Prometheus exporter for kiosk tablets."""

__version__ = "0.1.0"
