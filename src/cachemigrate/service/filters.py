"""A task's filter rules (engine/filter_rules.py): checked from the API's ``filter`` object, kept in
the task's ``target`` description under ``"filter"`` (as ``FilterRules.to_mapping`` writes them:
no new column), and handed to the engine when the task runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cachemigrate.engine.filter_rules import FilterRules
from cachemigrate.errors import ConfigError, InvalidParameterError

if TYPE_CHECKING:
    from cachemigrate.service.api.filter_schema import FilterBody
    from cachemigrate.service.db.models import Task

KEY = "filter"


def checked(body: FilterBody | None) -> dict[str, Any] | None:
    """The rules of a request, as stored (None: none given); InvalidParameterError (400) names
    the wrong rule."""
    if body is None:
        return None
    data = body.model_dump(exclude_none=True)
    try:
        rules = FilterRules.from_mapping(data)
    except ConfigError as exc:
        raise InvalidParameterError("filter", str(exc).removeprefix("filter.")) from None
    return rules.to_mapping() or None


def with_rules(target: dict[str, Any], rules: dict[str, Any] | None) -> dict[str, Any]:
    """A target description that carries ``rules``."""
    out = {k: v for k, v in target.items() if k != KEY}
    if rules:
        out[KEY] = rules
    return out


def stored(task: Task) -> dict[str, Any] | None:
    rules = (task.target or {}).get(KEY)
    return rules if isinstance(rules, dict) and rules else None


def rules_of(task: Task) -> FilterRules | None:
    """The task's rules for the engine (None: everything moves)."""
    data = stored(task)
    return FilterRules.from_mapping(data) if data else None
