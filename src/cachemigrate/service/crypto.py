"""Symmetric encryption of secrets at rest (SKs, Redis passwords) and of issued tokens.

Several keys, newest first (``MultiFernet``): everything is encrypted with the newest, decrypted
with whichever key it was encrypted with. Rotating keys: put the new key first, restart, run
`cachemigrate secrets rotate` (re-encrypts every stored secret under the newest key: ``rotate``),
then drop the old key.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from cachemigrate.engine.private_files import create_private, private_dir
from cachemigrate.errors import ConfigError
from cachemigrate.service.settings import Settings

log = logging.getLogger(__name__)


class Cipher:
    """MultiFernet with helpers for optional strings and JSON tokens with an expiry."""

    def __init__(self, keys: str | bytes | Sequence[str | bytes]) -> None:
        """One Fernet key, or several with the newest first."""
        keys = [keys] if isinstance(keys, str | bytes) else list(keys)
        if not keys:
            raise ConfigError("secret_key holds no key")
        fernets = []
        for n, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                which = f"key {n} of {len(keys)} in " if len(keys) > 1 else ""
                why = "is not a Fernet key (32 urlsafe-base64 bytes)"
                raise ConfigError(f"{which}secret_key {why}") from None
        self._fernet = MultiFernet(fernets)
        self.key_count = len(fernets)

    @classmethod
    def from_settings(cls, settings: Settings) -> Cipher:
        if settings.secret_key:
            return cls(settings.secret_keys())
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
            raise ConfigError("a stored secret cannot be decrypted with any configured key") from None

    def rotate(self, token: str) -> str:
        """``token`` (from ``encrypt`` or ``issue``) encrypted again under the newest key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise ConfigError("a stored secret cannot be decrypted with any configured key") from None

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
