"""How a key differs between two servers: the kinds of difference, a difference with the states
it was judged on, and the judgement itself (type, value, TTL within a tolerance, and the expiry
rules a migration applied: a key expiring within ``skip_expiring_within`` may be absent; with
``max_ttl`` a target TTL may also be the capped one, no later than the source's expiry, nor than
now + the cap). engine/compare.py and engine/verify.py judge with it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cachemigrate.engine.keystate import KeyState, same_value


class Kind(enum.StrEnum):
    """How a key differs."""

    MISSING = "missing"  # in the source, not in the target
    EXTRA = "extra"  # in the target, not in the source
    TYPE = "type"
    VALUE = "value"
    TTL = "ttl"  # beyond the tolerance, or an expiry on one side only


@dataclass(frozen=True, slots=True)
class Mismatch:
    db: int
    key: bytes
    reason: str
    kind: Kind = Kind.VALUE


@dataclass(frozen=True, slots=True)
class Difference:
    """A key that differs, with the states it was judged on (``source`` is ABSENT for an extra
    key found by scanning the target)."""

    db: int  # the source db (for an extra key: the source db that would explain it, or -1)
    tdb: int
    key: bytes  # the source key (for an extra key: the source name that would explain it)
    kind: Kind
    source: KeyState  # as the rules make it (ABSENT: the target should not hold the key)
    target: KeyState
    reason: str
    tkey: bytes | None = None  # the key on the target when a rule renamed it

    @property
    def target_key(self) -> bytes:
        return self.key if self.tkey is None else self.tkey

    def mismatch(self) -> Mismatch:
        if self.kind is Kind.EXTRA:  # named as the target holds it
            return Mismatch(self.tdb, self.target_key, self.reason, self.kind)
        reason = self.reason if self.tkey is None else f"{self.reason} (as {self.tkey[:64]!r} on the target)"
        return Mismatch(self.db, self.key, reason, self.kind)



def judge(
    s: KeyState, t: KeyState, tol: int, now: int, *, skip_ms: int = 0, max_ttl_ms: int = 0
) -> Kind | None:
    """How target state ``t`` differs from source state ``s``; None: no difference (or a key
    expiring as it is read, which has no verdict). ``skip_ms``, ``max_ttl_ms``: the expiry rules
    the migration applied (module docstring)."""
    if not s.exists:
        if not t.exists or 0 <= t.expire_at - now <= tol:
            return None
        return Kind.EXTRA
    if not t.exists:
        if 0 <= s.expire_at - now <= max(tol, skip_ms):
            return None  # expired on the target first, or left behind by skip_expiring_within
        return Kind.MISSING
    if s.type != t.type:
        return Kind.TYPE
    if not same_value(s, t):
        if 0 <= s.expire_at - now <= tol or 0 <= t.expire_at - now <= tol:
            return None  # expiring as we read it (a value read after TYPE may find it gone)
        return Kind.VALUE
    if (s.expire_at < 0) != (t.expire_at < 0) or (s.expire_at >= 0 and abs(s.expire_at - t.expire_at) > tol):
        if max_ttl_ms and 0 <= t.expire_at <= now + max_ttl_ms + tol and (
                s.expire_at < 0 or t.expire_at <= s.expire_at + tol):
            return None  # capped by max_ttl when it was copied (some time before now)
        return Kind.TTL
    return None


def describe(kind: Kind, s: KeyState, t: KeyState, now: int) -> str:
    if kind is Kind.MISSING:
        return "missing in target"
    if kind is Kind.EXTRA:
        return "extra in target"
    if kind is Kind.TYPE:
        return f"type {s.type.decode()} vs {t.type.decode()}"
    if kind is Kind.VALUE:
        return f"{s.type.decode()} value differs"

    def ttl(x: KeyState) -> int:
        return -1 if x.expire_at < 0 else max(0, x.expire_at - now)

    return f"ttl {ttl(s)} ms vs {ttl(t)} ms"
