"""Task log lines: level vocabulary and stable log codes (spec §6.7, §9.10)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cachemigrate.engine.status import LogLevel
from cachemigrate.errors import (
    AuthError,
    CacheMigrateError,
    ConfigError,
    ConnectionLostError,
    FormatError,
    IncompatibleTargetError,
    ProtocolError,
    ResumeError,
    ServerError,
)

LEVELS = ("INFO", "WARN", "ERROR", "DEBUG")
_ENGINE_LEVELS = {LogLevel.INFO: "INFO", LogLevel.WARNING: "WARN", LogLevel.ERROR: "ERROR"}
_ADDR = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}:\d{1,5}\b|\[[0-9a-fA-F:]+\]:\d{1,5}")
_ERROR_KINDS: list[tuple[type[CacheMigrateError], str]] = [
    (AuthError, "auth"),
    (ConnectionLostError, "connection"),
    (ResumeError, "resume"),
    (FormatError, "format"),
    (ProtocolError, "protocol"),
    (IncompatibleTargetError, "incompatible"),
    (ServerError, "server"),
    (ConfigError, "config"),
]


@dataclass(frozen=True, slots=True)
class LogLine:
    level: str
    code: str
    message: str
    keyword: list[str]

    @classmethod
    def from_engine(cls, level: LogLevel, message: str) -> LogLine:
        lvl = _ENGINE_LEVELS.get(level, "INFO")
        code = "migration.event" if lvl == "INFO" else f"migration.{lvl.lower()}"
        return cls(lvl, code, message[:4000], _ADDR.findall(message)[:5])

    def row(self) -> tuple[str, str, str, list[str]]:
        return (self.level, self.code, self.message, self.keyword)


def error_code_of(exc: CacheMigrateError) -> str:
    for cls, kind in _ERROR_KINDS:
        if isinstance(exc, cls):
            return f"migration.error.{kind}"
    return "migration.error.migration"
