"""JSON answers go out through orjson and read exactly as the standard encoder's would."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from flask import jsonify
from markupsafe import Markup


class Level(StrEnum):
    HIGH = "high"


def test_a_document_reads_the_same_as_with_the_standard_encoder(app):
    document = {"z": 1, "a": [1.5, None, True], "é": "naïve <b>", "nested": {"2": "x"},
                2: "int key", "when": datetime(2026, 11, 28, 9, 30, tzinfo=UTC),
                "state": Level.HIGH, "markup": Markup("<i>kept</i>")}
    with app.test_request_context():
        body = jsonify(document).get_data()
        expected = json.loads(app.json.__class__.__mro__[1].dumps(app.json, document))
    assert json.loads(body) == expected
    assert list(json.loads(body)) == ["z", "a", "é", "nested", "2", "when", "state",
                                      "markup"]  # order kept
    assert expected["state"] == "high" and expected["markup"] == "<i>kept</i>"
    assert expected["when"] == "Sat, 28 Nov 2026 09:30:00 GMT"  # Flask's own conversion


def test_what_orjson_cannot_encode_falls_back_to_the_standard_encoder(app):
    with app.test_request_context():
        assert json.loads(jsonify(value=2**70).get_data()) == {"value": 2**70}
        assert json.loads(app.json.dumps([2**70])) == [2**70]


def test_templates_embed_json_safely(app):
    with app.test_request_context():
        rendered = app.jinja_env.from_string("{{ v | tojson }}").render(v={"x": "</script>"})
    assert "</script>" not in rendered and json.loads(rendered) == {"x": "</script>"}


def test_an_inbox_answer_is_valid_json_with_forms_in_field_order(api, life):
    life.report(as_="alice")
    r = api.get("/tasks", as_="sam")
    assert r.status_code == 200 and r.mimetype == "application/json"
    form = r.json["items"][0]["form"]
    schema = json.loads(Path("processes/forms/incident_qualify.schema.json").read_text())
    assert list(form["properties"]) == list(schema["properties"])
