"""One module per group of endpoints under ``/api/v1`` (health, ready and metrics at the root)."""
