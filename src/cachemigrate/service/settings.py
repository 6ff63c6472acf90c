"""Service configuration: read from ``CACHEMIGRATE_*`` environment variables, passed explicitly."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cachemigrate.errors import ConfigError


class Settings(BaseSettings):
    """Everything the service needs; ``create_app(settings)`` never reads the environment itself."""

    model_config = SettingsConfigDict(env_prefix="CACHEMIGRATE_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("var")
    # SQLAlchemy URL; empty means a SQLite file in data_dir. PostgreSQL: postgresql+psycopg://...
    database_url: str = ""
    # Fernet key (urlsafe base64, 32 bytes) encrypting SKs, Redis passwords and X-Auth-Tokens.
    secret_key: str | None = None
    # Without a secret key, dev mode keeps a generated key in data_dir/dev-secret.key.
    dev_mode: bool = False
    clock_skew_seconds: int = 15 * 60
    token_ttl_seconds: int = 24 * 3600
    # Bucket name -> file:///directory. Backup imports read bucket_name/file_name from there.
    buckets: dict[str, str] = Field(default_factory=dict)
    # Seconds a stop waits for a pipeline to wind down before cancelling it.
    stop_grace_seconds: float = 10.0
    status_interval_seconds: float = 1.0
    # Address the migrator connects from (shown as ecs_tenant_private_ip).
    migrator_ip: str = ""
    max_tasks_per_project: int = 1000

    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'cachemigrate.db').resolve()}"

    def bucket_directory(self, bucket: str) -> Path | None:
        """The local directory a ``file://`` bucket maps to, or None for an unknown bucket."""
        url = self.buckets.get(bucket)
        if url is None:
            return None
        if not url.startswith("file://"):
            raise ConfigError(f"bucket {bucket!r}: only file:// buckets are supported, got {url!r}")
        return Path(url.removeprefix("file://")).resolve()
