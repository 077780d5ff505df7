"""Task and catalog forms: JSON Schemas, filled with live options, validated per field."""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from .errors import ValidationFailed

OPTIONS_KEY = "x-options"  # a property whose enum comes from the database (groups, services)


def schema_problems(schema: Any) -> list[str]:
    """Why ``schema`` is not a usable form schema (empty list when it is)."""
    if not isinstance(schema, dict):
        return ["a form must be a JSON object"]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as err:
        return [f"invalid JSON Schema at {'/'.join(map(str, err.path)) or 'root'}: {err.message}"]
    if schema.get("type", "object") != "object" or not isinstance(schema.get("properties"), dict):
        return ["a form schema must be an object with properties"]
    return []


def with_options(schema: dict[str, Any], options: Mapping[str, list[tuple[str, str]]]) -> dict:
    """Copy ``schema`` with every ``x-options`` property turned into an enum of live values.

    Only the dictionaries on the way to a filled property are copied; the rest is shared
    with ``schema``, which nobody mutates (forms are read: validated and rendered).
    """
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return deepcopy(schema)
    filled = {**schema, "properties": dict(properties)}
    for name, prop in properties.items():
        source = prop.get(OPTIONS_KEY) if isinstance(prop, dict) else None
        if source in options:
            filled["properties"][name] = {
                **prop, "enum": [value for value, _ in options[source]],
                "x-enum-titles": [title for _, title in options[source]]}
    return filled


def validate(schema: dict[str, Any], data: Any) -> dict[str, Any]:
    """Return ``data`` when valid; raise ``ValidationFailed`` naming each bad field."""
    if not isinstance(data, dict):
        raise ValidationFailed("the form data must be a JSON object", {"_": "must be an object"})
    errors: dict[str, str] = {}
    known = schema.get("properties", {})
    for key in data:
        if key not in known:
            errors[key] = "Unknown field."
    for error in Draft202012Validator(schema).iter_errors(data):
        for name, message in _describe(error, known):
            errors.setdefault(name, message)
    if errors:
        fields = ", ".join(sorted(errors))
        raise ValidationFailed(f"Please correct these fields: {fields}.", errors)
    return data


def _describe(error: ValidationError, known: dict[str, Any]) -> list[tuple[str, str]]:
    path = [p for p in error.absolute_path]
    name = str(path[0]) if path else "_"
    kind = error.validator
    if kind == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        return [(f, "This field is required.") for f in error.validator_value if f not in instance]
    if kind == "additionalProperties":
        return [(f, "Unknown field.") for f in error.instance if f not in known]
    if kind == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return [(name, f"Choose one of: {allowed}.")]
    if kind == "const":
        return [(name, f"Must be {error.validator_value!r}.")]
    if kind == "type":
        return [(name, f"Must be of type {error.validator_value}.")]
    if kind == "minLength":
        if error.validator_value == 1:
            return [(name, "This field is required.")]
        return [(name, f"Must be at least {error.validator_value} characters.")]
    if kind == "maxLength":
        return [(name, f"Must be at most {error.validator_value} characters.")]
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return [(name, error.message)]
    return [(name, error.message)]
