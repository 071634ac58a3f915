"""One module per group of endpoints under ``/api/v1`` (health, ready and metrics at the root)."""

API_PREFIX = "/api/v1"  # every versioned route; /health, /ready and /metrics stay at the root
