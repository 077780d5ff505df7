"""The browser pages: one blueprint per area, server-rendered with Jinja2."""

from __future__ import annotations

from flask import Flask

from .common import load_user, register_error_pages, register_template_helpers

__all__ = ["load_user", "register_views"]


def register_views(app: Flask) -> None:
    """Register the page blueprints, their error pages and template helpers."""
    from .. import vendor
    from . import admin, audit, auth, desk, notifications, portal, processes, status, tickets

    for module in (auth, portal, desk, tickets, status, audit, processes, notifications, admin):
        app.register_blueprint(module.bp)
    app.register_blueprint(vendor.bp)
    register_error_pages(app)
    register_template_helpers(app)
