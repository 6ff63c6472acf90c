"""Symmetric encryption of secrets at rest (SKs, Redis passwords) and of issued tokens."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from cachemigrate.engine.private_files import create_private, private_dir
from cachemigrate.errors import ConfigError
from cachemigrate.service.settings import Settings

log = logging.getLogger(__name__)


class Cipher:
    """Fernet with helpers for optional strings and JSON tokens with an expiry."""

    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError("secret_key is not a Fernet key (32 urlsafe-base64 bytes)") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Cipher:
        if settings.secret_key:
            return cls(settings.secret_key)
        if not settings.dev_mode:
            raise ConfigError(
                "no secret key: set CACHEMIGRATE_SECRET_KEY to a Fernet key "
                "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'),"
                " or CACHEMIGRATE_DEV_MODE=1 for a local throw-away key"
            )
        path = settings.data_dir / "dev-secret.key"
        if path.exists():
            return cls(path.read_text().strip())
        private_dir(settings.data_dir)
        key = Fernet.generate_key()
        with os.fdopen(create_private(path, exclusive=True), "wb") as fh:
            fh.write(key)
        log.warning("dev mode: generated a secret key in %s (do not use in production)", path)
        return cls(key)

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError("a stored secret cannot be decrypted with the configured key") from None

    def encrypt_optional(self, text: str | None) -> str | None:
        return None if text is None else self.encrypt(text)

    def decrypt_optional(self, token: str | None) -> str | None:
        return None if token is None else self.decrypt(token)

    def issue(self, claims: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(claims, sort_keys=True).encode()).decode()

    def open(self, token: str) -> dict[str, Any] | None:
        """Claims of a token issued by ``issue``; None when it was not issued with this key."""
        try:
            raw = self._fernet.decrypt(token.encode())
        except (InvalidToken, ValueError):
            return None
        claims = json.loads(raw)
        return claims if isinstance(claims, dict) else None
