"""Guichet's web front: the Flask app factory."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from engine import DIRECTORY_TTL, ServiceDesk

from .auth import remember_tokens
from .errors import register_error_handlers
from .json import FastJSONProvider

csrf = CSRFProtect()
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROCESSES = ROOT / "processes"


def default_database_url(instance_path: str) -> str:
    return os.environ.get("DATABASE_URL") or f"sqlite:///{Path(instance_path) / 'guichet.db'}"


def create_app(test_config: dict[str, Any] | None = None,
               desk: ServiceDesk | None = None) -> Flask:
    """Build the app; ``desk`` lets tests share one engine with the app."""
    app = Flask(__name__, instance_relative_config=True)
    app.json = FastJSONProvider(app)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(
        SECRET_KEY=_secret_key(app.instance_path),
        DATABASE_URL=default_database_url(app.instance_path),
        MAX_CONTENT_LENGTH=4 * 1024 * 1024,
        TOKEN_MAX_AGE=12 * 3600,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("GUICHET_INSECURE_COOKIES") != "1",
    )
    if test_config:
        app.config.from_mapping(test_config)
    app.extensions["guichet"] = desk or ServiceDesk(
        app.config["DATABASE_URL"], pool_size=int(os.environ.get("GUICHET_POOL_SIZE", "5")),
        directory_ttl=float(os.environ.get("GUICHET_DIRECTORY_TTL", DIRECTORY_TTL)))
    csrf.init_app(app)
    remember_tokens(app)
    _register_blueprints(app)
    register_error_handlers(app)
    app.after_request(_security_headers)
    proxies = int(os.environ.get("GUICHET_TRUSTED_PROXIES") or 0)
    if proxies:  # behind N reverse proxies: the client address and scheme are theirs to tell
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    return app


# Scripts only from our own origin (no inline script anywhere); styles may be set by
# bpmn-js at run time; the bpmn.io watermark is a data: image.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def _register_blueprints(app: Flask) -> None:
    from .api import bp as api_bp

    csrf.exempt(api_bp)  # bearer tokens are never sent by a browser on its own
    app.register_blueprint(api_bp)

    from .views import load_user, register_views

    app.before_request(load_user)  # g.user: the signed-in actor of the pages, or None
    register_views(app)

    from .views import reports

    app.register_blueprint(reports.bp)  # /reports: KPIs and charts (managers, auditors)


def _secret_key(instance_path: str) -> str:
    """SECRET_KEY from the environment, or one generated once per instance folder."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
