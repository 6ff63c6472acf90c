"""The DCS v2-compatible REST API."""
