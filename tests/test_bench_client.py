"""The benchmark's bare HTTP client: an answer cut short or garbled is an error, never a
success (the load test counts on it to find lost completions)."""

from __future__ import annotations

import http.client

import msgspec
import pytest

from bench.http_bench import _response, read_inbox

pytestmark = pytest.mark.db_agnostic


def test_a_whole_answer_gives_its_status_and_body():
    answer = b"HTTP/1.1 409 CONFLICT\r\nContent-Length: 13\r\n\r\n{\"error\":\"x\"}"
    assert _response(answer) == (409, b'{"error":"x"}')


def test_an_answer_cut_short_is_an_error():
    with pytest.raises(http.client.IncompleteRead):
        _response(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"items\":")


@pytest.mark.parametrize("answer", [b"garbage", b"HTTP/1.1 OK\r\n\r\n"])
def test_no_status_line_is_an_error(answer):
    with pytest.raises(http.client.BadStatusLine):
        _response(answer)


def test_a_connection_closed_without_an_answer_is_a_reset():
    with pytest.raises(ConnectionResetError):  # an OSError, as http.client raises it
        _response(b"")


def test_the_inbox_is_read_for_id_name_and_ticket_only():
    page = (b'{"items":[{"id":"t1","name":"qualify","title":"Qualify","ticket":"INC-000001",'
            b'"form":{"type":"object","properties":{"a":{"enum":[1,2]}}}}],"total":1}')
    inbox = read_inbox(page)
    assert [(t.id, t.name, t.ticket) for t in inbox.items] == [("t1", "qualify", "INC-000001")]
    with pytest.raises(msgspec.ValidationError):
        read_inbox(b'{"items":[{"id":"t1"}]}')
