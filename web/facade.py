"""How the web reaches the engine: the one ServiceDesk of the current app."""

from __future__ import annotations

from flask import current_app

from engine import ServiceDesk


def desk() -> ServiceDesk:
    return current_app.extensions["guichet"]
