"""Clients of the serving stage: typed Triton clients (HTTP/gRPC, blocking and asyncio)."""
