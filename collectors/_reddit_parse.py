"""Reddit things (praw ``Submission`` and ``Comment`` objects) turned into ``RawMention``.

external_id and parent_external_id are Reddit fullnames (``t3_`` submission, ``t1_``
comment; a comment's parent is its ``parent_id``). The fields are read from the object's
own attributes, never through praw's lazy loading, so parsing never makes a request.

Deleted and removed things keep their id and date but lose their text: a comment's ``body``
becomes ``[deleted]`` (by its author) or ``[removed]`` (by a moderator or Reddit), a
submission's ``selftext`` likewise, and a submission says why in ``removed_by_category``
(a deleted link post has an empty selftext). They become mentions with ``deleted=True``:
the store never creates a mention from one, and marks a stored one deleted. An author who
deleted the account (``author`` ``[deleted]``) with the text still there is not a deletion.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from collectors._http import from_epoch
from otklik.domain import MalformedResponse, RawMention


def base36(fullname: str | None) -> int:
    """The numeric id of a fullname (``t1_abc``): ids are base-36 counters, newer is larger."""
    return int(fullname.partition("_")[2] or "0", 36) if fullname else 0


GONE = frozenset({"[deleted]", "[removed]"})  # the text Reddit leaves in place of a gone one


def submission_mention(submission: object) -> RawMention:
    """Turn a praw ``Submission`` into a mention (title and self text)."""
    fields = _fields(submission)
    deleted = fields.get("selftext") in GONE or bool(fields.get("removed_by_category"))
    text = "\n\n".join(p for p in (fields.get("title"), fields.get("selftext")) if p)
    return RawMention(text=text, deleted=deleted, **_common(fields, f"t3_{fields.get('id')}"))


def comment_mention(comment: object) -> RawMention:
    """Turn a praw ``Comment`` into a mention; its parent is the ``parent_id`` fullname."""
    fields = _fields(comment)
    if not fields.get("permalink") and fields.get("link_id"):  # older responses lack it
        fields["permalink"] = f"/comments/{fields['link_id'][3:]}/_/{fields.get('id')}/"
    common = _common(fields, f"t1_{fields.get('id')}")
    return RawMention(
        text=str(fields.get("body") or ""),
        parent_external_id=fields.get("parent_id"),
        deleted=fields.get("body") in GONE,
        **common,
    )


def _fields(thing: object) -> dict[str, Any]:
    """The object's JSON fields, read without triggering praw's lazy fetch."""
    return {k: v for k, v in vars(thing).items() if not k.startswith("_")}


def _raw(fields: Mapping[str, Any]) -> dict[str, Any]:
    primitive = (str, int, float, bool, type(None))
    raw = {k: v for k, v in fields.items() if isinstance(v, primitive)}
    raw["author"] = str(fields["author"]) if fields.get("author") is not None else None
    return raw


def _common(fields: Mapping[str, Any], fullname: str) -> dict[str, Any]:
    try:
        author = fields.get("author")
        return {
            "platform": "reddit",
            "external_id": fullname,
            "url": "https://www.reddit.com" + str(fields.get("permalink") or ""),
            "author_external_id": str(fields.get("author_fullname") or author or ""),
            "author_handle": str(author) if author is not None else "[deleted]",
            "created_at": from_epoch(fields["created_utc"]),
            "raw": _raw(fields),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedResponse(f"reddit {fullname}: {exc}", json.dumps(_raw(fields))) from exc
