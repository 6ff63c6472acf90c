"""Our extension of a task's bodies: its filter rules (engine/filter_rules.py, docs/filters.md),
RedisShake's [filter] names and ours. The shape is checked here, the meaning (types, groups,
regular expressions, the Lua function) by FilterRules.from_mapping: both answer 400.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cachemigrate.service.api.fields import storable

_RuleText = Annotated[str, Field(min_length=1, max_length=1024)]
_RuleList = Annotated[list[_RuleText], Field(max_length=1000)]
_DbNumber = Annotated[int, Field(ge=0, le=(1 << 20) - 1)]
_DbList = Annotated[list[_DbNumber], Field(max_length=1000)]
_Seconds = Annotated[float, Field(ge=0.001, le=100 * 365 * 86400)]


class FilterBody(BaseModel):
    """Extension: what moves and under which name. Block rules first; an allow list given holds
    only what it names; a multi-key command passes whole or is dropped (and logged)."""

    model_config = ConfigDict(extra="forbid")
    _strings_storable = field_validator("*")(storable)

    allow_key: _RuleList | None = Field(None, description="keys named exactly")
    allow_key_prefix: _RuleList | None = None
    allow_key_suffix: _RuleList | None = None
    allow_key_regex: _RuleList | None = Field(None, description="regular expressions searched in the key")
    block_key: _RuleList | None = None
    block_key_prefix: _RuleList | None = None
    block_key_suffix: _RuleList | None = None
    block_key_regex: _RuleList | None = None
    allow_db: _DbList | None = None
    block_db: _DbList | None = None
    db_map: Annotated[dict[Annotated[str, Field(max_length=7, pattern=r"^[0-9]{1,7}$")],
                           _DbNumber],
                      Field(max_length=1000, description="source db -> target db")] | None = None
    allow_type: _RuleList | None = Field(None, description="string, list, set, zset, hash, stream, module")
    block_type: _RuleList | None = None
    allow_command: _RuleList | None = Field(None, description="incremental phase and AOF commands")
    block_command: _RuleList | None = None
    allow_command_group: _RuleList | None = Field(None, description="STRING, HASH, SCRIPTING...")
    block_command_group: _RuleList | None = None
    skip_expiring_within: _Seconds | None = Field(None, description="seconds: keys expiring sooner stay")
    max_ttl: _Seconds | None = Field(None, description="seconds: longer TTLs (and none) become this")
    rename_prefix: Annotated[dict[_RuleText, Annotated[str, Field(max_length=1024)]],
                             Field(max_length=1000, description="old prefix -> new prefix")] | None = None
    function: Annotated[str, Field(max_length=64 << 10, description="Lua: RedisShake's function API")] \
        | None = None

