"""HTML forms from JSON Schemas: fields to render, and submitted strings turned into typed data.

The engine validates the data against the same schema (``desk().complete``/``order``); this
module only decides how each property is shown and converts what a browser sends (strings)
into the JSON types the schema expects, so the engine's messages are about values, not types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS = ("select", "boolean", "textarea", "text", "number")
# String properties shown as a textarea when the schema gives no maxLength.
LONG_TEXT_NAMES = frozenset(
    {"resolution", "description", "notes", "comment", "justification", "reason"}
)
LONG_TEXT_LENGTH = 200
BOOLEAN_OPTIONS = [("true", "Yes"), ("false", "No")]


@dataclass
class Field:
    """One property of a form schema, ready for the ``form.fields`` macro."""

    name: str
    label: str
    kind: str  # one of KINDS
    options: list[tuple[str, str]] = field(default_factory=list)
    required: bool = False
    help: str = ""
    value: str = ""
    error: str = ""
    required_when: str = ""  # "Required when Next step is Resolve." (allOf/if/then)
    when: list[tuple[str, str]] = field(default_factory=list)  # [(field, value)] for the hint
    max_length: int | None = None
    step: str = ""  # "1" for integers, "any" for numbers

    @property
    def id(self) -> str:
        return f"field-{self.name}"


def fields(schema: Mapping[str, Any], values: Mapping[str, Any] | None = None,
           errors: Mapping[str, str] | None = None) -> list[Field]:
    """The schema's properties in order, with the values entered and the errors per field."""
    values = values or {}
    errors = errors or {}
    props = _properties(schema)
    required = set(schema.get("required") or [])
    conditions = _conditional_required(schema)
    out = []
    for name in order(schema):
        prop = props[name]
        kind = _kind(name, prop)
        when = conditions.get(name, [])
        out.append(Field(
            name=name,
            label=str(prop.get("title") or _humanize(name)),
            kind=kind,
            options=_options(prop) if kind == "select" else (
                list(BOOLEAN_OPTIONS) if kind == "boolean" else []),
            required=name in required,
            help=str(prop.get("description") or ""),
            value=_display(values[name] if name in values else prop.get("default")),
            error=str(errors.get(name) or ""),
            required_when="" if name in required else _when_text(when, props),
            when=when,
            max_length=prop.get("maxLength") if isinstance(prop.get("maxLength"), int) else None,
            step=("1" if _type(prop) == "integer" else "any") if kind == "number" else "",
        ))
    return out


def order(schema: Mapping[str, Any]) -> list[str]:
    """The order to show the properties in.

    ``x-order`` when the schema gives one. Otherwise the schema's own order, except when
    its keys are in alphabetical order: the engine stores task forms with sorted keys, so
    the designer's order is lost; the ``required`` list, then the conditionally required
    fields (``allOf``), then the rest, bring it back for the usual "answer, then details"
    forms.
    """
    names = list(_properties(schema))
    explicit = schema.get("x-order")
    if isinstance(explicit, list):
        first = [n for n in dict.fromkeys(str(x) for x in explicit) if n in names]
        return first + [n for n in names if n not in first]
    if len(names) < 2 or names != sorted(names):
        return names
    wanted = [str(n) for n in schema.get("required") or []]
    wanted += list(_conditional_required(schema))
    first = [n for n in dict.fromkeys(wanted) if n in names]
    return first + [n for n in names if n not in first]


def parse(schema: Mapping[str, Any], form: Any) -> dict[str, Any]:
    """Typed data from submitted strings, for the schema's properties only.

    ``"true"``/``"false"`` become booleans, integers and numbers become ``int``/``float``,
    empty strings are dropped (an empty answer is no answer: a required field then gets
    "This field is required."). A value that cannot be converted is kept as typed so the
    engine's validation names the field.
    """
    data: dict[str, Any] = {}
    for name, prop in _properties(schema).items():
        raw = form.get(name)
        if raw is None:
            continue
        if not isinstance(raw, str):
            raw = str(raw)
        if raw.strip() == "" and "" not in (prop.get("enum") or []):
            continue
        data[name] = _convert(_type(prop), raw)
    return data


def errors_for(errors: Mapping[str, str] | None, prefix: str = "") -> dict[str, str]:
    """The errors whose key starts with ``prefix`` (``fields.`` for catalog orders), unprefixed."""
    if not errors:
        return {}
    if not prefix:
        return dict(errors)
    return {k[len(prefix):]: v for k, v in errors.items() if k.startswith(prefix)}


# -- helpers ---------------------------------------------------------------------------


def _properties(schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(props, Mapping):
        return {}
    return {str(k): v for k, v in props.items() if isinstance(v, Mapping)}


def _type(prop: Mapping[str, Any]) -> str:
    """The JSON type of a property: ``type`` (first non-null), else guessed from enum/const."""
    declared = prop.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    if isinstance(declared, str):
        return declared
    samples = list(prop.get("enum") or []) + ([prop["const"]] if "const" in prop else [])
    if samples and all(isinstance(v, bool) for v in samples):
        return "boolean"
    if samples and all(isinstance(v, int) and not isinstance(v, bool) for v in samples):
        return "integer"
    if samples and all(isinstance(v, int | float) and not isinstance(v, bool) for v in samples):
        return "number"
    return "string"


def _kind(name: str, prop: Mapping[str, Any]) -> str:
    json_type = _type(prop)
    if json_type == "boolean":
        return "boolean"
    if isinstance(prop.get("enum"), list):
        return "select"
    if json_type in ("integer", "number"):
        return "number"
    max_length = prop.get("maxLength")
    if isinstance(max_length, int):
        return "textarea" if max_length > LONG_TEXT_LENGTH else "text"
    return "textarea" if name in LONG_TEXT_NAMES else "text"


def _options(prop: Mapping[str, Any]) -> list[tuple[str, str]]:
    values = list(prop.get("enum") or [])
    titles = prop.get("x-enum-titles")
    if not isinstance(titles, list) or len(titles) != len(values):
        titles = [None] * len(values)
    return [(_display(v), str(t) if t is not None else _display(v))
            for v, t in zip(values, titles, strict=True)]


def _display(value: Any) -> str:
    """How a value appears in an input: booleans as ``true``/``false``, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _convert(json_type: str, raw: str) -> Any:
    if json_type == "boolean":
        return {"true": True, "false": False}.get(raw.strip().lower(), raw)
    if json_type == "integer":
        try:
            return int(raw.strip())
        except ValueError:
            return raw
    if json_type == "number":
        text = raw.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return raw
        return number if number == number and number not in (float("inf"), float("-inf")) else raw
    return raw


def _conditional_required(schema: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """``allOf: [{if: {properties: {X: {const: V}}}, then: {required: [...]}}]`` per field."""
    found: dict[str, list[tuple[str, str]]] = {}
    for rule in schema.get("allOf") or []:
        if not isinstance(rule, Mapping):
            continue
        then = rule.get("then") if isinstance(rule.get("then"), Mapping) else {}
        condition = rule.get("if") if isinstance(rule.get("if"), Mapping) else {}
        triggers: list[tuple[str, str]] = []
        for name, test in (condition.get("properties") or {}).items():
            if not isinstance(test, Mapping):
                continue
            if "const" in test:
                triggers.append((str(name), _display(test["const"])))
            for value in test.get("enum") or []:
                triggers.append((str(name), _display(value)))
        for target in then.get("required") or []:
            found.setdefault(str(target), []).extend(triggers or [("", "")])
    return found


def _when_text(when: list[tuple[str, str]], props: Mapping[str, Mapping[str, Any]]) -> str:
    if not when:
        return ""
    parts = []
    for name, value in when:
        if not name:
            return "Required in some cases."
        prop = props.get(name, {})
        label = str(prop.get("title") or _humanize(name))
        shown = dict(_options(prop)).get(value, value) if prop else value
        if _type(prop) == "boolean":
            shown = dict(BOOLEAN_OPTIONS).get(value, value)
        parts.append(f"{label} is {shown}")
    return "Required when " + " or ".join(parts) + "."


def _humanize(name: str) -> str:
    text = name.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:] if text else name
