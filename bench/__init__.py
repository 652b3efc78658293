"""Benchmarks: programs that measure and print; never tests, never assertions on timings."""
