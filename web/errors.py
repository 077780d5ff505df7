"""Error answers outside the API's own handlers: JSON under /api, HTML pages elsewhere."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger("guichet.web")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
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
