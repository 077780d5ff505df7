"""Who a user is, and the lists that fill forms, are read at most once per DIRECTORY_TTL in
a process: fewer reads per request, a bounded delay for changes made in the database."""

from __future__ import annotations

from sqlalchemy import func, insert, select, update

from engine import DIRECTORY_TTL, ServiceDesk
from engine.caching import Expiring
from engine.persistence.models import Membership, Notification, Service, User
from tests.conftest import FAST_HASHER


class Ticking:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_values_expire_after_their_time_and_misses_are_not_kept():
    clock = Ticking()
    cache: Expiring[str, int] = Expiring(10, now=clock)
    assert cache.get("a") is None
    cache.put("a", 1)
    clock.now += 9.9
    assert cache.get("a") == 1
    clock.now += 0.1
    assert cache.get("a") is None
    cache.put("b", 2)
    cache.clear()
    assert cache.get("b") is None


def test_a_cache_of_no_time_keeps_nothing_and_a_full_one_drops_its_oldest():
    none: Expiring[str, int] = Expiring(0)
    none.put("a", 1)
    assert none.get("a") is None
    small: Expiring[int, int] = Expiring(10, size=3)
    for i in range(5):
        small.put(i, i)
    assert [small.get(i) for i in range(5)] == [None, None, 2, 3, 4]


def deactivate(desk, username: str) -> None:
    with desk.db.write() as s:
        s.execute(update(User).where(User.username == username).values(active=False))


def test_a_user_deactivated_in_the_database_is_refused_once_the_cache_is_forgotten(desk):
    assert DIRECTORY_TTL > 0
    assert desk.actor("sam") is not None  # read, and kept
    deactivate(desk, "sam")
    assert desk.actor("sam") is not None  # within DIRECTORY_TTL: as read
    desk.forget_directory()  # what DIRECTORY_TTL seconds do
    assert desk.actor("sam") is None
    assert desk.actor("sam") is None  # a miss is not kept: read again each time


def test_with_no_time_to_live_every_request_reads_the_user(database_url, clock, desk):
    fresh = ServiceDesk(database_url, clock=clock, hasher=FAST_HASHER, directory_ttl=0)
    try:
        assert fresh.actor("sam") is not None
        deactivate(desk, "sam")
        assert fresh.actor("sam") is None
    finally:
        fresh.close()


def test_form_options_are_kept_then_read_again(desk, life):
    number = life.report(as_="alice").number
    sam = desk.actor("sam")

    def services() -> list[str]:
        form = next(t.form for t in desk.tasks(sam).items if t.ticket == number)
        return form["properties"]["service"]["enum"]

    before = services()
    with desk.db.write() as s:
        s.execute(insert(Service).values(key="zz_fax", name="Fax", state="nominal"))
    assert services() == before
    desk.forget_directory()
    assert "zz_fax" in services()


def test_group_members_notified_of_new_tasks_are_kept_then_read_again(desk, life):
    def notified(user_id: int) -> int:
        with desk.db.read() as s:
            return s.scalar(select(func.count()).select_from(Notification)
                            .where(Notification.user_id == user_id))

    life.report(as_="alice")  # the service desk's members are read, and kept
    with desk.db.write() as s:
        newcomer = s.execute(insert(User).values(
            username="nora", name="Nora", email="nora@guichet.example", password_hash="x",
            roles="agent").returning(User.id)).scalar_one()
        s.execute(insert(Membership).values(user_id=newcomer, group_key="service_desk"))
    life.report(as_="alice")
    assert notified(newcomer) == 0  # within DIRECTORY_TTL: the members as read
    desk.forget_directory()
    life.report(as_="alice")
    assert notified(newcomer) == 1
