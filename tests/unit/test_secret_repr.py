"""No secret in repr() or str() of any value type of the package (issue 10: the service is a trust
boundary, and a logged object must not carry a password, an SK or a token out of it).

Every module under cachemigrate is imported; every dataclass, pydantic model and SQLAlchemy table
class defined there is inspected: a field whose name says it holds a secret (``SECRET_NAME``) or
that carries one under another name (``CARRIERS``) must be declared ``repr=False``, and an instance
whose secret fields hold a sentinel must show the sentinel in neither repr() nor str().
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

import cachemigrate
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.service.db.models import Base

# A field name that holds a secret: the last word(s) of the name, after a "_" or the start;
# "_enc" is the encrypted-at-rest form (service/db/models.py), still nothing to print.
SECRET_NAME = re.compile(
    r"(?:^|_)(?:password|passwd|pwd|secret|secret_key|secret_access_key|session_token|token|"
    r"auth_token|sk|api_key|private_key|authorization)(?:_enc)?$"
)
# Names the pattern must leave alone: they name secrets' neighbours, not secrets.
NOT_SECRET = [
    "token_ttl_seconds",  # Settings: how long an X-Auth-Token lives
    "no_password_access",  # InstanceListInfo: "true"/"false"
    "access_key",  # the AK: an identifier, shown by `credentials list`
    "access_key_id",  # S3's AK
    "ssl_keyfile",  # a path to a PEM file, not the key
    "tls_key_file",
    "key_meta",  # RDB key metadata
    "tokens",
]
# Names the pattern must catch (each is, or was, a field somewhere in src/).
MUST_MATCH = [
    "password",
    "password_enc",
    "source_password_enc",
    "secret_key",
    "secret_key_enc",
    "secret_access_key",
    "s3_secret_access_key",
    "session_token",
    "ssl_keyfile_password",
    "key_password",
    "token",
    "sk",
    "passwd",
]
# Fields that carry a secret under a name that does not say so.
CARRIERS = {
    ("Settings", "database_url"),  # postgresql+psycopg://user:PASSWORD@host/db
    ("SignedRequest", "headers"),  # Authorization, X-Auth-Token
    ("SignedRequest", "body"),  # request bodies with Redis passwords
}
# Modules that cannot be imported on their own (with why); any other import failure fails.
NOT_IMPORTABLE = {"cachemigrate.service.db.migrations.env": "Alembic's env.py runs only under alembic"}
SENTINEL = "S3NT1NEL-secret-value"


def _modules() -> Iterator[Any]:
    for info in pkgutil.walk_packages(cachemigrate.__path__, "cachemigrate."):
        if info.name not in NOT_IMPORTABLE:
            yield importlib.import_module(info.name)


def _classes() -> list[type]:
    found: dict[str, type] = {}
    for module in _modules():
        for obj in vars(module).values():
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[name] for name in sorted(found)]


CLASSES = _classes()


def _secret(cls: type, name: str) -> bool:
    return bool(SECRET_NAME.search(name)) or any((klass.__name__, name) in CARRIERS for klass in cls.__mro__)


def _fields(cls: type) -> dict[str, bool]:
    """Field name -> shown in repr, for the kinds of class the package defines values with."""
    if dataclasses.is_dataclass(cls):
        return {f.name: f.repr for f in dataclasses.fields(cls)}
    if issubclass(cls, BaseModel):
        return {name: f.repr for name, f in cls.model_fields.items()}
    if issubclass(cls, Base) and hasattr(cls, "__table__"):
        # SQLAlchemy's repr is object.__repr__ unless a model defines its own (checked below).
        return {c.key: cls.__repr__ is not object.__repr__ for c in cls.__table__.columns}
    return {}


def _instance(cls: type, secrets: list[str]) -> Any:
    """An instance whose secret fields hold SENTINEL and the others their defaults (no checks run)."""
    if dataclasses.is_dataclass(cls):
        obj = cls.__new__(cls)
        for f in dataclasses.fields(cls):
            if f.name in secrets:
                value: Any = SENTINEL
            elif f.default is not dataclasses.MISSING:
                value = f.default
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                value = None
            object.__setattr__(obj, f.name, value)
        return obj
    if issubclass(cls, BaseModel):
        return cls.model_construct(**dict.fromkeys(secrets, SENTINEL))
    return cls(**dict.fromkeys(secrets, SENTINEL))


SECRET_CLASSES = [cls for cls in CLASSES if any(_secret(cls, name) for name in _fields(cls))]


def test_the_walk_finds_the_value_types() -> None:
    names = {cls.__name__ for cls in CLASSES}
    expected = {"Endpoint", "S3Settings", "Settings", "BucketConfig", "SourceInstanceBody", "Credential"}
    assert names >= expected, expected - names
    with_secrets = {cls.__name__ for cls in SECRET_CLASSES}
    assert with_secrets >= {
        "Endpoint",
        "S3Settings",
        "Settings",
        "BucketConfig",
        "SourceInstanceBody",
        "ConfigMigrationInstanceBody",
        "CreateInstanceBody",
        "TokenResponse",
        "SignedRequest",
        "Credential",
        "Instance",
        "Task",
    }, with_secrets


@pytest.mark.parametrize("name", MUST_MATCH)
def test_secret_names_are_recognised(name: str) -> None:
    assert SECRET_NAME.search(name), name


@pytest.mark.parametrize("name", NOT_SECRET)
def test_neighbours_of_secrets_are_not(name: str) -> None:
    assert not SECRET_NAME.search(name), name


@pytest.mark.parametrize("cls", SECRET_CLASSES, ids=lambda c: c.__qualname__)
def test_secret_fields_are_declared_repr_false(cls: type) -> None:
    shown = [name for name, in_repr in _fields(cls).items() if _secret(cls, name) and in_repr]
    assert not shown, f"{cls.__module__}.{cls.__qualname__}: {shown} appear in repr()"


@pytest.mark.parametrize("cls", SECRET_CLASSES, ids=lambda c: c.__qualname__)
def test_no_secret_in_repr_or_str_of_an_instance(cls: type) -> None:
    secrets = [name for name in _fields(cls) if _secret(cls, name)]
    obj = _instance(cls, secrets)
    assert SENTINEL in {getattr(obj, name) for name in secrets}  # the instance really holds it
    for text in (repr(obj), str(obj)):
        assert SENTINEL not in text, f"{cls.__qualname__}: {text}"


def test_endpoint_masks_the_password_and_keeps_the_rest() -> None:
    ep = Endpoint.from_url(f"redis://alice:{SENTINEL}@db.example:6380/2")
    assert ep.password == SENTINEL
    assert str(ep) == "redis://alice:***@db.example:6380/2"
    assert "db.example" in repr(ep) and SENTINEL not in repr(ep)
    assert SENTINEL not in f"{ep!s} {ep!r} {ep}"
