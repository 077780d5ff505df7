"""Sessions and the browser: sign-in throttling, password hashing, cookie flags, CSRF on every
state-changing form, security headers on every route."""

from __future__ import annotations

import re

from argon2 import PasswordHasher, Type

from engine import directory
from engine.throttle import PER_ADDRESS, PER_USERNAME
from tests.conftest import make_desk
from tests.web.test_access_matrix import (
    RULES,
    TOKEN,
    Call,
    Ctx,
    fill,
    page_client,
    routes,
)
from web import create_app

CONFIG = {"TESTING": True, "SECRET_KEY": "test-secret", "WTF_CSRF_ENABLED": True}
HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
           "Referrer-Policy": "same-origin"}


def login(client, username: str, password: str, address: str = "127.0.0.1"):
    token = TOKEN.search(client.get("/login").text).group(1)
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token},
                       environ_base={"REMOTE_ADDR": address})


def token(client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post("/api/v1/token", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


# -- throttling ------------------------------------------------------------------------------


def test_sign_in_is_throttled_per_user_name_on_pages_and_api(client, clock, desk, life):
    for _ in range(PER_USERNAME):
        assert login(client, "alice", "guess").status_code == 401
    r = login(client, "alice", "demo")  # even the right password: not checked any more
    assert r.status_code == 429 and r.headers["Retry-After"] == "300"
    assert "Too many failed sign-ins" in r.text and "Try again in 5 minutes" in r.text
    assert 'value="alice"' in r.text  # the form is shown again, user name kept
    r = token(client, "alice", "demo")
    assert r.status_code == 429 and r.headers["Retry-After"] == "300"
    assert r.is_json and "Too many failed sign-ins" in r.json["error"]
    assert login(client, "bob", "demo").status_code == 302  # others are not locked out
    clock.advance(minutes=2)
    assert token(client, "alice", "demo").headers["Retry-After"] == "180"
    clock.advance(minutes=3, seconds=1)
    assert token(client, "alice", "demo").status_code == 200
    aude = life.user("aude")
    assert desk.audit_events(aude, action="sign_in_refused").total == PER_USERNAME
    assert desk.audit_events(aude, action="sign_in_throttled").total == 3


def test_throttled_attempts_do_not_extend_the_lock(client, clock):
    for _ in range(PER_USERNAME):
        token(client, "sam", "guess")
    for _ in range(10):
        clock.advance(seconds=20)
        assert token(client, "sam", "guess").status_code == 429
    clock.advance(seconds=101)  # five minutes after the fifth refusal
    assert token(client, "sam", "demo").status_code == 200


def test_a_successful_sign_in_resets_the_count_for_the_user_name(client):
    for _ in range(PER_USERNAME - 1):
        assert token(client, "nina", "guess").status_code == 401
    assert token(client, "nina", "demo").status_code == 200
    for _ in range(PER_USERNAME - 1):
        assert token(client, "nina", "guess").status_code == 401
    assert token(client, "nina", "demo").status_code == 200


def test_sign_in_is_throttled_per_client_address(client):
    for n in range(PER_ADDRESS):
        assert token(client, f"user{n}", "guess", address="203.0.113.9").status_code == 401
    r = login(client, "max", "demo", address="203.0.113.9")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 300
    assert token(client, "max", "demo", address="198.51.100.4").status_code == 200
    assert login(client, "max", "demo", address="198.51.100.4").status_code == 302


def test_behind_a_trusted_proxy_the_forwarded_address_is_counted(desk, monkeypatch):
    monkeypatch.setenv("GUICHET_TRUSTED_PROXIES", "1")
    client = create_app(CONFIG, desk=desk).test_client()
    for n in range(PER_ADDRESS):
        client.post("/api/v1/token", json={"username": f"u{n}", "password": "x"},
                    headers={"X-Forwarded-For": "203.0.113.50"})
    assert client.post("/api/v1/token", json={"username": "max", "password": "demo"},
                       headers={"X-Forwarded-For": "203.0.113.50"}).status_code == 429
    assert client.post("/api/v1/token", json={"username": "max", "password": "demo"},
                       headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 200


def test_the_count_is_shared_by_every_web_process(database_url, clock, desk, client):
    """Two apps on two engines (two processes in production) over one database."""
    other = make_desk(database_url, clock)
    try:
        second = create_app(CONFIG, desk=other).test_client()
        for n in range(PER_USERNAME):
            target = client if n % 2 else second
            assert token(target, "apu", "guess").status_code == 401
        assert token(second, "apu", "demo").status_code == 429
        assert token(client, "apu", "demo").status_code == 429
    finally:
        other.close()


# -- passwords, cookies ------------------------------------------------------------------------


def test_passwords_are_hashed_with_argon2id(desk):
    from engine.persistence.models import User

    hasher = directory.HASHER
    assert hasher.type is Type.ID
    assert hasher.memory_cost >= 19 * 1024 and hasher.time_cost >= 2  # RFC 9106 / OWASP floor
    stored = directory.hash_password("correct horse", hasher)
    assert stored.startswith("$argon2id$v=19$") and "correct horse" not in stored
    assert stored != directory.hash_password("correct horse", hasher)  # salted
    assert hasher.verify(stored, "correct horse")
    with desk.db.read() as s:
        hashes = [u.password_hash for u in s.query(User).all()]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert not any("demo" in h for h in hashes)


def test_an_unknown_user_costs_one_hash_verification_too():
    calls = []

    class Counting(PasswordHasher):
        def verify(self, hash, password):
            calls.append(hash)
            return super().verify(hash, password)

    fast = Counting(time_cost=1, memory_cost=64, parallelism=1)
    assert directory.check_password(None, "whatever", fast) is False
    assert len(calls) == 1


def test_session_cookie_is_secure_httponly_and_samesite(desk, monkeypatch):
    monkeypatch.delenv("GUICHET_INSECURE_COOKIES", raising=False)
    app = create_app({"TESTING": True, "SECRET_KEY": "s"}, desk=desk)
    client = app.test_client()
    r = login(client, "alice", "demo")
    assert r.status_code == 302
    cookie = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith("session="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"secure", "httponly", "samesite"} <= flags
    assert "SameSite=Lax" in cookie
    session = cookie.split(";")[0].split("=", 1)[1]
    assert "demo" not in session  # the cookie holds the user name only, signed


# -- CSRF and headers on every route -------------------------------------------------------------


def _roles_allowed(method: str, rule: str) -> str:
    allowed = RULES[(method, rule)].allowed
    return next(r for r in ("admin", "olga", "alice", "sam") if r in allowed)


def test_every_state_changing_page_route_refuses_a_missing_or_forged_csrf_token(app, life, desk):
    from tests.web.test_access_matrix import World

    ticket = life.report(as_="alice")
    world = World(ticket.number, life.task(ticket, "qualify").id, ticket.title)
    checked = []
    for method, rule in routes(app):
        if method in ("GET", "HEAD", "OPTIONS") or rule.startswith("/api/"):
            continue
        role = _roles_allowed(method, rule)
        client = page_client(app, role)
        spec = RULES[(method, rule)]
        call = spec.call(Ctx(world, role, life, client)) if spec.call else Call(fill(rule, world))
        for forged in (None, "forged-token"):
            kwargs = {**call.kwargs}
            headers = {k: v for k, v in kwargs.pop("headers", {}).items() if k != "X-CSRFToken"}
            if "data" in kwargs:
                kwargs["data"] = {k: v for k, v in kwargs["data"].items() if k != "csrf_token"}
                if forged:
                    kwargs["data"]["csrf_token"] = forged
            elif forged:
                headers["X-CSRFToken"] = forged
            before = desk.audit_head()
            with client.open(call.path, method=method, headers=headers, **kwargs) as r:
                assert r.status_code == 400, (method, call.path, forged, r.status_code)
                assert "CSRF" in r.get_data(as_text=True), (method, call.path)
            assert desk.audit_head() == before, (method, call.path)  # nothing happened
        checked.append(rule)
    assert "/portal/incidents" in checked and "/logout" in checked and "/login" in checked


def test_security_headers_on_every_route_and_error(app, life):
    from tests.web.test_access_matrix import World

    ticket = life.report(as_="alice")
    world = World(ticket.number, life.task(ticket, "qualify").id, ticket.title)
    clients = {"anonymous": app.test_client(), "admin": page_client(app, "admin")}
    paths = [fill(rule, world) for method, rule in routes(app) if method == "GET"]
    paths += ["/no/such/page", "/api/v1/no-such-thing", "/api/v1/tickets"]
    for who, client in clients.items():
        for path in paths:
            with client.get(path) as r:
                for name, value in HEADERS.items():
                    assert r.headers.get(name) == value, (who, path, name)
                csp = r.headers["Content-Security-Policy"]
                assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
                assert "object-src 'none'" in csp, (who, path)
                if r.content_type.startswith("text/html"):
                    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", r.text), path
