"""What `import` and `migrate` take from the environment: read here, once, and passed down as
explicit settings (nothing under engine/ or formats/ reads the environment)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from cachemigrate.engine.spec import S3Settings

_TRUE = ("1", "true", "yes")


def s3_settings(env: Mapping[str, str] | None = None) -> S3Settings:
    """The defaults for ``s3://`` paths: our ``CACHEMIGRATE_S3_*`` and the usual ``AWS_*``
    variables. What is left unset here boto3 looks up itself (profiles, instance roles)."""
    e = os.environ if env is None else env

    def first(*names: str) -> str | None:
        return next((e[n] for n in names if e.get(n)), None)

    return S3Settings(
        endpoint_url=first("CACHEMIGRATE_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        region=first("CACHEMIGRATE_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
        access_key_id=first("CACHEMIGRATE_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        secret_access_key=first("CACHEMIGRATE_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        session_token=first("AWS_SESSION_TOKEN"),
        path_style=e.get("CACHEMIGRATE_S3_PATH_STYLE", "").lower() in _TRUE,
    )


def c_walker(env: Mapping[str, str] | None = None) -> bool:
    """False when ``CACHEMIGRATE_PURE_PYTHON`` asks for the pure-Python path (same bytes, slower)."""
    e = os.environ if env is None else env
    return e.get("CACHEMIGRATE_PURE_PYTHON", "").lower() not in _TRUE
