"""Service configuration: one frozen value, built at the edge and passed down.

Nothing here reads the environment: ``cachemigrate serve`` and the admin commands build Settings
from ``CACHEMIGRATE_*`` variables and their options (cli/service_cmds.py); tests build it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from cachemigrate.engine.spec import S3Settings
from cachemigrate.errors import ConfigError


class BucketConfig(BaseModel):
    """A bucket given as an object: its URL plus how to reach an S3-compatible store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str  # file:///directory or s3://bucket[/prefix]
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = Field(default=None, repr=False)
    session_token: str | None = Field(default=None, repr=False)
    path_style: bool | None = None


@dataclass(frozen=True, slots=True)
class BucketLocation:
    """Where a bucket's files are: a local directory, or an S3 bucket and key prefix."""

    name: str
    directory: Path | None = None
    s3_bucket: str = ""
    s3_prefix: str = ""  # "" or ending in "/"
    s3: S3Settings | None = None

    def url_of(self, file_name: str) -> str:
        """The engine path of ``file_name`` (s3 buckets only; file buckets use ``resolve``)."""
        return f"s3://{self.s3_bucket}/{self.s3_prefix}{file_name}"


class Settings(BaseModel):
    """Everything the service needs; ``create_app(settings)`` never reads the environment itself.

    Each field is also the variable ``CACHEMIGRATE_<FIELD>`` (JSON for ``buckets``) for the CLI.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = 8080
    # TLS on the API port (uvicorn's options): a PEM certificate chain and its key (the key may
    # also be in the certificate file); unset: plain HTTP.
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_keyfile_password: str | None = Field(default=None, repr=False)
    # The operator's Prometheus /metrics (every project's task ids): a listener of its own, off
    # unless metrics_port is set; never on the tenant-facing port.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    data_dir: Path = Path("var")
    # SQLAlchemy URL; empty means a SQLite file in data_dir. PostgreSQL: postgresql+psycopg://...
    # (out of repr(): the URL may carry the database password).
    database_url: str = Field(default="", repr=False)
    # Fernet keys (urlsafe base64, 32 bytes) encrypting SKs, Redis passwords and X-Auth-Tokens:
    # one, or several comma-separated, newest first (the newest encrypts, any of them decrypts).
    secret_key: str | None = Field(default=None, repr=False)
    # Without a secret key, dev mode keeps a generated key in data_dir/dev-secret.key.
    dev_mode: bool = False
    clock_skew_seconds: int = 15 * 60
    token_ttl_seconds: int = 24 * 3600
    # Bucket name -> "file:///directory", "s3://bucket[/prefix]" (S3 settings below), or an object
    # {"url": "s3://...", "endpoint_url", "region", "access_key_id", "secret_access_key",
    # "path_style"} whose fields override the s3_* defaults. Imports read bucket_name/file_name.
    buckets: dict[str, str | BucketConfig] = Field(default_factory=dict)
    # Defaults for s3:// buckets (unset: boto3's own lookup: AWS_* variables, profiles...).
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = Field(default=None, repr=False)
    s3_path_style: bool = False
    # Where instance backups go: empty = file://<data_dir>/backups; a name from `buckets`; or a
    # file:// or s3:// URL.
    backup_store: str = ""
    # Seconds a stop waits for a pipeline to wind down before cancelling it.
    stop_grace_seconds: float = 10.0
    status_interval_seconds: float = 1.0
    # Address the migrator connects from (shown as ecs_tenant_private_ip).
    migrator_ip: str = ""
    max_tasks_per_project: int = 1000
    # True: the pure-Python RDB path instead of the C walker (same bytes, slower; for diagnosis).
    pure_python: bool = False

    def secret_keys(self) -> list[str]:
        """The keys of ``secret_key``, newest first."""
        return [key.strip() for key in (self.secret_key or "").split(",") if key.strip()]

    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'cachemigrate.db').resolve()}"

    def bucket_location(self, bucket: str) -> BucketLocation | None:
        """Where ``bucket`` is, or None for an unknown bucket; ConfigError for a bad URL."""
        conf = self.buckets.get(bucket)
        if conf is None:
            return None
        return self._location(bucket, conf)

    def _location(self, name: str, conf: str | BucketConfig) -> BucketLocation:
        url = conf if isinstance(conf, str) else conf.url
        if url.startswith("file://"):
            return BucketLocation(name, directory=Path(url.removeprefix("file://")).resolve())
        if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
            raise ConfigError(f"bucket {name!r}: expected file:///directory or s3://bucket, got {url!r}")
        s3_bucket, _, prefix = url[5:].partition("/")
        prefix = prefix.strip("/")
        extra = BucketConfig(url=url) if isinstance(conf, str) else conf
        s3 = S3Settings(
            endpoint_url=extra.endpoint_url or self.s3_endpoint_url,
            region=extra.region or self.s3_region,
            access_key_id=extra.access_key_id or self.s3_access_key_id,
            secret_access_key=extra.secret_access_key or self.s3_secret_access_key,
            session_token=extra.session_token,
            path_style=self.s3_path_style if extra.path_style is None else extra.path_style,
        )
        return BucketLocation(name, s3_bucket=s3_bucket, s3_prefix=f"{prefix}/" if prefix else "", s3=s3)

    def bucket_directory(self, bucket: str) -> Path | None:
        """The local directory a ``file://`` bucket maps to, or None for an unknown bucket."""
        loc = self.bucket_location(bucket)
        if loc is None:
            return None
        if loc.directory is None:
            raise ConfigError(f"bucket {bucket!r} is an s3:// bucket, not a file:// directory")
        return loc.directory

    def default_s3(self) -> S3Settings:
        """The s3_* defaults (for an s3:// location no configured bucket describes)."""
        return self._location("s3", "s3://default").s3 or S3Settings()

    def backup_location(self) -> BucketLocation:
        """The backup store (see ``backup_store``)."""
        store = self.backup_store
        if not store:
            return BucketLocation("backups", directory=(self.data_dir / "backups").resolve())
        if store in self.buckets:
            return self._location(store, self.buckets[store])
        return self._location("backup_store", store)
