"""The one conditional update every outbox row's state change goes through (any outbox model)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from otklik.domain.outbox import OutboxState, check_transition
from otklik.store import db


def compare_and_set(
    session: Session,
    model: type[Any],
    row_id: int,
    seen: Collection[OutboxState],
    to: OutboxState,
    *where: ColumnElement[bool],
    **values: Any,
) -> bool:
    """Move outbox row ``row_id`` of ``model`` from one of ``seen`` to ``to``; True if it did.

    One ``UPDATE ... WHERE id = :id AND state IN (:seen) [AND where]`` setting ``state`` and
    ``values``: False (nothing written) when another writer moved the row first. Objects
    already loaded in ``session`` are not updated; load the row again after a win.
    """
    check_transition(seen, to)
    statement = (
        update(model)
        .where(model.id == row_id, model.state.in_([str(s) for s in seen]), *where)
        .values(state=to, **values)
        .execution_options(synchronize_session=False)
    )
    return db.rows_changed(session.execute(statement)) == 1
