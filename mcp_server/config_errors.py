"""A config validation failure as one line that names the fix: the closest valid key for a misspelt one, where
keys really come from for a key written into the file, and the value that was refused."""

from __future__ import annotations

import difflib
import re
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

# Refusals of a number: the error repeats the number given (a number is never a secret).
_NUMBER_LIMITS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of"})
# Key names that mean a secret written into the file instead of named by an `..._env` variable.
_SECRET = re.compile(r"(?i)(^|_)(api_?key|key|token|secret|password|bearer)$")


def describe(error: ValidationError, root: type[BaseModel]) -> tuple[str, str]:
    """(the dotted key, what is wrong with it and how to fix it) for the first failure."""
    errors = error.errors()
    # A misspelt key is also a missing one ("protocl" leaves "protocol" unset): the misspelling says more.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = first["loc"]
    key = ".".join(str(part) for part in loc) or "(top level)"
    problem = first["msg"].removeprefix("Value error, ")
    kind = first["type"]
    if kind == "extra_forbidden":
        return key, unknown_key(str(loc[-1]), _keys_at(root, loc[:-1]), _variable_for(loc))
    if kind in ("literal_error", "enum") or (kind in _NUMBER_LIMITS and _is_number(first)):
        return key, f"{problem}; got {first['input']!r}"
    if kind == "missing":
        return key, "required key missing"
    if not loc and re.match(r"^[\w.\-/]+: ", problem):  # "models.x.fallbacks: ..." from a validator
        key, problem = problem.split(": ", 1)
    return key, problem


def unknown_key(name: str, valid: list[str], variable: str = "MY_VARIABLE") -> str:
    env_keys = [key for key in valid if key.endswith("_env")]
    if env_keys and _SECRET.search(name):
        env_key = difflib.get_close_matches(f"{name}_env", env_keys, n=1, cutoff=0)[0]
        return (
            "unknown key: keys and secrets are never read from the config file, only from the environment. "
            f"Set an environment variable ({variable}=...) where genroute starts and name it here instead: "
            f'{env_key} = "{variable}"'
        )
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    if close:
        return f"unknown key: did you mean '{close[0]}'?"
    return f"unknown key; valid keys here: {', '.join(valid)}" if valid else "unknown key"


def _variable_for(loc: tuple[int | str, ...]) -> str:
    """A variable name to suggest: ARKROUTE_API_KEY for a key written into [providers.arkroute]."""
    if len(loc) == 3 and loc[0] == "providers":
        return re.sub(r"\W", "_", str(loc[1])).upper() + "_API_KEY"
    return "MY_SECRET"


def _is_number(detail: ErrorDetails) -> bool:
    value = detail.get("input")
    return isinstance(value, int | float) and not isinstance(value, bool)


def _keys_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the table at `loc` accepts (the config's pydantic model there), or [] if it cannot be told."""
    model: Any = root
    parts = list(loc)
    while parts:
        field = model.model_fields.get(str(parts.pop(0))) if _is_model(model) else None
        if field is None:
            return []
        model = _model_of(field.annotation)
        if get_origin(field.annotation) is dict:  # [providers.NAME]: NAME is the dict's key, then its model
            if not parts:
                return []
            parts.pop(0)
    if not _is_model(model):
        return []
    return [name for name, field in model.model_fields.items() if not field.exclude]


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside `X`, `X | None` or `dict[str, X]`."""
    origin = get_origin(annotation)
    if origin is dict:
        return _model_of(get_args(annotation)[1])
    if origin in (Union, types.UnionType):
        return next((arg for arg in get_args(annotation) if _is_model(arg)), None)
    return annotation


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)
