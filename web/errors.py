"""Error answers outside the API's own handlers: JSON under /api, HTML pages elsewhere.

Two answers come with ``Retry-After``: 429 after too many refused sign-ins, and 503 while
the database cannot be reached (every change is one transaction, so a request that failed
then left nothing half-written; the pool checks connections before use, so service resumes
on its own when the database is back).
"""

from __future__ import annotations

import logging

from flask import Flask, abort, current_app, g, jsonify, make_response, request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError

from engine.throttle import Throttled

from .facade import desk

log = logging.getLogger("guichet.web")
UNAVAILABLE = ("The service is unavailable for a moment: its database cannot be reached. "
               "Please try again in a minute.")
TITLES = {429: "Too many attempts", 503: "Back in a moment"}


def audit_refusal(reason: str) -> None:
    """Record a refused action (403) in the audit trail; never fail the answer for it."""
    actor = g.get("actor") or g.get("user")
    try:
        desk().record_refusal(actor, f"{request.method} {request.path}", reason)
    except Exception:
        log.exception("could not audit a refusal on %s", request.path)


def refuse_large_bodies() -> None:
    """413 with the limit named, before anything (CSRF check included) reads the body."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit and (request.content_length or 0) > limit:
        abort(413, f"The request body is larger than the limit of {limit / 2**20:g} MiB.")


def register_error_handlers(app: Flask) -> None:
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_large_bodies)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        if err.code == 403:
            audit_refusal(err.description or err.name)
        return _answer(err.code or 500, err.description or err.name)

    @app.errorhandler(Throttled)
    def _throttled(err: Throttled):
        return _answer(429, err.message, {"Retry-After": str(err.retry_after)})

    @app.errorhandler(DBAPIError)
    @app.errorhandler(PoolTimeout)
    def _database_error(err: Exception):
        if isinstance(err, DBAPIError) and not _unreachable(err):
            return _unexpected(err)
        log.error("database unavailable on %s %s: %s", request.method, request.path,
                  str(err).splitlines()[0] if str(err) else type(err).__name__)
        return _answer(503, UNAVAILABLE, {"Retry-After": "30"})

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _answer(500, InternalServerError.description)


def _unreachable(err: DBAPIError) -> bool:
    """Lost or refused connections (and SQLite files that cannot be opened), not bugs."""
    return err.connection_invalidated or isinstance(err, OperationalError | InterfaceError)


def _answer(status: int, message: str, headers: dict[str, str] | None = None):
    if request.path.startswith("/api/"):
        response = make_response(jsonify(error=message), status)
    else:
        try:
            from .views.common import error_page

            response = make_response(error_page(status, message, TITLES.get(status)))
        except Exception:  # the error page itself failed: plain text, never a stack trace
            log.exception("error page %s failed on %s", status, request.path)
            response = make_response(
                (message, status, {"Content-Type": "text/plain; charset=utf-8"}))
    response.headers.update(headers or {})
    return response
