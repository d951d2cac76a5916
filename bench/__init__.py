"""Benchmarks that print figures (not tests). Run all with `make bench`."""
