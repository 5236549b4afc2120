"""VK connector (``vk_api.VkApi`` with an access token).

Two modes:

* ``mode = "search"`` (default): ``newsfeed.search`` for the query (public posts),
  first run limited by ``start_time`` = now - ``backfill_hours``.
* ``mode = "wall"``: comments (and thread replies) on the last ``wall_posts`` posts of the
  wall ``owner_id`` (negative for a community): ``wall.get``, then one ``execute`` holding
  a ``wall.getComments`` per post. The query is not used in this mode: every comment on
  the brand's own wall is a mention.

Replies use ``wall.createComment`` (``reply_to_comment`` when answering a comment). When
``owner_id`` is a community (negative) and ``reply_from_group`` is true (the default),
every reply is posted as that community, ``from_group`` = its id, on its own wall and on
the walls where search found the post alike (VK: "from_group: the id of the community on
whose behalf the comment is posted"; the token must be a community admin's or editor's).
The reply's idempotency key is sent as ``guid`` ("a unique identifier to avoid repeated
comments"), so a person re-sending a reply does not post it twice. A reply whose outcome is
unknown (read timeout, connection dropped after sending, HTTP 5xx, VK error 1 or 10, an
unreadable answer) raises ``OutcomeUnknown``. Lengths are counted in characters.

Secret: ``OTKLIK_VK_TOKEN`` (user or community token). Settings: ``mode``, ``owner_id``,
``backfill_hours`` (24), ``wall_posts`` (20, at most 24), ``reply_from_group`` (true),
``include_reposts`` (false: search drops bare reposts without text of their own),
``api_version`` ("5.199"), ``timeout`` (20 s).

Parsing of the responses into mentions lives in ``collectors._vk_parse``.

external_id: a post is ``"{owner_id}_{post_id}"`` (VK's own ``wall-1_2`` naming, so
``https://vk.com/wall{external_id}`` opens it); a comment is
``"{owner_id}_{post_id}_c{comment_id}"``. A comment's parent is the comment it answers
(``reply_to_comment``, else the thread root from ``parents_stack``), else its post.

Cursors. search: when caught up, the Unix time of the newest post delivered (sent as the
next ``start_time``; inclusive, so boundary posts may come twice but none is skipped);
while draining a backlog (results are newest first, paged with ``next_from``) a JSON
object ``{"start_time", "next_from", "top"}``. wall: the highest comment id delivered
(post and comment ids share one counter per wall, so newer comments have larger ids).

vk_api quirks: it sleeps 0.34 s between calls (``RPS_DELAY``) and sleeps-and-retries on
error 6; both are disabled here (see ``_NoSleepVkApi``): error 6 becomes ``RateLimited``.
``execute`` reports the failures of its calls in ``execute_errors`` (each with VK's code
and message), answering ``response: null`` when it could return nothing: those are mapped
by VK's code like any error, with VK's message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self, cast

import requests
import vk_api
from jconfig.memory import MemoryConfig

from collectors._http import (
    DEFAULT_TIMEOUT,
    TimeoutSession,
    never_sent,
    raise_for_status,
    require_secret,
    setting_bool,
    setting_float,
    setting_str,
)
from collectors._vk_parse import (
    RATE_LIMIT_CODES,
    TRANSIENT_CODES,
    execute_results,
    items_of,
    parse_comments,
    parse_search,
    vk_error,
)
from otklik.connectors import Setting
from otklik.domain import (
    ConnectorError,
    MalformedResponse,
    OutcomeUnknown,
    Page,
    RateLimited,
    RawMention,
    TransientError,
)

PROFILE_FIELDS = "screen_name,followers_count,members_count"


class _NoSleepVkApi(vk_api.VkApi):
    """``VkApi`` without its client-side sleeps: the scheduler owns all waiting."""

    RPS_DELAY = 0.0  # vk_api.VkApi.method sleeps to keep 3 req/s; we never sleep

    def too_many_rps_handler(self, error: vk_api.ApiError) -> None:
        """Do not sleep 0.5 s and retry (vk_api's default): surface error 6."""
        raise error


class VkConnector:
    """Collects VK posts by keyword or the comments on a community wall."""

    platform: ClassVar[str] = "vk"
    reply_limit: ClassVar[int | None] = 4096
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting(
            "mode", "'search' (newsfeed.search) or 'wall' (comments on a wall)", default="search"
        ),
        Setting(
            "owner_id",
            "the brand: its community (negative id) replies are posted as; the wall 'wall' reads",
        ),
        Setting("backfill_hours", "how far back the first run reads", default=24.0),
        Setting("wall_posts", "latest wall posts whose comments are read (at most 24)", default=20),
        Setting(
            "reply_from_group",
            "reply as the owner_id community (from_group) on every wall, not as the token's user",
            default=True,
        ),
        Setting("include_reposts", "common key: keep bare reposts in search", default=False),
        Setting("api_version", "VK API version", default="5.199"),
        Setting("timeout", "seconds per HTTP call", default=DEFAULT_TIMEOUT),
        Setting(
            "token",
            "user or community access token",
            required=True,
            secret=True,
            env="OTKLIK_VK_TOKEN",
        ),
    )

    def __init__(
        self,
        *,
        mode: str = "search",
        owner_id: int | None = None,
        backfill_hours: float = 24.0,
        wall_posts: int = 20,
        reply_from_group: bool = True,
        include_reposts: bool = False,
        api_version: str = "5.199",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if mode not in {"search", "wall"}:
            raise ValueError(f"vk mode must be 'search' or 'wall', got {mode!r}")
        if mode == "wall" and not owner_id:
            raise ValueError("vk mode 'wall' needs the 'owner_id' setting")
        self.mode = mode
        self.owner_id = owner_id
        self.backfill_hours = backfill_hours
        self.wall_posts = max(1, min(24, wall_posts))  # execute allows 25 calls per request
        self.reply_from_group = reply_from_group
        self.include_reposts = include_reposts
        self.api_version = api_version
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Self:
        """Build from source settings; the token is read from ``OTKLIK_VK_TOKEN`` when used."""
        owner = setting_str(settings, "owner_id")
        return cls(
            mode=setting_str(settings, "mode", "search"),
            owner_id=int(owner) if owner else None,
            backfill_hours=setting_float(settings, "backfill_hours", 24.0),
            wall_posts=int(setting_float(settings, "wall_posts", 20)),
            reply_from_group=setting_bool(settings, "reply_from_group", True),
            include_reposts=setting_bool(settings, "include_reposts", False),
            api_version=setting_str(settings, "api_version", "5.199"),
            timeout=setting_float(settings, "timeout", DEFAULT_TIMEOUT),
        )

    def _call(
        self, method: str, values: Mapping[str, Any], *, write: bool = False, raw: bool = False
    ) -> Any:
        """Call one VK API method through vk_api and map its failures to domain errors.

        ``raw`` returns the whole answer (``execute_errors`` too), not only ``response``.
        With ``write``, a failure after the request may have reached VK is ``OutcomeUnknown``.
        """
        api = _NoSleepVkApi(
            token=require_secret("OTKLIK_VK_TOKEN"),
            session=TimeoutSession(self.timeout),
            config=MemoryConfig,  # vk_api would otherwise read/write vk_config.v2.json
            api_version=self.api_version,
        )
        try:
            return api.method(method, dict(values), raw=raw)
        except vk_api.Captcha as exc:  # error 14: too many actions; no one can solve it here
            raise RateLimited(RATE_LIMIT_CODES[14], f"vk {method}: captcha required") from exc
        except vk_api.ApiError as exc:
            error = vk_error(exc.code, str(exc.error.get("error_msg", "")))
            if write and exc.code in TRANSIENT_CODES:  # VK failed while handling it
                raise _unknown(method, error) from exc
            raise error from exc
        except vk_api.ApiHttpError as exc:  # raised by vk_api for any non-2xx status
            status = exc.response.status_code
            detail = f"vk {method}: HTTP {status}: {exc.response.text[:300]}"
            if write and status >= 500:
                raise _unknown(method, TransientError(detail)) from exc
            raise_for_status(exc.response, detail)
            raise ConnectorError(detail) from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            if write and not never_sent(exc):
                raise _unknown(method, TransientError(f"vk {method}: {exc}")) from exc
            raise TransientError(f"vk {method}: {exc}") from exc
        except ValueError as exc:  # requests' JSONDecodeError keeps the text in .doc
            error = MalformedResponse(f"vk {method}: {exc}", getattr(exc, "doc", ""))
            raise (_unknown(method, error) if write else error) from exc

    # --- protocol ------------------------------------------------------------------------

    def check(self) -> None:
        """``groups.getById`` for a community wall, ``users.get`` otherwise."""
        if self.owner_id and self.owner_id < 0:
            self._call("groups.getById", {"group_id": -self.owner_id})
        else:
            self._call("users.get", {})

    def fetch(self, query: str, cursor: str | None) -> Page:
        """Return the next page of posts (search) or wall comments (wall)."""
        if self.mode == "wall":
            return self._fetch_wall(cursor)
        return self._fetch_search(query, cursor)

    @classmethod
    def reply_length(cls, text: str) -> int:
        """Characters, as VK counts a comment."""
        return len(text)

    def reply(self, to: RawMention, text: str, idempotency_key: str = "") -> str:
        """Comment under the post (or answer the comment) ``to``; return the new comment id.

        Posted as the ``owner_id`` community when it is one and ``reply_from_group`` is set;
        ``idempotency_key`` goes out as VK's ``guid``.
        """
        owner, post, comment = split_external_id(to.external_id)
        values: dict[str, Any] = {"owner_id": owner, "post_id": post, "message": text}
        if comment is not None:
            values["reply_to_comment"] = comment
        if self.reply_from_group and self.owner_id is not None and self.owner_id < 0:
            values["from_group"] = -self.owner_id
        if idempotency_key:
            values["guid"] = idempotency_key
        result = self._call("wall.createComment", values, write=True)
        if not isinstance(result, dict) or not isinstance(result.get("comment_id"), int):
            raise _unknown(
                "wall.createComment",
                MalformedResponse("vk wall.createComment: no comment_id", json.dumps(result)),
            )
        return f"{owner}_{post}_c{result['comment_id']}"

    # --- search --------------------------------------------------------------------------

    def _fetch_search(self, query: str, cursor: str | None) -> Page:
        start_time, next_from, top = _parse_search_cursor(cursor)
        if start_time is None:
            start = datetime.now(UTC) - timedelta(hours=self.backfill_hours)
            start_time = int(start.timestamp())
        values: dict[str, Any] = {
            "q": query,
            "count": 200,
            "extended": 1,
            "fields": PROFILE_FIELDS,
            "start_time": start_time,
        }
        if next_from:
            values["start_from"] = next_from
        body = self._call("newsfeed.search", values)
        mentions = parse_search(body)
        newest = max((int(m.created_at.timestamp()) for m in mentions), default=None)
        top = top if top is not None else newest
        if not self.include_reposts:  # a bare repost has no text of its own
            mentions = [m for m in mentions if m.text or not m.raw.get("copy_history")]
        if body.get("next_from") and body["items"]:
            state = {"start_time": start_time, "next_from": body["next_from"], "top": top}
            return Page(mentions, json.dumps(state, sort_keys=True))
        if top is None:
            return Page(mentions, cursor if cursor and cursor.isdigit() else None)
        return Page(mentions, str(top))

    # --- wall ----------------------------------------------------------------------------

    def _fetch_wall(self, cursor: str | None) -> Page:
        if cursor is not None and not cursor.isdigit():
            raise ValueError(f"unreadable vk wall cursor {cursor!r}")
        last_id = int(cursor) if cursor else None
        since = datetime.now(UTC) - timedelta(hours=self.backfill_hours)
        posts = self._call("wall.get", {"owner_id": self.owner_id, "count": self.wall_posts})
        post_ids = [p["id"] for p in items_of(posts, "wall.get") if _has_comments(p)]
        if not post_ids:
            return Page([], cursor)
        calls = [_comments_call(self.owner_id, post_id) for post_id in post_ids]
        # One HTTP request for up to 25 calls: https://dev.vk.com/ru/method/execute
        answer = self._call("execute", {"code": f"return [{','.join(calls)}];"}, raw=True)
        results = execute_results(answer, len(post_ids))
        mentions: list[RawMention] = []
        for post_id, result in zip(post_ids, results, strict=True):
            if result is False:  # that call failed (post deleted, comments closed)
                continue
            # mode 'wall' is refused without an owner_id (__init__), so it is set here
            mentions.extend(parse_comments(result, cast(int, self.owner_id), post_id))
        if last_id is None:
            fresh = [m for m in mentions if m.created_at >= since]
        else:
            fresh = [m for m in mentions if _comment_id(m) > last_id]
        fresh.sort(key=_comment_id)
        return Page(fresh, str(_comment_id(fresh[-1])) if fresh else cursor)


def _comments_call(owner_id: int | None, post_id: int) -> str:
    params = {
        "owner_id": owner_id,
        "post_id": post_id,
        "count": 100,
        "sort": "desc",
        "extended": 1,
        "fields": PROFILE_FIELDS,
        "thread_items_count": 10,
    }
    return f"API.wall.getComments({json.dumps(params)})"


def _has_comments(post: Any) -> bool:
    return isinstance(post, dict) and (post.get("comments") or {}).get("count", 1) > 0


def _comment_id(mention: RawMention) -> int:
    return int(mention.external_id.rsplit("_c", 1)[1])


def _parse_search_cursor(cursor: str | None) -> tuple[int | None, str | None, int | None]:
    if not cursor:
        return None, None, None
    if cursor.isdigit():
        return int(cursor), None, None
    try:
        state = json.loads(cursor)
        return int(state["start_time"]), str(state["next_from"]), state.get("top")
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"unreadable vk search cursor {cursor!r}") from None


def split_external_id(external_id: str) -> tuple[int, int, int | None]:
    """Split ``"{owner}_{post}"`` or ``"{owner}_{post}_c{comment}"`` into integers."""
    try:
        head, _, comment = external_id.partition("_c")
        owner, post = head.split("_")
        return int(owner), int(post), int(comment) if comment else None
    except ValueError:
        raise ValueError(f"not a vk external id: {external_id!r}") from None


# --- errors ------------------------------------------------------------------------------


def _unknown(method: str, error: ConnectorError) -> OutcomeUnknown:
    return OutcomeUnknown(f"{error}; vk {method} may have been carried out")
