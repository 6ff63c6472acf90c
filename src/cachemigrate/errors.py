"""Every error cachemigrate raises on purpose, in one tree.

    CacheMigrateError                   root: catch this to catch everything of ours
    ├── ConfigError                     bad URL, option or setting given by the user (or operator)
    │   ├── InvalidParameterError       one field of a request is wrong (carries field, reason)
    │   ├── ProjectIdError              a request's project ID is malformed or contradicts itself
    │   └── PasswordRejectedError       an endpoint named in a request refused its password or
    │                                   ACL user (carries field)
    ├── NotFoundError                   no such task, instance, backup or job for the caller
    │                                   (carries kind, ident; another project's things too)
    ├── StateError                      not allowed in the current state (carries kind, state,
    │                                   operation)
    ├── QuotaError                      a per-project quota is used up (carries what, limit)
    ├── CredentialsError                a request's signature or token is missing, wrong,
    │                                   expired or revoked
    ├── ScopeError                      valid credentials used on another project
    ├── ForbiddenError                  valid credentials that may not do this (a token asking
    │                                   for a token)
    ├── FormatError                     a file or byte stream we cannot read
    │   ├── RdbFormatError              RDB: carries source name, offset, key and type byte
    │   │   └── UnsupportedRdbError     well-formed but outside what we read (module without id,
    │   │                               vendor opcode, version too new)
    │   ├── DumpPayloadError            DUMP payload: bad footer, CRC or version
    │   └── AofFormatError              AOF / manifest: carries source name and offset
    ├── ProtocolError                   the peer broke RESP or the replication protocol
    ├── ConnectionLostError             a socket closed or timed out under us
    │   └── AddressNotAllowedError      a connection the network policy refused before any
    │                                   packet was sent (worded as any unreachable endpoint)
    ├── ServerError                     an error reply from a Redis server (server_errors maps
    │   │                               its prefix to one of these)
    │   ├── AuthError                   NOAUTH, WRONGPASS, NOPERM, invalid password
    │   ├── BusyKeyError                BUSYKEY (RESTORE without REPLACE onto an existing key)
    │   ├── LoadingError                LOADING (server still loading its dataset)
    │   ├── ReadOnlyError               READONLY (wrote to a replica)
    │   ├── MovedError / AskError       cluster redirections (carry slot, host, port)
    │   ├── TryAgainError / ClusterDownError
    │   └── PayloadRejectedError        "DUMP payload version or checksum are wrong", "Bad data format"
    ├── IncompatibleTargetError         the target cannot hold what the source has (db count,
    │                                   version), detected before anything is written
    ├── FrontError                      a front (client-facing address: engine/fronts/) cannot be
    │                                   read or switched: its control socket is unreachable, or
    │                                   it refused a command (carries the driver's own words)
    └── MigrationError                  a pipeline gave up; its message is what the user reads
        ├── ResumeError                 a checkpoint cannot be continued (manual resume mode)
        └── CutoverError                a cutover or rollback did not happen: it was aborted and
                                        everything put back (the message says why and what)

The service's errors are domain errors like the others: what went wrong and about what. Which
HTTP status and DCS code a client sees is decided at the HTTP edge (service/api/errors.py).
"""

from __future__ import annotations


class CacheMigrateError(Exception):
    """Root of every error cachemigrate raises on purpose."""


class ConfigError(CacheMigrateError):
    """A URL, option or setting given by the user is wrong."""


class InvalidParameterError(ConfigError):
    """One field of a request is wrong. ``field`` is dotted (``source_instance.addrs``)."""

    def __init__(self, field: str, reason: str = "") -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"invalid {field}: {reason}" if reason else f"invalid {field}")


class ProjectIdError(ConfigError):
    """A request's project ID is malformed, or its header and path disagree."""


class PasswordRejectedError(ConfigError):
    """An endpoint named in a request (``field``) refused its password or ACL user."""

    def __init__(self, field: str, message: str | None = None) -> None:
        self.field = field
        super().__init__(message or f"Password verification of {field} failed.")


class NotFoundError(CacheMigrateError):
    """No ``kind`` ("task", "instance", "backup", "job") ``ident`` for the caller.

    Another project's things are not found either: whether they exist is not the caller's to know.
    """

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"no {kind} {ident!r}")


class StateError(CacheMigrateError):
    """``operation`` is not allowed while the ``kind`` of thing is in ``state``."""

    def __init__(self, message: str, *, kind: str, state: str, operation: str) -> None:
        self.kind = kind
        self.state = state
        self.operation = operation
        super().__init__(message)


class QuotaError(CacheMigrateError):
    """A project has as many ``what`` as it may (``limit``)."""

    def __init__(self, message: str, *, what: str, limit: int) -> None:
        self.what = what
        self.limit = limit
        super().__init__(message)


class CredentialsError(CacheMigrateError):
    """A request's signature or token is missing, malformed, wrong, expired or revoked.

    The message says which, in the gateway's words; it never holds a secret.
    """


class ScopeError(CacheMigrateError):
    """Valid credentials used on another project's path."""


class ForbiddenError(CacheMigrateError):
    """Valid credentials that may not do this operation (an X-Auth-Token asking for a token)."""


class FormatError(CacheMigrateError):
    """A file or byte stream we cannot read."""


class RdbFormatError(FormatError):
    """An RDB stream that is not well formed. The message names where."""

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        source: str | None = None,
        key: bytes | None = None,
        type_byte: int | None = None,
    ) -> None:
        self.reason = message
        self.offset = offset
        self.source = source
        self.key = key
        self.type_byte = type_byte
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.source:
            where.append(self.source)
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        if self.key is not None:
            where.append(f"key {self.key[:64]!r}")
        if self.type_byte is not None:
            where.append(f"type {self.type_byte}")
        return f"{self.reason} ({', '.join(where)})" if where else self.reason

    def located(self, *, source: str | None = None, base_offset: int = 0) -> RdbFormatError:
        """Return a copy that names the file and shifts the offset by where a sub-stream began."""
        err = type(self)(
            self.reason,
            offset=None if self.offset is None else self.offset + base_offset,
            source=source or self.source,
            key=self.key,
            type_byte=self.type_byte,
        )
        return err


class UnsupportedRdbError(RdbFormatError):
    """Well-formed input we deliberately do not read (vendor opcodes, pre-GA module values...)."""


class DumpPayloadError(FormatError):
    """A DUMP payload whose footer, CRC or version is wrong."""


class AofFormatError(FormatError):
    """An AOF or multi-part manifest that is not well formed."""

    def __init__(self, message: str, *, offset: int | None = None, source: str | None = None) -> None:
        self.reason = message
        self.offset = offset
        self.source = source
        where = ", ".join(x for x in (source, None if offset is None else f"offset {offset}") if x)
        super().__init__(f"{message} ({where})" if where else message)


class ProtocolError(CacheMigrateError):
    """The peer broke RESP or the replication protocol."""


class ConnectionLostError(CacheMigrateError):
    """A connection closed or timed out while we needed it."""


class AddressNotAllowedError(ConnectionLostError):
    """The endpoint's network policy does not allow an address its host resolved to.

    A ConnectionLostError worded like one: to the caller, an address outside the allowed
    networks is an endpoint that cannot be reached, nothing more (protocol/netpolicy.py).
    """


class ServerError(CacheMigrateError):
    """An error reply from a Redis server."""

    def __init__(self, message: str, *, command: bytes | None = None, key: bytes | None = None) -> None:
        self.reply = message
        self.command = command
        self.key = key
        super().__init__(message)


class AuthError(ServerError):
    """Authentication refused (NOAUTH, WRONGPASS, NOPERM...)."""


class BusyKeyError(ServerError):
    """RESTORE without REPLACE onto an existing key."""


class LoadingError(ServerError):
    """The server is still loading its dataset."""


class ReadOnlyError(ServerError):
    """A write was sent to a read-only replica."""


class _RedirectError(ServerError):
    def __init__(self, message: str, *, command: bytes | None = None, key: bytes | None = None) -> None:
        super().__init__(message, command=command, key=key)
        parts = message.split()
        # "MOVED 3999 127.0.0.1:6381"
        self.slot = int(parts[1]) if len(parts) > 2 and _ascii_digits(parts[1]) else -1
        hostport = parts[2] if len(parts) > 2 else ""
        host, _, port = hostport.rpartition(":")
        self.host = host
        self.port = int(port) if _ascii_digits(port) else 0


class MovedError(_RedirectError):
    """MOVED slot host:port."""


class AskError(_RedirectError):
    """ASK slot host:port."""


class TryAgainError(ServerError):
    """TRYAGAIN during a cluster resharding."""


class ClusterDownError(ServerError):
    """CLUSTERDOWN."""


class PayloadRejectedError(ServerError):
    """The target refused a DUMP payload (version, checksum or encoding)."""


class IncompatibleTargetError(CacheMigrateError):
    """The target cannot hold what the source has; found before anything was written."""


class FrontError(CacheMigrateError):
    """A front cannot be read or switched; the message names the front and quotes its driver."""


class MigrationError(CacheMigrateError):
    """A pipeline gave up; the message is what the user reads."""


class ResumeError(MigrationError):
    """A checkpoint cannot be continued."""


class CutoverError(MigrationError):
    """A cutover (or rollback) was refused before it began, or aborted and undone."""


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


_PREFIXES: dict[str, type[ServerError]] = {
    "NOAUTH": AuthError,
    "WRONGPASS": AuthError,
    "NOPERM": AuthError,
    "BUSYKEY": BusyKeyError,
    "LOADING": LoadingError,
    "READONLY": ReadOnlyError,
    "MOVED": MovedError,
    "ASK": AskError,
    "TRYAGAIN": TryAgainError,
    "CLUSTERDOWN": ClusterDownError,
}

_PAYLOAD_MARKERS = ("DUMP payload version or checksum are wrong", "Bad data format")


def server_error(message: str, *, command: bytes | None = None, key: bytes | None = None) -> ServerError:
    """Map an error reply's text (without the leading '-') to its exception class."""
    prefix = message.split(" ", 1)[0]
    cls = _PREFIXES.get(prefix)
    if cls is None:
        if any(m in message for m in _PAYLOAD_MARKERS):
            cls = PayloadRejectedError
        elif "invalid password" in message or "invalid username-password" in message:
            cls = AuthError
        else:
            cls = ServerError
    return cls(message, command=command, key=key)
