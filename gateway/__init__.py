"""pm-gateway: one stable REST API for BPMN process management over pluggable engines."""

__version__ = "0.1.0"
