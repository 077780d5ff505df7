"""web/forms.py: JSON Schema properties into fields, submitted strings into typed data."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator
from werkzeug.datastructures import MultiDict

from tests.conftest import PROCESSES
from web import forms


def schema_file(name: str) -> dict:
    return json.loads((PROCESSES / "forms" / f"{name}.schema.json").read_text())


def by_name(items: list[forms.Field]) -> dict[str, forms.Field]:
    return {f.name: f for f in items}


QUALIFY = schema_file("incident_qualify")
CONFIRM = schema_file("confirm")


def test_enum_becomes_a_select_labelled_with_enum_titles():
    impact = by_name(forms.fields(QUALIFY))["impact"]
    assert impact.kind == "select"
    assert impact.options == [("high", "High: the enterprise or a whole site"),
                              ("medium", "Medium: a department"), ("low", "Low: one user")]
    assert impact.label == "Impact" and impact.required
    assert impact.help.startswith("How many users")


def test_enum_without_titles_uses_the_values_and_mismatched_titles_are_ignored():
    schema = {"type": "object", "properties": {
        "size": {"type": "string", "enum": ["s", "m"]},
        "colour": {"type": "string", "enum": ["red", "blue"], "x-enum-titles": ["Red"]},
    }}
    items = by_name(forms.fields(schema))
    assert items["size"].options == [("s", "s"), ("m", "m")]
    assert items["colour"].options == [("red", "red"), ("blue", "blue")]


def test_boolean_is_a_yes_no_choice_and_shows_the_value():
    resolved = by_name(forms.fields(CONFIRM, {"resolved": False}))["resolved"]
    assert resolved.kind == "boolean"
    assert resolved.options == [("true", "Yes"), ("false", "No")]
    assert resolved.value == "false" and resolved.required
    assert by_name(forms.fields(CONFIRM, {"resolved": True}))["resolved"].value == "true"
    assert by_name(forms.fields(CONFIRM))["resolved"].value == ""


@pytest.mark.parametrize(("prop", "name", "kind"), [
    ({"type": "string", "maxLength": 4000}, "anything", "textarea"),
    ({"type": "string", "maxLength": 201}, "anything", "textarea"),
    ({"type": "string", "maxLength": 200}, "delivery_site", "text"),
    ({"type": "string", "maxLength": 200}, "resolution", "text"),
    ({"type": "string"}, "resolution", "textarea"),
    ({"type": "string"}, "justification", "textarea"),
    ({"type": "string"}, "notes", "textarea"),
    ({"type": "string"}, "reason", "textarea"),
    ({"type": "string"}, "comment", "textarea"),
    ({"type": "string"}, "description", "textarea"),
    ({"type": "string"}, "title", "text"),
    ({"type": "integer"}, "count", "number"),
    ({"type": "number"}, "amount", "number"),
    ({"type": "boolean"}, "flag", "boolean"),
    ({"type": "string", "enum": ["a"]}, "pick", "select"),
    ({"type": "integer", "enum": [1, 2]}, "level", "select"),
])
def test_kind_of_each_property(prop, name, kind):
    field = forms.fields({"type": "object", "properties": {name: prop}})[0]
    assert field.kind == kind


def test_number_step_distinguishes_integers():
    items = by_name(forms.fields({"type": "object", "properties": {
        "count": {"type": "integer"}, "amount": {"type": "number"}}}))
    assert (items["count"].step, items["amount"].step) == ("1", "any")


def test_required_and_conditionally_required_fields():
    items = by_name(forms.fields(QUALIFY))
    assert {n for n, f in items.items() if f.required} == {
        "category", "service", "impact", "urgency", "action"}
    assert not items["resolution"].required
    assert items["resolution"].required_when == "Required when Next step is Resolve."
    assert items["group"].required_when == "Required when Next step is Escalate."
    assert items["resolution"].when == [("action", "resolve")]
    assert items["category"].required_when == "" and items["category"].when == []


def test_conditional_on_a_boolean_and_on_an_enum_list():
    schema = {"type": "object", "properties": {
        "approved": {"type": "boolean", "title": "Approved"},
        "kind": {"type": "string", "enum": ["a", "b", "c"], "x-enum-titles": ["A", "B", "C"]},
        "why": {"type": "string"}, "what": {"type": "string"}},
        "allOf": [
            {"if": {"properties": {"approved": {"const": False}}}, "then": {"required": ["why"]}},
            {"if": {"properties": {"kind": {"enum": ["a", "b"]}}}, "then": {"required": ["what"]}},
        ]}
    items = by_name(forms.fields(schema))
    assert items["why"].required_when == "Required when Approved is No."
    assert items["what"].required_when == "Required when Kind is A or Kind is B."


def test_labels_fall_back_to_the_name_and_help_to_nothing():
    field = forms.fields({"type": "object", "properties": {"delivery_site": {"type": "string"}}})[0]
    assert (field.label, field.help, field.required, field.value, field.error) == (
        "Delivery site", "", False, "", "")
    assert field.id == "field-delivery_site"


def test_values_and_errors_are_placed_on_their_field():
    items = by_name(forms.fields(
        QUALIFY, {"category": "network", "resolution": "typed text", "urgency": "high"},
        {"resolution": "This field is required.", "service": "Choose one of: vpn."}))
    assert items["category"].value == "network" and items["category"].error == ""
    assert items["resolution"].value == "typed text"
    assert items["resolution"].error == "This field is required."
    assert items["service"].error == "Choose one of: vpn."


def test_default_is_the_initial_value_but_an_entered_value_wins():
    schema = {"type": "object", "properties": {"model": {
        "type": "string", "enum": ["standard", "developer"], "default": "standard"}}}
    assert forms.fields(schema)[0].value == "standard"
    assert forms.fields(schema, {"model": "developer"})[0].value == "developer"


def test_order_keeps_the_schema_order_when_it_was_given():
    catalog = json.loads((PROCESSES / "catalog.json").read_text())["items"]
    laptop = next(i for i in catalog if i["key"] == "laptop")["form"]
    assert [f.name for f in forms.fields(laptop)] == ["model", "delivery_site"]


def test_order_restores_required_first_when_keys_were_sorted():
    """The engine stores task forms with sorted keys: the form still reads in a sensible order."""
    stored = json.loads(json.dumps(QUALIFY, sort_keys=True))
    assert list(stored["properties"]) == sorted(QUALIFY["properties"])
    assert [f.name for f in forms.fields(stored)] == list(QUALIFY["properties"])
    stored = json.loads(json.dumps(CONFIRM, sort_keys=True))
    assert [f.name for f in forms.fields(stored)] == ["resolved", "comment"]


def test_order_follows_x_order():
    schema = {"type": "object", "x-order": ["b", "zz", "a"],
              "properties": {"a": {"type": "string"}, "b": {"type": "string"},
                             "c": {"type": "string"}}}
    assert [f.name for f in forms.fields(schema)] == ["b", "a", "c"]


def test_every_deployed_form_renders():
    for path in sorted((PROCESSES / "forms").glob("*.json")):
        schema = json.loads(path.read_text())
        items = forms.fields(schema)
        assert [f.name for f in items] == list(schema["properties"]), path.name
        assert all(f.kind in forms.KINDS and f.label for f in items), path.name


# -- parse -----------------------------------------------------------------------------


def test_parse_types_booleans_and_drops_empty_optional_strings():
    data = forms.parse(CONFIRM, MultiDict({"resolved": "false", "comment": "", "csrf_token": "x"}))
    assert data == {"resolved": False}
    assert Draft202012Validator(CONFIRM).is_valid(data)
    assert forms.parse(CONFIRM, MultiDict({"resolved": "true", "comment": "Works"})) == {
        "resolved": True, "comment": "Works"}


def test_parse_numbers():
    schema = {"type": "object", "properties": {
        "count": {"type": "integer"}, "amount": {"type": "number"},
        "level": {"enum": [1, 2, 3]}}}
    data = forms.parse(schema, MultiDict({"count": " 3 ", "amount": "2.5", "level": "2"}))
    assert data == {"count": 3, "amount": 2.5, "level": 2}
    assert type(data["count"]) is int and type(data["amount"]) is float
    assert forms.parse(schema, {"amount": "4"}) == {"amount": 4}


def test_parse_keeps_what_cannot_be_converted_so_the_engine_names_the_field():
    schema = {"type": "object", "properties": {
        "count": {"type": "integer"}, "flag": {"type": "boolean"}, "amount": {"type": "number"}}}
    data = forms.parse(schema, MultiDict({"count": "three", "flag": "maybe", "amount": "nan"}))
    assert data == {"count": "three", "flag": "maybe", "amount": "nan"}
    errors = {e.absolute_path[0] for e in Draft202012Validator(schema).iter_errors(data)}
    assert errors == {"count", "flag", "amount"}


def test_parse_drops_empty_required_strings_so_required_is_reported():
    data = forms.parse(QUALIFY, MultiDict({"category": "", "action": "resolve",
                                           "resolution": "   "}))
    assert data == {"action": "resolve"}
    problems = {e.message for e in Draft202012Validator(QUALIFY).iter_errors(data)}
    assert any("'category' is a required property" in m for m in problems)


def test_parse_keeps_text_as_typed_and_ignores_unknown_fields():
    data = forms.parse(QUALIFY, MultiDict([("resolution", "  Line 1\nLine 2 "),
                                           ("evil", "x"), ("group", "network")]))
    assert data == {"resolution": "  Line 1\nLine 2 ", "group": "network"}


def test_parse_then_validate_a_whole_qualification():
    form = MultiDict({"category": "network", "service": "vpn", "impact": "medium",
                      "urgency": "high", "action": "escalate", "group": "network",
                      "resolution": ""})
    data = forms.parse(QUALIFY, form)
    assert data == {"category": "network", "service": "vpn", "impact": "medium",
                    "urgency": "high", "action": "escalate", "group": "network"}
    assert Draft202012Validator(QUALIFY).is_valid(data)


def test_errors_for_strips_a_prefix():
    errors = {"fields.justification": "Too short.", "title": "Too long."}
    assert forms.errors_for(errors, "fields.") == {"justification": "Too short."}
    assert forms.errors_for(errors) == errors
    assert forms.errors_for(None) == {}
