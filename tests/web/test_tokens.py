"""API tokens: signed, expiring; a checked signature is remembered, its age never."""

from __future__ import annotations

import time

from itsdangerous import TimestampSigner

import web.auth


class _Later:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def time(self) -> float:
        return time.time() + self.seconds


def test_a_token_expires_even_after_its_signature_was_checked(app, api, monkeypatch):
    token = api.token("sam")
    assert api.get("/tasks", as_="sam").status_code == 200  # checked, and remembered
    max_age = app.config["TOKEN_MAX_AGE"]
    monkeypatch.setattr(web.auth, "time", _Later(max_age - 60))
    assert api.get("/tasks", as_="sam").status_code == 200
    monkeypatch.setattr(web.auth, "time", _Later(max_age + 60))
    r = api.client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_an_expired_token_is_refused_the_first_time_it_is_seen(app, api, monkeypatch):
    token = api.token("sam")
    later = int(time.time()) + app.config["TOKEN_MAX_AGE"] + 60
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    r = api.client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_a_tampered_token_is_refused_even_next_to_a_remembered_one(api):
    token = api.token("sam")
    assert api.get("/tasks", as_="sam").status_code == 200
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    r = api.client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
