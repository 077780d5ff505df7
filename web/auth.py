"""Bearer tokens for the API: signed, expiring, bound to the user name."""

from __future__ import annotations

import time
from functools import wraps

from flask import current_app, g, has_request_context, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from engine import Actor, Expiring

from .facade import desk

SALT = "guichet-api-token"


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def issue_token(actor: Actor) -> str:
    return _signer().dumps({"u": actor.username})


def actor_from_token(token: str) -> Actor | None:
    """The active user a token names; read once per request (``before_request`` checks and
    the view ask for the same token), never remembered beyond it."""
    if not has_request_context():
        return _actor_from_token(token)
    memo: dict[str, Actor | None] = request.environ.setdefault("guichet.token_actors", {})
    if token not in memo:
        memo[token] = _actor_from_token(token)
    return memo[token]


def _actor_from_token(token: str) -> Actor | None:
    username = _username_of(token)
    return desk().actor(username) if username is not None else None


def _username_of(token: str) -> str | None:
    """The user a valid, unexpired token names. A signature, once checked, is remembered
    for a few minutes (checking it took about 8 % of an inbox read's CPU under load); its
    age is checked on every use."""
    verified: Expiring[str, tuple[str, float]] = current_app.extensions["guichet.tokens"]
    known = verified.get(token)
    if known is None:
        try:
            payload, signed = _signer().loads(token, max_age=current_app.config["TOKEN_MAX_AGE"],
                                              return_timestamp=True)
        except BadSignature:
            return None
        known = (str(payload.get("u", "")), signed.timestamp())
        verified.put(token, known)
    username, signed_at = known
    if time.time() - signed_at > current_app.config["TOKEN_MAX_AGE"]:
        return None
    return username


def remember_tokens(app) -> None:
    """Give ``app`` the cache of checked token signatures."""
    app.extensions["guichet.tokens"] = Expiring(300, size=10_000)


class Unauthorized(Exception):
    """No valid bearer token (401)."""


def token_required(view):
    """Resolve ``Authorization: Bearer`` into ``g.actor`` or answer 401."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        actor = actor_from_token(token.strip()) if scheme.lower() == "bearer" and token else None
        if actor is None:
            raise Unauthorized()
        g.actor = actor
        return view(*args, **kwargs)

    return wrapper
