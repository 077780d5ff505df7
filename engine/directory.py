"""Users, groups, services and the catalog: the reference data around tickets."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import bindparam, literal, literal_column, select, union_all
from sqlalchemy.orm import Session

from .caching import Expiring
from .dto import Actor, CatalogItemInfo, GroupInfo, ServiceInfo
from .persistence.models import CatalogItem, Group, Membership, Service, User

V = TypeVar("V")

# Argon2id, memory-hard; the library's defaults follow RFC 9106's recommendations.
HASHER = PasswordHasher()
# A hash to verify against when the user does not exist, so timing does not tell.
_DUMMY_HASH = HASHER.hash("guichet-dummy")


def hash_password(password: str, hasher: PasswordHasher = HASHER) -> str:
    return hasher.hash(password)


def check_password(user: User | None, password: str, hasher: PasswordHasher = HASHER) -> bool:
    try:
        return hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and (
            user is not None and user.active
        )
    except (VerifyMismatchError, InvalidHashError):
        return False


def user_by_name(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).first()


def active_actor(session: Session, username: str) -> Actor | None:
    """The active user named ``username`` with their groups, in one query (every request
    asks it), or None."""
    rows = session.execute(_ACTIVE_ACTOR, {"username": username}).all()
    if not rows:
        return None
    user_id, name, roles, full_name, email, _ = rows[0]
    return Actor(username=name, roles=frozenset(roles.split()),
                 groups=frozenset(row.group_key for row in rows if row.group_key),
                 name=full_name, email=email, user_id=user_id)


_ACTIVE_ACTOR = (
    select(User.id, User.username, User.roles, User.name, User.email, Membership.group_key)
    .outerjoin(Membership, Membership.user_id == User.id)
    .where(User.username == bindparam("username"), User.active.is_(True)))


def groups(session: Session) -> list[GroupInfo]:
    rows = session.scalars(select(Group).order_by(Group.level, Group.key)).all()
    return [GroupInfo(g.key, g.name, g.level) for g in rows]


def services(session: Session) -> list[ServiceInfo]:
    rows = session.scalars(select(Service).order_by(Service.name)).all()
    return [ServiceInfo(s.key, s.name, s.state) for s in rows]


def catalog_item_info(item: CatalogItem) -> CatalogItemInfo:
    return CatalogItemInfo(
        key=item.key, name=item.name, description=item.description,
        needs_approval=item.needs_approval, auto_accept=item.auto_accept,
        auto_fulfil=item.auto_fulfil, fulfilment_group=item.fulfilment_group,
        form=json.loads(item.form),
    )


def catalog(session: Session) -> list[CatalogItemInfo]:
    rows = session.scalars(
        select(CatalogItem).where(CatalogItem.active.is_(True)).order_by(CatalogItem.name)
    ).all()
    return [catalog_item_info(i) for i in rows]


class FormOptions(Mapping[str, list[tuple[str, str]]]):
    """Live values for ``x-options`` form fields, read only when a form asks for them."""

    SOURCES = ("groups", "services")

    def __init__(self, session: Session) -> None:
        self._session = session
        self._loaded: dict[str, list[tuple[str, str]]] = {}

    def __getitem__(self, source: str) -> list[tuple[str, str]]:
        if source not in self.SOURCES:
            raise KeyError(source)
        if not self._loaded:
            self._loaded = cached(self._session, _OPTIONS_KEY, self._read)
        return self._loaded[source]

    def _read(self) -> dict[str, list[tuple[str, str]]]:
        loaded: dict[str, list[tuple[str, str]]] = {name: [] for name in self.SOURCES}
        for name, key, title, _level, _order in self._session.execute(_OPTIONS):  # one trip
            loaded[name].append((key, title))
        return loaded

    def __iter__(self) -> Iterator[str]:
        return iter(self.SOURCES)

    def __len__(self) -> int:
        return len(self.SOURCES)


_OPTIONS = union_all(
    # not managers (level 0): no functional target
    select(literal("groups"), Group.key, Group.name, Group.level, Group.key)
    .where(Group.level > 0),
    select(literal("services"), Service.key, Service.name, literal(0), Service.name),
).order_by(literal_column("4"), literal_column("5"))


_OPTIONS_KEY = ("form options",)
# The key under which a unit of work's ``session.info`` carries the desk's directory cache.
CACHE = "guichet.directory"


def cached(session: Session, key: tuple, read: Callable[[], V]) -> V:
    """``read()``, or what it returned less than the directory's time-to-live ago (when the
    session carries the cache)."""
    cache: Expiring | None = session.info.get(CACHE)
    value = cache.get(key) if cache is not None else None
    if value is None:
        value = read()
        if cache is not None:
            cache.put(key, value)
    return value


def form_options(session: Session) -> FormOptions:
    """The live option lists of forms (read through the session's directory cache)."""
    return FormOptions(session)
