"""The database goes away: pages and API answer 503 with a clear message (JSON under /api,
an HTML page elsewhere), nothing is half-written, and service resumes on its own when the
database is back.

Everywhere, the outage is the driver refusing to connect (monkeypatched: as root, file
permissions do not stop SQLite). On PostgreSQL (``TEST_DATABASE_URL``) it is real: backends
terminated with ``pg_terminate_backend``, in the middle of a step too, and the server made
unreachable behind a TCP proxy that the test stops and starts again (the real server is
never stopped).
"""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager, suppress

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from engine import audit
from tests.conftest import POSTGRES_URL, QUALIFY_RESOLVE, make_desk
from tests.web.test_access_matrix import TOKEN, page_client
from web import create_app
from web.errors import UNAVAILABLE

CONFIG = {"TESTING": True, "SECRET_KEY": "test-secret", "WTF_CSRF_ENABLED": True}
postgres_only = pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL: set TEST_DATABASE_URL")


def assert_unavailable(response, api: bool) -> None:
    assert response.status_code == 503, (response.status_code, response.get_data(as_text=True))
    assert response.headers["Retry-After"] == "30"
    if api:
        assert response.is_json and response.json == {"error": UNAVAILABLE}
    else:
        assert response.content_type.startswith("text/html")
        assert "Back in a moment" in response.text and "cannot be reached" in response.text
        assert "Traceback" not in response.text and "sqlite" not in response.text.lower()


def check_everything_answers_503(app, alice_pages, token: str, csrf: str) -> None:
    """``csrf``: alice's form token, taken while the database was there."""
    bearer = {"Authorization": f"Bearer {token}"}
    anonymous = app.test_client()
    assert_unavailable(alice_pages.get("/portal"), api=False)
    assert_unavailable(alice_pages.get("/tickets/INC-000001"), api=False)
    assert_unavailable(alice_pages.post("/portal/incidents", data={
        "title": "Lost", "service": "vpn", "csrf_token": csrf}), api=False)
    login_token = TOKEN.search(anonymous.get("/login").text).group(1)  # no database needed
    assert_unavailable(anonymous.post("/login", data={
        "username": "alice", "password": "demo", "csrf_token": login_token}), api=False)
    assert_unavailable(anonymous.get("/api/v1/tickets", headers=bearer), api=True)
    assert_unavailable(anonymous.post("/api/v1/incidents", headers=bearer,
                                      json={"title": "Lost", "service": "vpn"}), api=True)
    assert_unavailable(anonymous.post("/api/v1/token", json={"username": "alice",
                                                             "password": "demo"}), api=True)
    with anonymous.get("/static/guichet.css") as css:
        assert css.status_code == 200


def csrf_of(client) -> str:
    return TOKEN.search(client.get("/status").text).group(1)


def check_everything_works(app, alice_pages, token: str) -> None:
    bearer = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    assert alice_pages.get("/portal").status_code == 200
    assert client.get("/api/v1/tickets", headers=bearer).status_code == 200
    r = client.post("/api/v1/incidents", headers=bearer, json={"title": "Back", "service": "vpn"})
    assert r.status_code == 201, r.json


# -- SQLite (and any database): the driver cannot connect ------------------------------------


def test_unreachable_database_answers_503_then_service_resumes(app, desk, api, life,
                                                                monkeypatch):
    alice_pages, token = page_client(app, "alice"), api.token("alice")
    before = desk.tickets(life.user("admin")).total

    driver = desk.db.engine.dialect.loaded_dbapi  # sqlite3, or psycopg on PostgreSQL

    def refuse(*_args, **_kwargs):
        raise driver.OperationalError("unable to open database file")

    csrf = csrf_of(alice_pages)
    desk.db.engine.dispose()  # pooled connections go; new ones are refused
    monkeypatch.setattr(desk.db.engine.dialect, "connect", refuse)
    check_everything_answers_503(app, alice_pages, token, csrf)
    monkeypatch.undo()
    check_everything_works(app, alice_pages, token)
    assert desk.tickets(life.user("admin")).total == before + 1  # only the one made after


def test_a_connection_lost_inside_a_step_leaves_nothing_half_written(app, desk, api, life,
                                                                     monkeypatch):
    number = api.report(as_="alice")["number"]
    task = api.task_of(number, "qualify")["id"]
    api.token("sam")  # signing in writes to the trail too: before the outage
    head = desk.audit_head()
    real_write = audit.write

    def write_then_lose_the_connection(batch, events):
        real_write(batch, events)  # the step has written its rows when the line drops
        raise OperationalError("INSERT INTO audit_events", {}, Exception("server closed the "
                                                                         "connection"))

    monkeypatch.setattr(audit, "write", write_then_lose_the_connection)
    r = api.post(f"/tasks/{task}/complete", as_="sam", json={"data": QUALIFY_RESOLVE})
    assert_unavailable(r, api=True)
    monkeypatch.undo()
    assert desk.audit_head() == head
    assert desk.verify_audit()[1] is None
    assert life.waits_on(number) == ["qualify"] and life.ticket(number).status == "new"
    api.complete(number, "qualify", as_="sam", data=QUALIFY_RESOLVE)  # and it works now


def test_other_database_errors_stay_500_without_details(app, desk, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    def broken(*_args, **_kwargs):
        raise IntegrityError("INSERT", {}, Exception("duplicate key: secret detail"))

    client = page_client(app, "alice")
    monkeypatch.setattr(desk, "actor", broken)
    r = client.get("/status")
    assert r.status_code == 500 and "secret detail" not in r.text


# -- PostgreSQL: real outages ------------------------------------------------------------------


class TcpProxy:
    """127.0.0.1:port -> the PostgreSQL server; ``stop()`` makes the database unreachable
    (listener and every open connection closed), ``start()`` brings it back on the same
    port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.listener: socket.socket | None = None
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        self._spawn(self._accept, listener)

    def stop(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            sockets, self.sockets = self.sockets, []
        for sock in [s for s in (listener,) if s] + sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self.threads:
            thread.join(timeout=5)
        self.threads = [t for t in self.threads if t.is_alive()]

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is None:
                    client.close()
                    upstream.close()
                    return
                self.sockets += [client, upstream]
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@contextmanager
def app_on(url: str, clock):
    """A second app, with its own engine and pool, on ``url``."""
    desk = make_desk(url, clock)
    try:
        yield create_app(CONFIG, desk=desk), desk
    finally:
        desk.close()


def _with_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def terminate(name: str) -> int:
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            return len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND pid <> pg_backend_pid()"),
                {"name": name}).all())
    finally:
        admin.dispose()


@postgres_only
def test_postgres_backends_terminated_between_requests_are_replaced(desk, clock):
    name = "guichet_outage_between"
    with app_on(_with_name(POSTGRES_URL, name), clock) as (app, _):
        alice_pages = page_client(app, "alice")
        token = app.test_client().post("/api/v1/token", json={
            "username": "alice", "password": "demo"}).json["token"]
        check_everything_works(app, alice_pages, token)
        assert terminate(name) >= 1
        check_everything_works(app, alice_pages, token)  # closed connections are replaced


@postgres_only
def test_postgres_backend_terminated_inside_a_step_leaves_nothing_half_written(desk, clock,
                                                                               life,
                                                                               monkeypatch):
    name = "guichet_outage_inside"
    number = life.report(as_="alice").number
    task = life.task(number, "qualify").id
    head = desk.audit_head()
    with app_on(_with_name(POSTGRES_URL, name), clock) as (app, other):
        token = app.test_client().post("/api/v1/token", json={
            "username": "sam", "password": "demo"}).json["token"]
        head = other.audit_head()
        real_canonical = audit._canonical

        def kill_then_hash(row):  # the step's rows are sent; its audit events are next
            monkeypatch.setattr(audit, "_canonical", real_canonical)
            assert terminate(name) >= 1  # this very connection, mid-transaction
            return real_canonical(row)

        monkeypatch.setattr(audit, "_canonical", kill_then_hash)
        r = app.test_client().post(f"/api/v1/tasks/{task}/complete", json={
            "data": QUALIFY_RESOLVE}, headers={"Authorization": f"Bearer {token}"})
        assert_unavailable(r, api=True)
        assert other.audit_head() == head and other.verify_audit()[1] is None
        assert life.waits_on(number) == ["qualify"] and life.ticket(number).status == "new"
        r = app.test_client().post(f"/api/v1/tasks/{task}/complete", json={
            "data": QUALIFY_RESOLVE}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json["status"] == "resolved"


@postgres_only
def test_postgres_unreachable_answers_503_then_service_resumes(desk, clock):
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_URL)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    try:
        via_proxy = url.set(host="127.0.0.1", port=proxy.port)
        with app_on(via_proxy.render_as_string(hide_password=False), clock) as (app, _):
            alice_pages = page_client(app, "alice")
            token = app.test_client().post("/api/v1/token", json={
                "username": "alice", "password": "demo"}).json["token"]
            check_everything_works(app, alice_pages, token)
            csrf = csrf_of(alice_pages)
            proxy.stop()
            check_everything_answers_503(app, alice_pages, token, csrf)
            proxy.start()
            check_everything_works(app, alice_pages, token)
    finally:
        proxy.stop()
