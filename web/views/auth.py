"""Signing in and out: the session cookie holds the user name, nothing else.

Refused sign-ins are counted per user name and per client address (engine/throttle.py):
past the limit the page answers 429 with ``Retry-After`` and does not check the password.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for

from engine.throttle import Throttled

from ..facade import desk
from .common import home_for, safe_next

bp = Blueprint("auth", __name__)


@bp.get("/")
def root():
    if g.user is None:
        return redirect(url_for("auth.login"))
    return redirect(home_for(g.user))


@bp.route("/login", methods=["GET", "POST"])
def login():
    target = safe_next(request.values.get("next"))
    if request.method == "GET" and g.user is not None:
        return redirect(target or home_for(g.user))
    username, error, headers = "", None, {}
    if request.method == "POST":
        username = (request.form.get("username") or "").strip()
        password = request.form.get("password") or ""
        try:
            actor = desk().authenticate(username, password, address=request.remote_addr) \
                if username and password else None
        except Throttled as err:
            error, headers = err.message, {"Retry-After": str(err.retry_after)}
        else:
            if actor is None:
                error = "Unknown user name or wrong password."
            elif actor.roles <= {"monitor"}:
                error = "This account is for the event API only; it cannot sign in here."
            else:
                session.clear()
                session["user"] = actor.username
                return redirect(target or home_for(actor))
    status = 429 if headers else 401 if error else 200
    return render_template("auth/login.html", username=username, error=error,
                           next=target or ""), status, headers


@bp.post("/logout")
def logout():
    session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("auth.login"))
