"""The requesters' portal: report an incident, order from the catalog."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from engine import CatalogItemInfo, ValidationFailed

from .. import forms
from ..facade import desk
from .common import may_report, require_login

bp = Blueprint("portal", __name__, url_prefix="/portal")
bp.before_request(require_login)


@bp.get("")
def index():
    return _portal()


@bp.post("/incidents")
def report():
    actor = g.user
    values = {k: (request.form.get(k) or "") for k in ("title", "description", "service")}
    try:
        ticket = desk().open_incident(actor, values["title"], values["description"],
                                      values["service"] or None, channel="portal")
    except ValidationFailed as err:
        return _portal(values, err.errors), 422
    flash(f"{ticket.number} recorded: {ticket.title}. The service desk will look at it; "
          "follow its progress here.", "success")
    return redirect(url_for("tickets.detail", number=ticket.number))


@bp.route("/order/<item>", methods=["GET", "POST"])
def order(item: str):
    actor = g.user
    catalog_item = _item(item)
    title, values, errors = "", {}, {}
    if request.method == "POST":
        title = request.form.get("ticket_title") or ""
        values = request.form.to_dict()
        data = forms.parse(catalog_item.form, request.form)
        try:
            ticket = desk().order(actor, catalog_item.key, title, data)
        except ValidationFailed as err:
            errors = dict(err.errors)
        else:
            flash(f"{ticket.number} recorded: {ticket.title}. Follow its progress here.",
                  "success")
            return redirect(url_for("tickets.detail", number=ticket.number))
    fields = forms.fields(catalog_item.form, values, forms.errors_for(errors, "fields."))
    return render_template("portal/order.html", item=catalog_item, fields=fields,
                           ticket_title=title, title_error=errors.get("title", ""),
                           other_errors=_unplaced(errors, catalog_item),
                           can_report=may_report(actor)), (422 if errors else 200)


def _portal(values: dict[str, str] | None = None, errors: dict[str, str] | None = None):
    actor = g.user
    waiting = []
    if may_report(actor):
        # Confirmations the requester owes: tasks of theirs among those they may act on.
        waiting = [t for t in desk().tasks(actor, per_page=100).items if t.for_requester]
    recent = desk().tickets(actor, per_page=5)
    return render_template(
        "portal/index.html", services=desk().services(), catalog=desk().catalog(),
        values=values or {}, errors=errors or {}, waiting=waiting, recent=recent,
        can_report=may_report(actor), other_errors=_leftover(errors or {}),
    )


def _item(key: str) -> CatalogItemInfo:
    found = next((i for i in desk().catalog() if i.key == key), None)
    if found is None:
        abort(404, f"There is no catalog item {key!r}.")
    return found


def _leftover(errors: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in errors.items() if k not in ("title", "description", "service")}


def _unplaced(errors: dict[str, Any], item: CatalogItemInfo) -> dict[str, str]:
    """Errors with no field on the page (shown at the top of the form)."""
    known = {f"fields.{k}" for k in item.form.get("properties", {})} | {"title"}
    return {k: v for k, v in errors.items() if k not in known}
