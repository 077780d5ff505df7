"""Schemathesis against ``/api/v1/openapi.json``, in process (WSGI), as an agent and as a
requester: valid and invalid inputs for every operation; never a 5xx, every 4xx a JSON error
with a message, and every answer as the document describes it."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# Per operation, mode and user: about 20 s for the file; GUICHET_FUZZ_EXAMPLES=100 digs deeper.
EXAMPLES = int(os.environ.get("GUICHET_FUZZ_EXAMPLES", "6"))
USERS = os.environ.get("GUICHET_FUZZ_USERS", "sam,alice").split(",")  # e.g. add max,aude,admin
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def assert_json_error(response) -> None:
    if 400 <= response.status_code < 500:
        kind = {k.lower(): v for k, v in response.headers.items()}.get("content-type", [""])
        assert kind[0].startswith("application/json"), (response.status_code, response.text)
        body = response.json()
        assert isinstance(body.get("error"), str) and body["error"].strip(), body


@pytest.mark.parametrize("user", USERS)
def test_the_api_holds_to_its_openapi_document(app, api, life, user):
    life.report(as_="alice")  # something to list, a task to act on
    headers = {"Authorization": f"Bearer {api.token(user)}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case):
                response = case.call(headers=headers)
                assert_json_error(response)
                case.validate_response(response, checks=CHECKS, headers=headers)

            check()
