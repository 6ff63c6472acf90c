"""Benchmarks: cachemigrate side by side with Redis's own ingest, load and replica sync."""
