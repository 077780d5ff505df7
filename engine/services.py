"""Service task operators the processes may call (an allow-list: nothing else runs)."""

from __future__ import annotations

from typing import Any

from .outbox import notify


def fulfil_item(context: dict[str, Any], item: str) -> dict[str, Any]:
    """Automatic fulfilment of standard items.

    Guichet has no directory connector yet: for ``password_reset`` it records that the
    reset was issued to the account named in the order; a deployment wires the real
    identity system here.
    """
    fields = context.get("fields") or {}
    if item == "password_reset":
        account = fields.get("account") or context.get("requester")
        return {"done": True, "summary": f"password reset issued for account {account}"}
    return {"done": False, "summary": f"no automatic fulfilment for {item}"}


SERVICE_OPERATORS = {"fulfil_item": fulfil_item, "notify": notify}
