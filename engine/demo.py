"""The demo directory of CONTRACT.md: users, groups, services and the catalog (idempotent)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from .directory import HASHER, hash_password
from .persistence.models import CatalogItem, Group, Membership, Service, User

DEMO_PASSWORD = "demo"
GROUPS = [
    ("service_desk", "Service desk", 1),
    ("network", "Network", 2),
    ("applications", "Applications", 2),
    ("managers", "Managers", 0),  # level 0: not a target of functional escalation
]
USERS = [
    # username, name, roles, groups
    ("alice", "Alice Martin", "requester", []),
    ("bob", "Bob Durand", "requester", []),
    ("sam", "Sam Leroy", "agent", ["service_desk"]),
    ("nina", "Nina Petit", "agent", ["network"]),
    ("apu", "Apu Nair", "agent", ["applications"]),
    ("max", "Max Moreau", "manager", ["managers"]),
    ("olga", "Olga Ivanova", "process_owner", []),
    ("aude", "Aude Bernard", "auditor", []),
    ("admin", "Administrator", "admin", []),
    ("monitor", "Monitoring", "monitor", []),
]


def seed(session: Session, processes: Path, hasher=HASHER) -> dict[str, int]:
    """Create what is missing; never touch what exists. Returns counts of created rows."""
    created = {"groups": 0, "users": 0, "services": 0, "catalog": 0}
    for key, name, level in GROUPS:
        if session.get(Group, key) is None:
            session.add(Group(key=key, name=name, level=level))
            created["groups"] += 1
    session.flush()
    for username, name, roles, groups in USERS:
        if session.scalars(select(User).where(User.username == username)).first() is not None:
            continue
        user = User(username=username, name=name, email=f"{username}@guichet.example",
                    password_hash=hash_password(DEMO_PASSWORD, hasher), roles=roles)
        session.add(user)
        session.flush()
        session.add_all(Membership(user_id=user.id, group_key=g) for g in groups)
        created["users"] += 1
    for svc in json.loads((processes / "services.json").read_text())["services"]:
        if session.get(Service, svc["key"]) is None:
            session.add(Service(key=svc["key"], name=svc["name"], state="nominal"))
            created["services"] += 1
    for item in json.loads((processes / "catalog.json").read_text())["items"]:
        if session.get(CatalogItem, item["key"]) is None:
            session.add(CatalogItem(
                key=item["key"], name=item["name"], description=item.get("description", ""),
                needs_approval=item["needs_approval"], auto_accept=item["auto_accept"],
                auto_fulfil=item.get("auto_fulfil", False),
                fulfilment_group=item["fulfilment_group"], form=json.dumps(item["form"]),
            ))
            created["catalog"] += 1
    return created
