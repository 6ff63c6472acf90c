"""Where a Redis server is and how to log in: parsed once, passed around frozen.

Two spellings reach us: a URL (``redis://user:password@host:port/db``, ``rediss://`` for TLS: the
CLI) and a DCS ``addrs`` list (``host:port[,host:port...]``, IPv6 in brackets, with the password,
ACL user and TLS given beside it: the service). ``Endpoint.from_url`` and ``Endpoint.from_addrs``
read them, with the one ``split_host_port`` for the address part of both. Numbers are ASCII
digits only: ``str.isdigit()`` takes "²" and "٦٣٧٩", which ``int()`` then refuses or reads as 6379.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from cachemigrate.errors import ConfigError
from cachemigrate.protocol.netpolicy import NetworkPolicy

_SCHEMES = {"redis": False, "rediss": True}
_DIGITS = re.compile(r"[0-9]+")
# Characters no host name or IP literal holds: a URL's delimiters, white space, a list separator.
_NOT_IN_HOST = re.compile(r"[\s/@?#,\[\]\\]")


def decimal(text: str) -> int | None:
    """``text`` as a non-negative integer when it is ASCII decimal digits only (else None)."""
    return int(text) if _DIGITS.fullmatch(text) else None


def split_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[IPv6]:port`` -> (host, port); ConfigError when it is not that.

    The port is 1-65535 in ASCII digits; an IPv6 address must be in brackets (else its last
    group would read as the port).
    """
    item = text.strip()
    host, sep, port_text = item.rpartition(":")
    port = decimal(port_text)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise ConfigError(f"not host:port: {item!r} (brackets are for IPv6 addresses)")
    elif ":" in host:
        raise ConfigError(f"not host:port: {item!r} (write an IPv6 address in brackets: [::1]:6379)")
    if not sep or not host or _NOT_IN_HOST.search(host) or port is None or not 0 < port < 65536:
        raise ConfigError(f"not host:port: {item!r}")
    return host, port


def split_addrs(addrs: str) -> list[tuple[str, int]]:
    """A DCS ``addrs`` list, ``host:port[,host:port...]``, as (host, port) pairs (ConfigError)."""
    return [split_host_port(item) for item in addrs.split(",")]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A Redis server address with credentials. The password never appears in repr() or str()."""

    host: str = "127.0.0.1"
    port: int = 6379
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int | None = None
    tls: bool = False
    tls_insecure: bool = False
    connect_timeout: float = 10.0
    # TLS files (PEM): CAs to verify the server with instead of the system's; a client
    # certificate and its key for servers that authenticate clients (tls-auth-clients yes).
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # Where a connection may go (protocol/netpolicy.py): the service sets it on every endpoint a
    # caller names; None (the CLI) allows every address. Derived endpoints (a cluster's nodes,
    # MOVED targets: dataclasses.replace) keep it.
    network: NetworkPolicy | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        """Parse ``redis://[user:password@]host:port[/db]`` (``rediss://`` for TLS; query
        ``?insecure=1``, ``ssl_ca_certs=``, ``ssl_certfile=``, ``ssl_keyfile=`` as redis-py)."""
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise ConfigError(f"not a Redis URL: {exc}") from None
        if parts.scheme not in _SCHEMES:
            raise ConfigError(f"a Redis URL must start with redis:// or rediss://, got {_safe(url)!r}")
        hostport = parts.netloc.rpartition("@")[2]
        if not parts.hostname:
            raise ConfigError(f"no host in {_safe(url)!r}")
        if hostport.endswith("]") or ":" not in hostport:
            hostport += ":6379"
        try:
            host, port = split_host_port(hostport)
        except ConfigError:
            raise ConfigError(f"bad host or port in {_safe(url)!r}") from None
        db: int | None = None
        path = parts.path.strip("/")
        if path:
            db = decimal(path)
            if db is None:
                raise ConfigError(f"the path of a Redis URL is a db number, got {path!r}")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if password is None and username is not None:
            # redis://:secret@host and redis://secret@host are both seen in the wild.
            password, username = username, None
        insecure = "insecure" in parts.query or "ssl_cert_reqs=none" in parts.query
        query = parse_qs(parts.query)
        files = {k: query[k][-1] for k in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile") if query.get(k)}
        return cls(
            host=host.lower(),
            port=port,
            username=username or None,
            password=password,
            db=db,
            tls=_SCHEMES[parts.scheme],
            tls_insecure=insecure,
            tls_ca_file=files.get("ssl_ca_certs"),
            tls_cert_file=files.get("ssl_certfile"),
            tls_key_file=files.get("ssl_keyfile"),
        )

    @classmethod
    def from_addrs(
        cls,
        addrs: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        tls_insecure: bool = False,
        network: NetworkPolicy | None = None,
    ) -> Endpoint:
        """The first node of a DCS ``addrs`` list (every entry is checked; ConfigError).

        The first node is where the engine connects: a cluster's other nodes are found from it.
        ``network`` limits where connections to it may go.
        """
        host, port = split_addrs(addrs)[0]
        return cls(
            host=host,
            port=port,
            username=username or None,
            password=password or None,
            tls=tls,
            tls_insecure=tls and tls_insecure,
            network=network,
        )

    def with_db(self, db: int | None) -> Endpoint:
        return dataclasses.replace(self, db=db)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.display_url()

    def display_url(self) -> str:
        """The URL with the password masked: safe for logs and progress lines."""
        scheme = "rediss" if self.tls else "redis"
        cred = ""
        if self.username or self.password:
            cred = f"{self.username or ''}{':***' if self.password else ''}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        db = f"/{self.db}" if self.db is not None else ""
        return f"{scheme}://{cred}{host}:{self.port}{db}"


def _safe(url: str) -> str:
    """Mask a password in a URL we failed to parse, so it never reaches an error message."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    cred, _, hostpart = rest.rpartition("@")
    user = cred.split(":", 1)[0] if ":" in cred else ""
    return f"{scheme}://{user}:***@{hostpart}"
