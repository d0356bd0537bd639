"""The building blocks of every request schema: pydantic models, our field types, our errors.

Every body and query is a pydantic v2 model (apiserver.schemas); the same models produce the
OpenAPI document (apiserver.openapi). Pydantic's errors are turned into the contract's
details ``[{"field", "message"}]`` with our short messages here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from apiserver import errors

ID_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MAX_TEXT_LEN: Final = 4096
MAX_SECRET_LEN: Final = 16 * 1024

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    """A JSON request body: strict types (no "1" for 1, no true for 1), unknown keys ignored."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class Query(BaseModel):
    """Query parameters: strings converted by each field's own before-validator."""

    model_config = ConfigDict(frozen=True, extra="ignore")


def fail(message: str, field: str | None = None) -> PydanticCustomError:
    """Return a validation error with our message (``field`` names a sub-field, if any)."""
    context = {"field": field} if field is not None else None
    return PydanticCustomError("invalid", message, context)


def _not_blank(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise fail("must not be empty")
    return value


Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
Name = Annotated[str, BeforeValidator(_not_blank), Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=MAX_TEXT_LEN)]
Secret = Annotated[str, BeforeValidator(_not_blank), Field(min_length=1, max_length=MAX_SECRET_LEN)]


# -- queries -------------------------------------------------------------------------------


def int_query(minimum: int, maximum: int, default: int) -> Callable[[Any], int]:
    """Return a parser of an integer query value: '' means ``default``; our messages."""

    def parse(raw: Any) -> int:
        if raw is None or raw == "":
            return default
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        else:
            try:
                value = int(str(raw))
            except ValueError:
                raise fail("must be an integer") from None
        if not minimum <= value <= maximum:
            raise fail(f"must be between {minimum} and {maximum}")
        return value

    return parse


def int_query_schema(minimum: int, maximum: int, default: int) -> WithJsonSchema:
    """Return the JSON schema of an ``int_query`` parameter."""
    return WithJsonSchema(
        {"type": "integer", "minimum": minimum, "maximum": maximum, "default": default}
    )


def _query_bool(raw: Any) -> bool | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        return raw
    text = str(raw).lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise fail("must be true or false")


def _blank_is_none(raw: Any) -> Any:
    return None if raw == "" else raw


QueryBool = Annotated[
    bool | None, BeforeValidator(_query_bool), WithJsonSchema({"type": "boolean"})
]
QueryText = Annotated[
    Annotated[str, Field(max_length=256)] | None,
    BeforeValidator(_blank_is_none),
    WithJsonSchema({"type": "string", "maxLength": 256}),
]


# -- errors --------------------------------------------------------------------------------

_MESSAGES: Final = {
    "missing": "is required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "string_type": "must be a string",
    "bool_type": "must be a boolean",
    "bool_parsing": "must be a boolean",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be an array",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "string_pattern_mismatch": "must match {pattern}",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "greater_than_equal": "must be >= {ge}",
    "less_than_equal": "must be <= {le}",
    "greater_than": "must be > {gt}",
    "too_long": "must have at most {max_length} items",
    "too_short": "must have at least {min_length} items",
    "none_required": "must be null",
}


def _field(loc: tuple[int | str, ...], context: Mapping[str, Any] | None, prefix: str) -> str:
    parts: list[str] = []
    for item in loc:
        # A bad dict key is named by the key itself; a bad array item by its array.
        if item == "[key]" or isinstance(item, int):
            continue
        parts.append(str(item))
    if context and context.get("field"):
        parts.append(str(context["field"]))
    name = ".".join(parts)
    if prefix:
        name = f"{prefix}.{name}" if name else prefix
    return name or "body"


def details_of(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    """Return the contract's ``details`` for a pydantic ValidationError (one per problem)."""
    details: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False, include_input=False):
        context = error.get("ctx")
        template = _MESSAGES.get(error["type"])
        if template is None:
            message = str(error["msg"]).removeprefix("Value error, ")
        else:
            try:
                message = template.format(**(context or {}))
            except (KeyError, IndexError):
                message = str(error["msg"])
        loc = tuple(error["loc"])
        if not loc and error["type"] in ("model_type", "dict_type"):
            message = "must be a JSON object"
        details.append({"field": _field(loc, context, prefix), "message": message})
    return details


def parse_body(model: type[M], data: Any, *, prefix: str = "") -> M:
    """Validate a parsed JSON body into ``model``, or raise the contract's 400."""
    if data is None:
        data = {}  # no body at all: every required field is reported missing
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise errors.ValidationFailed(details_of(exc, prefix)) from None


def parse_query(model: type[M], query: Mapping[str, str]) -> M:
    """Validate query parameters into ``model``, or raise the contract's 400."""
    try:
        return model.model_validate(dict(query))
    except ValidationError as exc:
        raise errors.ValidationFailed(details_of(exc)) from None
