"""Source health: is every collector alive, how far behind, what went wrong."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask.typing import ResponseReturnValue

from otklik.health import all_health
from otklik.store.models import utcnow

bp = Blueprint("sources", __name__, url_prefix="/sources")


@bp.get("/")
def health() -> ResponseReturnValue:
    """One row per configured source."""
    runtime = current_app.extensions["otklik"]
    with runtime.sessions() as session:
        rows = all_health(session, runtime.settings, utcnow())
    return render_template("sources.html", rows=rows)
