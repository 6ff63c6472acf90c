"""cachemigrate: migrate data into Redis-compatible caches from backups or live sources."""

from cachemigrate.errors import CacheMigrateError

__version__ = "0.1.0"

__all__ = ["CacheMigrateError", "__version__"]
