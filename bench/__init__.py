"""Benchmarks (not tests): `make bench` runs them all; each writes bench/results/<name>.json."""
