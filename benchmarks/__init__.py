"""Benchmarks: scripts that print and save figures (JSON + PNG under benchmarks/results/)."""
