"""Reply templates: canned answers with ``{variables}``, one body per language."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from otklik import audit
from otklik.store.models import ReplyTemplate, User

VARIABLES = ("author", "brand", "agent", "platform")
LANGUAGES = ("en", "ru")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class TemplateError(ValueError):
    """A template cannot be saved as given."""


def render(body: str, variables: Mapping[str, str]) -> str:
    """Fill ``{author}``, ``{brand}``... ; an unknown ``{name}`` is left as written.

    Plain substitution, never ``str.format``: a template cannot reach attributes or indexes.
    """
    return _PLACEHOLDER.sub(lambda m: str(variables.get(m.group(1), m.group(0))), body)


def unknown_variables(body: str) -> list[str]:
    """Placeholders in ``body`` that are not one of VARIABLES."""
    return sorted({name for name in _PLACEHOLDER.findall(body) if name not in VARIABLES})


def all_templates(session: Session) -> list[ReplyTemplate]:
    """Every template, by name then language."""
    return list(
        session.scalars(select(ReplyTemplate).order_by(ReplyTemplate.name, ReplyTemplate.language))
    )


def for_language(session: Session, language: str | None) -> list[ReplyTemplate]:
    """Templates in ``language`` first, then the others."""
    templates = all_templates(session)
    return sorted(templates, key=lambda t: (t.language != language, t.name, t.language))


def save_template(
    session: Session,
    name: str,
    language: str,
    body: str,
    user: User,
    now: datetime,
    template_id: int | None = None,
    ip: str = "",
) -> ReplyTemplate:
    """Create (or update ``template_id``) after checking name, language and variables."""
    name, body = name.strip(), body.strip()
    if not name or not body:
        raise TemplateError("a template needs a name and a text")
    if "\x00" in name + body:  # PostgreSQL refuses NUL in text
        raise TemplateError("a template cannot contain a NUL character")
    if language not in LANGUAGES:
        raise TemplateError(f"language must be one of: {', '.join(LANGUAGES)}")
    if unknown := unknown_variables(body):
        raise TemplateError(
            f"unknown variable(s) {', '.join('{' + u + '}' for u in unknown)}; "
            f"use {', '.join('{' + v + '}' for v in VARIABLES)}"
        )
    clash = session.scalar(
        select(ReplyTemplate).where(ReplyTemplate.name == name, ReplyTemplate.language == language)
    )
    template = session.get(ReplyTemplate, template_id) if template_id else None
    if clash is not None and clash is not template:
        raise TemplateError(f"a {language} template named {name!r} already exists")
    if template is None:
        template = ReplyTemplate()
        session.add(template)
    template.name, template.language, template.body = name, language, body
    template.updated_by, template.updated_at = user.id, now
    session.flush()
    change = {"name": template.name, "language": template.language}
    audit.record(session, user, "template_saved", f"template:{template.id}", change, ip=ip, at=now)
    return template


def delete_template(
    session: Session, template_id: int, user: User, ip: str = ""
) -> ReplyTemplate | None:
    """Delete a template; return it (or None if it did not exist)."""
    template = session.get(ReplyTemplate, template_id)
    if template is not None:
        session.delete(template)
        change = {"name": template.name, "language": template.language}
        audit.record(session, user, "template_deleted", f"template:{template_id}", change, ip=ip)
    return template
