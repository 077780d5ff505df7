"""Fixtures for the web layer: the app on the test engine, and an API client per user."""

from __future__ import annotations

import re
from typing import Any

import pytest

from web import create_app


@pytest.fixture
def app(desk, tmp_path):
    return create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                       "WTF_CSRF_ENABLED": True}, desk=desk)


@pytest.fixture
def client(app):
    return app.test_client()


class Api:
    """``api.post("/incidents", as_="alice", json={...})`` with tokens fetched on demand."""

    def __init__(self, client) -> None:
        self.client = client
        self.tokens: dict[str, str] = {}

    def token(self, username: str) -> str:
        if username not in self.tokens:
            r = self.client.post("/api/v1/token", json={"username": username, "password": "demo"})
            assert r.status_code == 200, r.json
            self.tokens[username] = r.json["token"]
        return self.tokens[username]

    def _headers(self, as_: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(as_)}"} if as_ else {}

    def get(self, path: str, as_: str | None, **kw: Any):
        return self.client.get(f"/api/v1{path}", headers=self._headers(as_), **kw)

    def post(self, path: str, as_: str | None, **kw: Any):
        headers = {**self._headers(as_), **kw.pop("headers", {})}
        return self.client.post(f"/api/v1{path}", headers=headers, **kw)

    def report(self, as_: str = "alice", **fields: Any) -> dict[str, Any]:
        body = {"title": "Mail does not sync", "description": "Since 9am", "service": "email",
                **fields}
        r = self.post("/incidents", as_=as_, json=body)
        assert r.status_code == 201, r.json
        return r.json

    def task_of(self, number: str, name: str, as_: str = "admin") -> dict[str, Any]:
        tasks = self.get(f"/tickets/{number}", as_=as_).json["tasks"]
        found = [t for t in tasks if t["name"] == name]
        assert found, f"{number} waits on {[t['name'] for t in tasks]}, not {name}"
        return found[0]

    def complete(self, number: str, name: str, as_: str, data: dict[str, Any],
                 expect: int = 200) -> dict[str, Any]:
        task = self.task_of(number, name)
        r = self.post(f"/tasks/{task['id']}/complete", as_=as_, json={"data": data})
        assert r.status_code == expect, r.json
        return r.json


@pytest.fixture
def api(client) -> Api:
    return Api(client)


def assert_csp_ready(html: str, path: str) -> None:
    """The page runs under a strict CSP (no inline style, script or handler) and its ids are
    unique with every label bound to a field."""
    assert not re.search(r"\sstyle=", html), path
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html), path
    assert not re.search(r"<[^>]+\son[a-z]+=", html), path
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), (path, sorted({i for i in ids if ids.count(i) > 1}))
    for target in re.findall(r'<label[^>]*\sfor="([^"]+)"', html):
        assert target in ids, (path, target)
