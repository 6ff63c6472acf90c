"""The filter options of `import` and `migrate`: a TOML rules file (``--filter FILE``) and the
common rules as options, added to the file's (docs/filters.md).

The file holds the rules at its top level, or in a ``[filter]`` table (a RedisShake
``shake.toml`` works as it is: its other tables are not read).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # the engine is imported when a command runs, not for its --help
    from cachemigrate.engine.filter_rules import FilterRules

FilterFile = Annotated[str | None, typer.Option(
    "--filter", help="TOML file of filter rules (docs/filters.md; a RedisShake \\[filter] table works)")]
AllowPrefix = Annotated[list[str] | None, typer.Option(
    "--key-prefix", help="move only keys with this prefix (repeatable)")]
BlockPrefix = Annotated[list[str] | None, typer.Option(
    "--skip-key-prefix", help="leave keys with this prefix behind (repeatable)")]
BlockType = Annotated[list[str] | None, typer.Option(
    "--skip-type", help="leave keys of this type behind: string, list, set, zset, hash, stream (repeatable)")]
Rename = Annotated[list[str] | None, typer.Option(
    "--rename-prefix", help="OLD=NEW: keys starting with OLD get NEW instead (repeatable)")]
DbMap = Annotated[list[str] | None, typer.Option(
    "--map-db", help="N=M: source db N goes to target db M (repeatable)")]
SkipExpiring = Annotated[float | None, typer.Option(
    "--skip-expiring-within", help="leave keys that expire within this many seconds behind")]
MaxTtl = Annotated[float | None, typer.Option(
    "--max-ttl", help="cap every TTL (and give keys without one) this many seconds")]


def _pair(text: str, option: str) -> tuple[str, str]:
    from cachemigrate.errors import ConfigError

    old, sep, new = text.partition("=")
    if not sep or not old:
        raise ConfigError(f"{option} takes OLD=NEW, got {text!r}")
    return old, new


def build_rules(
    *,
    filter_file: str | None = None,
    key_prefix: list[str] | None = None,
    skip_key_prefix: list[str] | None = None,
    skip_type: list[str] | None = None,
    rename_prefix: list[str] | None = None,
    map_db: list[str] | None = None,
    skip_expiring_within: float | None = None,
    max_ttl: float | None = None,
) -> FilterRules | None:
    """The rules of the file and the options (None: no rule given); ConfigError names what is
    wrong (the file, the rule)."""
    from cachemigrate.engine.filter_rules import FilterRules
    from cachemigrate.errors import ConfigError

    data: dict[str, Any] = {}
    where = "filter"
    if filter_file:
        try:
            parsed = tomllib.loads(Path(filter_file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"--filter {filter_file}: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--filter {filter_file}: not TOML: {exc}") from None
        data = dict(parsed["filter"]) if isinstance(parsed.get("filter"), dict) else parsed
        where = filter_file
    for name, items in (("allow_key_prefix", key_prefix), ("block_key_prefix", skip_key_prefix),
                        ("block_type", skip_type)):
        if items:
            data[name] = [*data.get(name, []), *items]
    if rename_prefix:
        data["rename_prefix"] = {**data.get("rename_prefix", {}),
                                 **dict(_pair(r, "--rename-prefix") for r in rename_prefix)}
    if map_db:
        data["db_map"] = {**data.get("db_map", {}), **dict(_pair(m, "--map-db") for m in map_db)}
    if skip_expiring_within is not None:
        data["skip_expiring_within"] = skip_expiring_within
    if max_ttl is not None:
        data["max_ttl"] = max_ttl
    if not data:
        return None
    rules = FilterRules.from_mapping(data, where=where)
    return rules or None
