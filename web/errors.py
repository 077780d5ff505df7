"""Error answers outside the API's own handlers: JSON under /api, HTML pages elsewhere."""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

from .facade import desk

log = logging.getLogger("guichet.web")


def audit_refusal(reason: str) -> None:
    """Record a refused action (403) in the audit trail; never fail the answer for it."""
    actor = g.get("actor") or g.get("user")
    try:
        desk().record_refusal(actor, f"{request.method} {request.path}", reason)
    except Exception:
        log.exception("could not audit a refusal on %s", request.path)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        if err.code == 403:
            audit_refusal(err.description or err.name)
        return _answer(err.code or 500, err.description or err.name)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _answer(500, InternalServerError.description)


def _answer(status: int, message: str):
    if request.path.startswith("/api/"):
        return jsonify(error=message), status
    try:
        from .views.common import error_page

        return error_page(status, message)
    except Exception:  # the error page itself failed: plain text, never a stack trace
        log.exception("error page %s failed on %s", status, request.path)
        return message, status, {"Content-Type": "text/plain; charset=utf-8"}
