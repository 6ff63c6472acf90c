"""The Redis 7 multi-part AOF manifest, read the way ``aofLoadManifestFromFile`` does.

``sdssplitargs`` quoting, ``#`` comment lines, unknown key/value pairs allowed, at most one base,
increasing incr sequence numbers. History files (type ``h``) are listed but never replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from cachemigrate.errors import AofFormatError


@dataclass(frozen=True, slots=True)
class ManifestFile:
    name: str
    seq: int
    type: str  # "b" base, "i" incr, "h" history (never replayed)


@dataclass(frozen=True, slots=True)
class Manifest:
    base: ManifestFile | None
    incrs: tuple[ManifestFile, ...]
    history: tuple[ManifestFile, ...] = field(default=())

    @property
    def replay(self) -> tuple[ManifestFile, ...]:
        """The files to load, in order: the base, then every incr in manifest order."""
        return ((self.base,) if self.base else ()) + self.incrs


_ESCAPES: Final = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}


def split_args(line: str) -> list[str] | None:
    """``sdssplitargs``: whitespace-separated words, "double" (with C escapes) or 'single' quoted.

    Returns None where sdssplitargs returns NULL: unbalanced quotes, or a closing quote not
    followed by a space.
    """
    out: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return out
        cur: list[str] = []
        while i < n and line[i] not in " \n\r\t\0":
            c = line[i]
            if c in "\"'":
                i = _quoted(line, i + 1, c, cur)
                if i < 0:
                    return None
                break  # a closing quote ends the word
            cur.append(c)
            i += 1
        out.append("".join(cur))


def _quoted(line: str, i: int, quote: str, cur: list[str]) -> int:
    """Append the quoted part starting at ``i`` to ``cur``; the index after it, or -1 (NULL)."""
    n = len(line)
    while i < n:
        c = line[i]
        if c == quote:
            return i + 1 if i + 1 >= n or line[i + 1].isspace() else -1
        if c == "\\" and i + 1 < n:
            nxt = line[i + 1]
            if quote == "'":
                if nxt == "'":
                    cur.append("'")
                    i += 2
                    continue
            elif nxt == "x" and _is_hex(line[i + 2 : i + 4]):
                cur.append(chr(int(line[i + 2 : i + 4], 16)))
                i += 4
                continue
            else:
                cur.append(_ESCAPES.get(nxt, nxt))
                i += 2
                continue
        cur.append(c)
        i += 1
    return -1


def _is_hex(s: str) -> bool:
    return len(s) == 2 and all(c in "0123456789abcdefABCDEF" for c in s)


def parse_manifest(data: bytes, *, source: str | None = None) -> Manifest:
    """Parse a manifest; AofFormatError names the source and the byte offset of the bad line."""
    base: ManifestFile | None = None
    incrs: list[ManifestFile] = []
    history: list[ManifestFile] = []
    max_seq = 0
    offset = 0
    lines = 0
    for raw in data.splitlines(keepends=True):
        where = offset
        offset += len(raw)
        lines += 1
        if raw.startswith(b"#"):
            continue

        def bad(reason: str, at: int = where) -> AofFormatError:
            return AofFormatError(f"invalid AOF manifest: {reason}", offset=at, source=source)

        line = raw.decode("utf-8", "surrogateescape").strip(" \t\r\n")
        if not line:
            raise bad("empty line")
        argv = split_args(line)
        if argv is None or len(argv) < 6 or len(argv) % 2:
            raise bad(f"expected 'file <name> seq <n> type <b|h|i>', got {line[:80]!r}")
        name: str | None = None
        seq = 0
        kind = ""
        for k, v in zip(argv[::2], argv[1::2], strict=True):
            key = k.lower()
            if key == "file":
                name = v
            elif key == "seq":
                seq = _atoll(v)
            elif key == "type":
                kind = v[:1]
            # other keys: forward compatibility, ignored like the server does
        if not name or not seq or not kind:
            raise bad(f"file, seq and type are all required: {line[:80]!r}")
        if "/" in name or name in (".", ".."):
            raise bad(f"file can't be a path, just a filename: {name!r}")
        entry = ManifestFile(name, seq, kind)
        if kind == "b":
            if base is not None:
                raise bad("found duplicate base file information")
            base = entry
        elif kind == "h":
            history.append(entry)
        elif kind == "i":
            if seq <= max_seq:
                raise bad(f"found a non-monotonic sequence number ({seq} after {max_seq})")
            incrs.append(entry)
            max_seq = seq
        else:
            raise bad(f"unknown AOF file type {kind!r}")
    if lines == 0:
        raise AofFormatError("found an empty AOF manifest", offset=0, source=source)
    return Manifest(base, tuple(incrs), tuple(history))


def _atoll(s: str) -> int:
    # atoll: leading digits (with an optional sign), 0 when there are none
    j = 1 if s[:1] in "+-" else 0
    k = j
    while k < len(s) and s[k].isdigit():
        k += 1
    return int(s[:k]) if k > j else 0


