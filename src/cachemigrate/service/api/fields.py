"""What every wire model is built from: the bounded field types, the check that a text can be
stored, and the ``In`` / ``Out`` bases. Inputs ignore unknown keys (the SDK echoes output-only
fields back); outputs never carry a password (spec §9.8).

Every input string and list is bounded (``maxLength`` / ``maxItems`` in /openapi.json); an input
over a bound is 400 DCS.4063 naming the field (api/errors.py). The bounds follow the spec where it
has one (names §2.2, descriptions ≤1024, at most 50 IDs per batch call) and are generous
elsewhere: they exist so that no field can carry more than a request plausibly needs.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from cachemigrate.service import states as st


def _number_as_text(value: object) -> object:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


# The docs send numbers where the SDK types strings: accept both, keep strings.
LooseStr = Annotated[str, BeforeValidator(_number_as_text)]
# Spec §2.2: the DCS instance-name rule.
Name = Annotated[
    str,
    Field(
        min_length=4,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="4 to 64 characters from letters, digits, _ and -",
    ),
]
Description = Annotated[str, Field(max_length=1024)]
# Task, instance and backup IDs: UUIDs here, 32 hex digits in the docs.
Id = Annotated[str, Field(max_length=64)]
# An enumerated value: checked where it is used (tasks.py, with the DCS error the spec names); the
# values are in the OpenAPI document too, so a generated client or a fuzzer sends what is accepted.
Word = Annotated[str, Field(max_length=32)]
MigrationType = Annotated[str, Field(max_length=32, json_schema_extra={"enum": [st.ONLINE, st.IMPORT]})]
MigrationMethod = Annotated[str, Field(max_length=32, json_schema_extra={"enum": [st.FULL, st.INCREMENTAL]})]
ResumeMode = Annotated[str, Field(max_length=32, json_schema_extra={"enum": list(st.RESUME_MODES)})]
FileSource = Annotated[
    str, Field(max_length=32, json_schema_extra={"enum": ["self_build_obs", "backup_record"]})
]
NetworkType = Annotated[str, Field(max_length=32, json_schema_extra={"enum": ["vpc", "vpn"]})]
# host:port[,host:port...]: a cluster's nodes fit. The pattern documents the shape (the port's
# range, 1-65535, is checked by protocol.endpoint.split_host_port).
HOST_PORT = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}"
Addrs = Annotated[
    str, Field(max_length=1024, json_schema_extra={"pattern": f"^{HOST_PORT}(,{HOST_PORT})*$"})
]
# Write-only (spec §9.8): never answered, and kept out of repr() (a logged model shows no password).
# DCS's own rule is 8-64 characters; a self-hosted Redis may use a longer one.
Password = Annotated[
    str | None, Field(max_length=512, repr=False, description="Write-only: never returned, never logged")
]
# A decimal number sent as a string or a JSON number: ASCII digits only (str.isdigit() also takes
# "²" and "٦٣٧٩"); "" means absent. The pattern sits inside the number conversion so that the
# OpenAPI document shows it (outside, pydantic checks it in a step the document leaves out).
Digits = Annotated[str, Field(max_length=5, pattern=r"^[0-9]{0,5}$"), BeforeValidator(_number_as_text)]
# Our extensions of an endpoint (named as in the DCS instance models; service/endpoints.py).
EnableSsl = Annotated[
    bool | None, Field(description="Extension: connect with TLS (what rediss:// says in a URL)")
]
SslVerify = Annotated[
    bool | None, Field(description="Extension, with enable_ssl: false skips verifying the server certificate")
]
AccessUser = Annotated[
    str | None,
    Field(max_length=256, description="Extension: the ACL user to log in as (default user if absent)"),
]


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be kept as sent (None when it can): PostgreSQL refuses NUL in text, and
    a lone surrogate (JSON lets "\\ud800" through) has no UTF-8 form for any database."""
    if "\x00" in text:
        return "NUL characters are not allowed"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode (a lone surrogate)"
    return None


def storable(value: object) -> object:
    for text in value if isinstance(value, list) else [value]:
        why = unstorable(text) if isinstance(text, str) else None
        if why:
            raise ValueError(why)
    return value


class In(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Every string of every input (lists of strings too: pydantic lets their surrogates through),
    # whichever database is behind: the same 400 on SQLite and PostgreSQL, never a 500.
    _strings_storable = field_validator("*")(storable)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")
