"""VK responses (``newsfeed.search``, ``wall.getComments``) turned into ``RawMention``, and
VK's errors (an ``error`` answer, or ``execute_errors``) into the ``otklik.domain`` errors.

external_id: a post is ``"{owner_id}_{post_id}"``; a comment is
``"{owner_id}_{post_id}_c{comment_id}"``. A comment's parent is the comment it answers
(``reply_to_comment``, else the thread root from ``parents_stack``), else its post.
Author handles and follower counts come from the ``profiles``/``groups`` of extended
responses.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping
from typing import Any

from collectors._http import from_epoch
from otklik.domain import (
    AuthError,
    ConnectorError,
    MalformedResponse,
    RateLimited,
    RawMention,
    TransientError,
)

log = logging.getLogger(__name__)

# VK error codes, https://dev.vk.com/ru/reference/errors
RATE_LIMIT_CODES = {6: 1.0, 9: 300.0, 14: 300.0, 29: 3600.0}  # code -> seconds to wait
AUTH_CODES = {5, 15, 17, 27, 28}
TRANSIENT_CODES = {1, 10}


def items_of(body: Any, what: str) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise MalformedResponse(f"vk {what}: no items list", json.dumps(body, ensure_ascii=False))
    return body["items"]


def _authors(body: Mapping[str, Any]) -> dict[int, Mapping[str, Any]]:
    """Profiles by user id and communities by negative id, as ``from_id`` refers to them."""
    authors: dict[int, Mapping[str, Any]] = {}
    for sign, key in ((1, "profiles"), (-1, "groups")):
        for info in body.get(key) or []:
            if isinstance(info, dict) and isinstance(info.get("id"), int):
                authors[sign * info["id"]] = info
    return authors


def _author(from_id: int, authors: Mapping[int, Mapping[str, Any]]) -> tuple[str, int | None]:
    info = authors.get(from_id) or {}
    fallback = f"id{from_id}" if from_id > 0 else f"club{-from_id}"
    followers = info.get("followers_count", info.get("members_count"))
    return str(info.get("screen_name") or fallback), followers


def _text(value: Any) -> str:
    # VK escapes some characters as HTML entities and old texts contain <br>.
    return html.unescape(str(value or "").replace("<br>", "\n"))


def parse_search(body: Any) -> list[RawMention]:
    """Parse a ``newsfeed.search`` (extended) response into mentions, oldest first."""
    items = items_of(body, "newsfeed.search")
    authors = _authors(body)
    mentions = []
    for item in items:
        try:
            owner, post_id = int(item["owner_id"]), int(item["id"])
            from_id = int(item.get("from_id") or owner)
            handle, followers = _author(from_id, authors)
            mentions.append(
                RawMention(
                    platform="vk",
                    external_id=f"{owner}_{post_id}",
                    url=f"https://vk.com/wall{owner}_{post_id}",
                    author_external_id=str(from_id),
                    author_handle=handle,
                    text=_text(item.get("text")),
                    created_at=from_epoch(item["date"]),
                    author_followers=followers,
                    raw=item,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedResponse(
                f"vk post: {exc}", json.dumps(item, ensure_ascii=False)
            ) from exc
    return sorted(mentions, key=lambda m: (m.created_at, m.external_id))


def parse_comments(body: Any, owner_id: int, post_id: int) -> list[RawMention]:
    """Parse a ``wall.getComments`` response (with thread items); deleted ones are skipped."""
    authors = _authors(body) if isinstance(body, dict) else {}
    mentions = []
    for item in items_of(body, "wall.getComments"):
        if not isinstance(item, dict):
            raise MalformedResponse("vk comment is not an object", json.dumps(item))
        thread = (item.get("thread") or {}).get("items") or []
        for comment in [item, *thread]:
            if comment.get("deleted") or "from_id" not in comment:
                continue
            mentions.append(_comment(comment, owner_id, post_id, authors))
    return mentions


def _comment(
    item: Mapping[str, Any], owner_id: int, post_id: int, authors: Mapping[int, Mapping[str, Any]]
) -> RawMention:
    try:
        comment_id, from_id = int(item["id"]), int(item["from_id"])
        stack = item.get("parents_stack") or []
        parent = item.get("reply_to_comment") or (stack[-1] if stack else None)
        handle, followers = _author(from_id, authors)
        url = f"https://vk.com/wall{owner_id}_{post_id}?reply={comment_id}"
        return RawMention(
            platform="vk",
            external_id=f"{owner_id}_{post_id}_c{comment_id}",
            url=f"{url}&thread={stack[0]}" if stack else url,
            author_external_id=str(from_id),
            author_handle=handle,
            text=_text(item.get("text")),
            created_at=from_epoch(item["date"]),
            parent_external_id=(
                f"{owner_id}_{post_id}_c{parent}" if parent else f"{owner_id}_{post_id}"
            ),
            author_followers=followers,
            raw=dict(item),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedResponse(f"vk comment: {exc}", json.dumps(item, ensure_ascii=False)) from exc


# --- errors ------------------------------------------------------------------------------


def vk_error(code: int, message: str) -> ConnectorError:
    """The domain error for VK error ``code``, keeping VK's message."""
    text = f"vk error {code}: {message}"
    if code in RATE_LIMIT_CODES:
        return RateLimited(RATE_LIMIT_CODES[code], text)
    if code in AUTH_CODES:
        return AuthError(text)
    if code in TRANSIENT_CODES:
        return TransientError(text)
    return ConnectorError(text)


def execute_results(answer: Any, expected: int) -> list[Any]:
    """The per-call results of an ``execute`` answer; its ``execute_errors`` when none came.

    A call that failed is ``false`` in the results and one entry of ``execute_errors``
    (``{"method", "error_code", "error_msg"}``); when the whole answer is ``null`` (or not
    one result per call) the first call's error is raised, mapped by its VK code.
    """
    envelope = answer if isinstance(answer, dict) else {}
    results = envelope.get("response")
    errors = [e for e in envelope.get("execute_errors") or [] if isinstance(e, dict)]
    if isinstance(results, list) and len(results) == expected:
        for error in errors:
            log.info("vk execute: %s failed: %s", error.get("method"), error.get("error_msg"))
        return results
    if errors:
        first = next((e for e in errors if e.get("method") != "execute"), errors[0])
        code, message = first.get("error_code"), str(first.get("error_msg") or "")
        detail = f"{message} (in {first.get('method') or 'execute'})"
        raise vk_error(code if isinstance(code, int) else 0, detail)
    body = json.dumps(answer, ensure_ascii=False)
    raise MalformedResponse("vk execute: expected one result per post", body)
