"""Untrusted input at the edges: uploaded XML (DTDs, external entities, entity expansion),
through the API and the command line, and the size limits of bodies and files."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.conftest import PROCESSES
from web.cli import main

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
_LOLS = '<!ENTITY lol0 "lol">' + "".join(
    f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
HOSTILE = {
    "external entity": f'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                       f'<definitions xmlns="{BPMN}"><process id="incident" name="&x;"/>'
                       f'</definitions>',
    "network entity": f'<!DOCTYPE d [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>'
                      f'<definitions xmlns="{BPMN}"><process id="incident">&x;</process>'
                      f'</definitions>',
    "parameter entity": '<!DOCTYPE d [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
                        f'<definitions xmlns="{BPMN}"/>',
    "external DTD": f'<!DOCTYPE definitions SYSTEM "file:///etc/passwd">'
                    f'<definitions xmlns="{BPMN}"/>',
    "billion laughs": f'<!DOCTYPE d [{_LOLS}]><definitions xmlns="{BPMN}">'
                      f'<process id="incident" name="&lol9;"/></definitions>',
}
ENCODINGS = ["utf-8", "utf-16", "utf-32"]


def encoded(body: str, encoding: str) -> bytes:
    return f'<?xml version="1.0" encoding="{encoding.upper()}"?>\n{body}'.encode(encoding)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_xml_is_refused_by_the_api_and_nothing_is_deployed(api, desk, kind, encoding):
    r = api.post("/processes/incident/versions", as_="olga",
                 data=encoded(HOSTILE[kind], encoding), content_type="application/xml")
    assert r.status_code == 422, r.json
    messages = " ".join(e["message"] for e in r.json["errors"])
    assert "DOCTYPE and ENTITY declarations are not allowed" in messages \
        or "amplification" in messages or "entity" in messages.lower(), messages
    assert "root:" not in r.get_data(as_text=True)  # /etc/passwd never read back
    assert [v.version for v in desk.versions("incident")] == [1]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_hostile_xml_is_refused_by_the_command_line(database_url, desk, monkeypatch, tmp_path,
                                                    encoding):
    monkeypatch.setenv("DATABASE_URL", database_url)
    (tmp_path / "incident.bpmn").write_bytes(encoded(HOSTILE["external entity"], encoding))
    (tmp_path / "forms").symlink_to(PROCESSES / "forms")
    result = CliRunner().invoke(main, ["deploy", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 1 and "nothing deployed" in result.output
    assert "DOCTYPE and ENTITY declarations are not allowed" in result.output \
        or "references external entity" in result.output, result.output
    assert "root:" not in result.output
    assert [v.version for v in desk.versions("incident")] == [1]


def test_xml_larger_than_the_file_limit_is_refused_with_a_message(api, desk):
    xml = (PROCESSES / "incident.bpmn").read_text()
    padded = xml.replace("</bpmn:definitions>", f"<!-- {'x' * 2_200_000} --></bpmn:definitions>")
    r = api.post("/processes/incident/versions", as_="olga", data=padded.encode(),
                 content_type="application/xml")
    assert r.status_code == 422 and "larger than 2048 KiB" in r.json["errors"][0]["message"]
    assert [v.version for v in desk.versions("incident")] == [1]


@pytest.mark.parametrize(("path", "kwargs"), [
    ("/api/v1/processes/incident/versions", {"content_type": "application/xml"}),
    ("/api/v1/incidents", {"content_type": "application/json"}),
    ("/api/v1/token", {"content_type": "application/json"}),
])
def test_bodies_over_the_request_limit_get_a_413_json_error(api, path, kwargs):
    headers = {"Authorization": f"Bearer {api.token('olga')}"}
    r = api.client.post(path, data=b" " * (4 * 1024 * 1024 + 1), headers=headers, **kwargs)
    assert r.status_code == 413 and r.is_json
    assert r.json["error"] == "The request body is larger than the limit of 4 MiB."


def test_a_page_post_over_the_limit_gets_a_413_page(client):
    r = client.post("/portal/incidents", data={"title": "x" * (4 * 1024 * 1024 + 1)})
    assert r.status_code == 413
    assert "Too much data" in r.text and r.content_type.startswith("text/html")


HUGE = "329544189182790810468352"  # more than any database integer holds


@pytest.mark.parametrize(("path", "as_", "status"), [
    (f"/api/v1/tickets?page={HUGE}", "sam", 422),
    (f"/api/v1/tasks?page={HUGE}", "sam", 422),
    (f"/api/v1/tasks?per_page={HUGE}", "sam", 422),
    ("/api/v1/tickets?page=" + "9" * 5000, "sam", 422),
    (f"/api/v1/processes/incident/versions/{HUGE}/xml", "sam", 404),
    (f"/api/v1/processes/incident/versions/{2**31}/xml", "sam", 404),
])
def test_numbers_too_large_for_the_database_are_refused_not_crashed(api, path, as_, status):
    """Found by schemathesis: these answered 500 (OverflowError in the driver)."""
    r = api.client.get(path, headers={"Authorization": f"Bearer {api.token(as_)}"})
    assert r.status_code == status and r.json["error"]


def test_a_failure_id_too_large_is_not_found(api):
    r = api.post(f"/admin/failures/{HUGE}/retry", as_="admin")
    assert r.status_code == 404 and r.json["error"]
