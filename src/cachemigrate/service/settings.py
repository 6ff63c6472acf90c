"""Service configuration: one frozen value, built at the edge and passed down.

Nothing here reads the environment: ``cachemigrate serve`` and the admin commands build Settings
from ``CACHEMIGRATE_*`` variables and their options (cli/service_cmds.py); tests build it directly.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from cachemigrate.engine.spec import NetworkPolicy, S3Settings
from cachemigrate.errors import ConfigError

# Where the service may connect unless the operator says otherwise: its own host only. The
# default `serve` listens on 127.0.0.1, so its callers are users of this host, who can reach
# its loopback servers anyway: the service gives them nothing they do not have. Nothing beyond
# the host is reachable until the operator names the networks tenants' caches live in; and a
# service that listens on other addresses should name them instead of loopback (create_app
# warns when it does not), or tenants could copy this host's own passwordless servers.
DEFAULT_ALLOWED_NETWORKS = ("127.0.0.0/8", "::1/128")
ALL_PROJECTS = "*"


class BucketConfig(BaseModel):
    """A bucket given as an object: its URL, the projects it serves, how to reach an S3 store.

    ``projects``: the project IDs whose imports may read the bucket; ``["*"]`` is every project.
    Unbound (empty, and every plain-string entry) serves no project: a bucket is a tenant's data,
    and one forgotten setting must not hand it to every tenant of the service. Such a bucket can
    still be the ``backup_store``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str  # file:///directory or s3://bucket[/prefix]
    projects: tuple[str, ...] = ()
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
        """The s3:// URL of ``file_name`` (s3 buckets only; ``url_of("")`` is the bucket's root)."""
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
    # {"url": "s3://...", "projects": ["<project id>", ...] or ["*"], "endpoint_url", "region",
    # "access_key_id", "secret_access_key", "path_style"} whose fields override the s3_* defaults.
    # Imports read bucket_name/file_name, and only from a bucket bound to the task's project (a
    # plain string is bound to no project; see BucketConfig).
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
    # Retention: an instance keeps its N newest succeeded backups; older ones are deleted when a
    # new one succeeds (0 keeps all). Failed backups stay until deleted (service/backups.py).
    backup_retention_count: int = Field(default=0, ge=0)
    # Seconds a stop waits for a pipeline to wind down before cancelling it.
    stop_grace_seconds: float = 10.0
    status_interval_seconds: float = 1.0
    # Address the migrator connects from (shown as ecs_tenant_private_ip).
    migrator_ip: str = ""
    # Per-project quotas (400 DCS.4039 when used up): live tasks, registered instances, backup
    # records of any status (deleting a backup frees its place).
    max_tasks_per_project: int = Field(default=1000, ge=0)
    max_instances_per_project: int = Field(default=1000, ge=0)
    max_backups_per_project: int = Field(default=1000, ge=0)
    # Largest request body accepted (bytes); a larger one is answered 413 before it is read.
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    # True: the pure-Python RDB path instead of the C walker (same bytes, slower; for diagnosis).
    pure_python: bool = False
    # The networks (CIDR) the service may connect to for any caller: instance checks, task
    # configuration, runs, resumes and backups (protocol/netpolicy.py). A host name is resolved
    # once and every address it resolves to must be inside one of them. Default: loopback only
    # (DEFAULT_ALLOWED_NETWORKS says why). Variable: a JSON list or "10.0.0.0/8,fd00::/8".
    allowed_networks: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_NETWORKS))
    # Project ID -> its own, narrower networks (each inside allowed_networks); other projects
    # get allowed_networks. Variable: JSON, {"<project_id>": ["10.1.0.0/16"]}.
    project_networks: dict[str, list[str]] = Field(default_factory=dict)
    # exchange-ip / rollback-ip (service/switching.py). Directories where an instance's front may
    # have its Runtime API unix socket (none: only host:port Runtime APIs, inside the networks).
    front_socket_dirs: list[Path] = Field(default_factory=list)
    # The verification before the writes are paused: sampled (exchange_verify_sample keys), full
    # (every key), off. Mismatches that remain: EXCHANGE_FAILED, nothing paused.
    exchange_verify: Literal["sampled", "full", "off"] = "sampled"
    exchange_verify_sample: int = Field(default=1000, ge=1)
    # How long the writes may stay paused before the switch aborts (and undoes itself).
    exchange_max_pause_seconds: float = Field(default=2.0, gt=0, le=60)
    # How long the migration may take to catch up with its source before the pause is given up.
    exchange_catch_up_seconds: float = Field(default=300.0, gt=0)
    # Where tasks run (service/distributed.py, docs/ARCHITECTURE.md): "embedded", in this `serve`
    # process; "distributed", on `cachemigrate worker` processes that claim them from the database
    # (PostgreSQL) under a lease, told by Celery messages over broker_url (RabbitMQ).
    execution_mode: Literal["embedded", "distributed"] = "embedded"
    # amqp://user:password@host:5672/vhost (out of repr(): it may carry a password).
    broker_url: str = Field(default="", repr=False)
    # The Celery queue the workers consume and the serves publish to.
    broker_queue: str = Field(default="cachemigrate", min_length=1, max_length=200)
    # A worker owns a task for lease_seconds after each renewal (the database's clock); it renews
    # every heartbeat_seconds, and stops applying once it could not renew for lease_seconds minus
    # lease_margin_seconds (so before another worker can claim the task).
    lease_seconds: float = Field(default=15.0, gt=0)
    heartbeat_seconds: float = Field(default=3.0, gt=0)
    # This worker's name in the database (run_by, `cachemigrate workers`); empty: host:pid.
    worker_id: str = Field(default="", max_length=128)
    # Units (tasks) one worker runs at the same time.
    worker_slots: int = Field(default=4, ge=1, le=1000)

    @field_validator("allowed_networks", "front_socket_dirs", mode="before")
    @classmethod
    def _cidr_list(cls, value: Any) -> Any:
        """A JSON list or a comma-separated list, as the environment variable gives it."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("allowed_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        try:
            NetworkPolicy.of(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("project_networks")
    @classmethod
    def _within_service(cls, value: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        allowed = info.data.get("allowed_networks")
        if allowed is None:  # itself invalid: that is the error reported
            return value
        service = NetworkPolicy.of(allowed)
        for project, cidrs in value.items():
            try:
                narrower = NetworkPolicy.of(cidrs)
            except ConfigError as exc:
                raise ValueError(f"project {project!r}: {exc}") from None
            if not service.covers(narrower):
                raise ValueError(
                    f"project {project!r}: {', '.join(cidrs)} is not within allowed_networks "
                    f"({service.describe()})"
                )
        return value

    def loopback_exposed(self) -> bool:
        """Whether callers from other hosts (``host`` is not a loopback address) may make the
        service connect to this host's own loopback servers (allowed_networks includes them)."""
        try:
            local = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            local = self.host == "localhost"
        policy = NetworkPolicy.of(self.allowed_networks)
        return not local and (policy.allows("127.0.0.1") or policy.allows("::1"))

    def network_policy(self, project_id: str) -> NetworkPolicy:
        """Where connections made for ``project_id`` may go: its own networks, else the service's."""
        cidrs = self.project_networks.get(project_id)
        return NetworkPolicy.of(self.allowed_networks if cidrs is None else cidrs)

    def secret_keys(self) -> list[str]:
        """The keys of ``secret_key``, newest first."""
        return [key.strip() for key in (self.secret_key or "").split(",") if key.strip()]

    def lease_margin_seconds(self) -> float:
        """How long before its lease expires a worker that could not renew it stops applying: a
        heartbeat and a second at least, a quarter of the lease at most being left unused."""
        return min(max(self.heartbeat_seconds + 1.0, self.lease_seconds / 4), self.lease_seconds / 2)

    def check_distributed(self) -> None:
        """ConfigError unless the distributed mode's settings hold together (a no-op when embedded)."""
        if self.execution_mode != "distributed":
            return
        if not self.database_url or self.sqlalchemy_url().startswith("sqlite"):
            raise ConfigError(
                "execution_mode distributed needs a shared PostgreSQL database: set "
                "CACHEMIGRATE_DATABASE_URL (postgresql+psycopg://...); SQLite is one process's"
            )
        if not self.broker_url:
            raise ConfigError(
                "execution_mode distributed needs a broker: set CACHEMIGRATE_BROKER_URL "
                "(amqp://user:password@host:5672//)"
            )
        if self.heartbeat_seconds * 2 >= self.lease_seconds:
            raise ConfigError(
                f"heartbeat_seconds ({self.heartbeat_seconds}) must be less than half of "
                f"lease_seconds ({self.lease_seconds}): a lease must survive a missed heartbeat"
            )

    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'cachemigrate.db').resolve()}"

    def bucket_location(self, bucket: str) -> BucketLocation | None:
        """Where ``bucket`` is, or None for an unknown bucket; ConfigError for a bad URL.

        The operator's view (every configured bucket); a project's imports use ``project_bucket``.
        """
        conf = self.buckets.get(bucket)
        if conf is None:
            return None
        return self._location(bucket, conf)

    def bucket_projects(self, bucket: str) -> tuple[str, ...]:
        """The projects ``bucket`` serves (``("*",)``: all); () for unbound and unknown buckets."""
        conf = self.buckets.get(bucket)
        return conf.projects if isinstance(conf, BucketConfig) else ()

    def project_bucket(self, project_id: str, bucket: str) -> BucketLocation | None:
        """Where ``bucket`` is for ``project_id``'s imports: None both when there is no such bucket
        and when it is not bound to the project, so a caller cannot tell the two apart."""
        projects = self.bucket_projects(bucket)
        if not project_id or (ALL_PROJECTS not in projects and project_id not in projects):
            return None
        return self.bucket_location(bucket)

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

    def check_buckets(self) -> list[str]:
        """At start-up: ConfigError for a bucket URL that does not parse, or a bucket bound to
        projects that overlaps the service's own files (the data directory: database, keys,
        default backups; the backup store: every project's backups). Returns the names of the
        buckets that serve no project (the caller warns about them)."""
        own = [("the data directory", BucketLocation("data_dir", directory=self.data_dir.resolve()))]
        store = self.backup_location()
        own.append(("the backup store", store))
        unbound = []
        for name, conf in self.buckets.items():
            loc = self._location(name, conf)
            if not self.bucket_projects(name):
                unbound.append(name)
                continue
            if self.backup_store == name:
                raise ConfigError(f"bucket {name!r} is the backup store, which holds every project's "
                                  "backups: it cannot be bound to projects")
            for what, other in own:
                if _overlap(loc, other):
                    raise ConfigError(
                        f"bucket {name!r} is bound to projects but overlaps {what}: a tenant would "
                        "read the service's own files; give it a directory or prefix of its own"
                    )
        return unbound

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


def _overlap(a: BucketLocation, b: BucketLocation) -> bool:
    """Whether one location holds (part of) the other."""
    if a.directory is not None and b.directory is not None:
        return a.directory.is_relative_to(b.directory) or b.directory.is_relative_to(a.directory)
    if a.directory is None and b.directory is None and a.s3_bucket == b.s3_bucket:
        return a.s3_prefix.startswith(b.s3_prefix) or b.s3_prefix.startswith(a.s3_prefix)
    return False
