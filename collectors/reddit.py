"""Reddit connector (``praw.Reddit``, script-app credentials).

Collects, for the query, the newest submissions in the configured subreddits
(``GET /r/{a+b}/search?sort=new``) and the comments on matching submissions: each fetch
reads ``/comments/{id}?sort=new`` for every submission found in this page plus the watch
list, the most recent earlier matches (setting ``watch_submissions``, default 10), so
comments arriving later on a matching thread are collected too. Only the watch list is
capped, not the threads read: a first run or a page bringing many new submissions reads
all their threads (one request each).

Replies: ``reply()`` on the submission or comment (``POST /api/comment``); the new
comment's fullname is returned. Reddit takes no idempotency key, so a reply whose outcome
is unknown (read timeout, dropped connection, 5xx, an unreadable answer, or no comment in
the answer, which is what a quarantined subreddit sends although the comment was created)
raises ``OutcomeUnknown`` for a person to check; a RATELIMIT answer ("try again in 9
minutes") is ``RateLimited`` for the wait it names. Lengths are counted in characters.

Deleted and removed posts (``[deleted]``/``[removed]``) come out with ``deleted=True``:
every such comment seen on a thread read (whatever its mark, so a stored one that was
deleted since is marked so), and a watched submission that is now gone.

Secrets: ``OTKLIK_REDDIT_CLIENT_ID``, ``OTKLIK_REDDIT_CLIENT_SECRET``,
``OTKLIK_REDDIT_USERNAME``, ``OTKLIK_REDDIT_PASSWORD``. Settings: ``subreddits``
(list or "a,b"; default "all"), ``user_agent``, ``backfill_hours`` (24),
``watch_submissions`` (10), ``timeout`` (20 s).

external_id and parent_external_id are Reddit fullnames (``t3_`` submission, ``t1_``
comment; a comment's parent is its ``parent_id``).

Cursor: JSON ``{"t3": newest submission fullname delivered, "t1": {submission id:
highest comment fullname delivered on that thread}, "watch": [submission ids]}``.
Submissions are paged with ``before=<t3>``, which returns the items just newer than it, so
a backlog drains oldest-first and nothing is skipped; comment ids are base-36 counters, so
"newer" is "larger id". The comment mark is kept per thread because the threads are read
one after the other: a comment posted on a thread already read in this fetch can have a
lower id than one read later on another thread. A thread without a mark has had no comment
delivered, so all its comments are new. The older cursor forms (``"t3_..."``, and ``t1``
as one fullname for every watched thread) are still read. Limits: if the ``t3`` anchor is
deleted, Reddit answers ``before=`` with an empty listing (reset the cursor to recover); a
thread gaining more than 100 comments between two fetches loses the oldest of them;
replies hidden behind "load more" are not expanded (that would need extra requests).

Modules: this one holds the connector and its cursor; ``collectors._reddit_client`` the
praw client (which never sleeps: prawcore's retries and pacing are disabled) and the
mapping of praw/prawcore errors; ``collectors._reddit_parse`` turns things into mentions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

import praw
import praw.models
import prawcore
from praw.models import Comment, Submission

from collectors._http import DEFAULT_TIMEOUT, setting_float, setting_list, setting_str
from collectors._reddit_client import guarded, make_client
from collectors._reddit_parse import base36, comment_mention, submission_mention
from otklik.connectors import Setting
from otklik.domain import MalformedResponse, OutcomeUnknown, Page, RawMention

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "python:otklik:0.1 (social listening)"


class RedditConnector:
    """Searches subreddits for the query and follows comments on matching threads."""

    platform: ClassVar[str] = "reddit"
    reply_limit: ClassVar[int | None] = 10000
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting(
            "subreddits", "subreddits to search (list or 'a,b'; 'all' = all)", default=("all",)
        ),
        Setting("user_agent", "User-Agent sent to Reddit", default=DEFAULT_USER_AGENT),
        Setting("backfill_hours", "how far back the first run reads", default=24.0),
        Setting("watch_submissions", "earlier matching threads re-read per fetch", default=10),
        Setting("timeout", "seconds per HTTP call", default=DEFAULT_TIMEOUT),
        Setting(
            "client_id", "script app id", required=True, secret=True, env="OTKLIK_REDDIT_CLIENT_ID"
        ),
        Setting(
            "client_secret",
            "script app secret",
            required=True,
            secret=True,
            env="OTKLIK_REDDIT_CLIENT_SECRET",
        ),
        Setting(
            "username", "Reddit account", required=True, secret=True, env="OTKLIK_REDDIT_USERNAME"
        ),
        Setting(
            "password", "its password", required=True, secret=True, env="OTKLIK_REDDIT_PASSWORD"
        ),
    )

    def __init__(
        self,
        *,
        subreddits: list[str] | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        backfill_hours: float = 24.0,
        watch_submissions: int = 10,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.subreddits = [s.removeprefix("r/") for s in subreddits or ["all"]]
        self.user_agent = user_agent
        self.backfill_hours = backfill_hours
        self.watch_submissions = max(0, watch_submissions)
        self.timeout = timeout
        self._reddit: praw.Reddit | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Self:
        """Build from source settings; credentials are read from the environment when used."""
        return cls(
            subreddits=setting_list(settings, "subreddits", ["all"]),
            user_agent=setting_str(settings, "user_agent", DEFAULT_USER_AGENT),
            backfill_hours=setting_float(settings, "backfill_hours", 24.0),
            watch_submissions=int(setting_float(settings, "watch_submissions", 10)),
            timeout=setting_float(settings, "timeout", DEFAULT_TIMEOUT),
        )

    @property
    def reddit(self) -> praw.Reddit:
        """The praw client (built once, so its OAuth token is reused between fetches)."""
        if self._reddit is None:
            self._reddit = make_client(self.user_agent, self.timeout)
        return self._reddit

    # --- protocol ------------------------------------------------------------------------

    def check(self) -> None:
        """``GET /api/v1/me`` (after the token request): proves all four credentials."""
        guarded(lambda: self.reddit.user.me())

    def fetch(self, query: str, cursor: str | None) -> Page:
        """Return new matching submissions and new comments on watched threads."""
        state = _parse_cursor(cursor)
        since = datetime.now(UTC) - timedelta(hours=self.backfill_hours)
        submissions = guarded(lambda: self._search(query, state["t3"]))
        if not state["t3"]:
            submissions = [s for s in submissions if s.created_at >= since]
        new_ids = [s.external_id[3:] for s in reversed(submissions)]  # newest first
        threads = list(dict.fromkeys(new_ids + state["watch"]))  # all read, none cut
        comments, marks, gone = guarded(lambda: self._comments(threads, state["t1"]))
        watch = [t for t in threads if t not in gone][: self.watch_submissions]
        t3 = submissions[-1].external_id if submissions else state["t3"]
        next_state = {"t3": t3, "t1": {t: marks[t] for t in watch if t in marks}, "watch": watch}
        mentions = sorted(submissions + comments, key=lambda m: m.created_at)
        return Page(mentions, json.dumps(next_state, sort_keys=True))

    @classmethod
    def reply_length(cls, text: str) -> int:
        """Characters, as Reddit counts a comment against its 10,000 limit."""
        return len(text)

    def reply(self, to: RawMention, text: str, idempotency_key: str = "") -> str:
        """Reply under the submission or comment ``to``; return the new comment's fullname.

        ``idempotency_key`` is not sent: Reddit has no such parameter (see the module notes).
        """
        kind, _, thing_id = to.external_id.partition("_")
        target: Submission | Comment
        if kind == "t3":
            target = self.reddit.submission(id=thing_id)
        elif kind == "t1":
            target = self.reddit.comment(id=thing_id)
        else:
            raise ValueError(f"not a reddit fullname: {to.external_id!r}")
        created = guarded(lambda: target.reply(text), write=True)
        if created is None:  # {"json": {"errors": [], "data": {"things": []}}}
            raise OutcomeUnknown(
                f"reddit: the reply to {to.external_id} was accepted but no comment came back "
                "(Reddit does this in a quarantined subreddit, where the comment is created): "
                "look for it in the account's comments before sending it again"
            )
        if not isinstance(created, Comment):
            raise OutcomeUnknown(
                f"reddit: the reply to {to.external_id} was accepted with {created!r} instead "
                "of a comment; it may have been posted"
            )
        return created.fullname

    # --- reading -------------------------------------------------------------------------

    def _search(self, query: str, before: str | None) -> list[RawMention]:
        params: dict[str, Any] = {"q": query, "sort": "new", "limit": 100, "t": self._window()}
        if self.subreddits != ["all"]:
            params["restrict_sr"] = "on"
        if before:
            params["before"] = before
        listing = self.reddit.get(f"r/{'+'.join(self.subreddits)}/search/", params=params)
        if not isinstance(listing, praw.models.Listing):
            raise MalformedResponse("reddit search: not a listing", repr(listing))
        found = [submission_mention(s) for s in listing.children if isinstance(s, Submission)]
        return sorted(found, key=lambda m: base36(m.external_id))

    def _window(self) -> str:
        """The smallest search time filter covering the backfill window."""
        for name, hours in (("hour", 1), ("day", 24), ("week", 168), ("month", 720)):
            if self.backfill_hours <= hours:
                return name
        return "year" if self.backfill_hours <= 8760 else "all"

    def _comments(
        self, threads: list[str], marks: Mapping[str, str]
    ) -> tuple[list[RawMention], dict[str, str], set[str]]:
        """Read each thread's comments above its mark (all of them when it has none).

        Returns the new comments (by id) with every deleted comment and deleted submission
        seen, the threads' marks moved past the new comments, and the threads that are gone
        (404/403).
        """
        found: dict[str, RawMention] = {}
        next_marks = dict(marks)
        gone: set[str] = set()
        for submission_id in threads:
            after = base36(marks.get(submission_id))
            submission = self.reddit.submission(id=submission_id)
            submission.comment_sort = "new"
            submission.comment_limit = 100
            try:
                forest = submission.comments.list()  # MoreComments are not expanded
            except (prawcore.NotFound, prawcore.Forbidden):  # deleted, or subreddit went private
                log.info("reddit: thread %s is gone; no longer watched", submission_id)
                gone.add(submission_id)
                continue
            thread = submission_mention(submission)  # its fields came with the comments
            if thread.deleted:
                found[thread.external_id] = thread
            for comment in forest:
                if not isinstance(comment, Comment):
                    continue
                mention = comment_mention(comment)
                if mention.deleted:  # whatever the mark: a stored one is marked deleted
                    found[mention.external_id] = mention
                elif base36(mention.external_id) > after:
                    found[mention.external_id] = mention
                    if base36(mention.external_id) > base36(next_marks.get(submission_id)):
                        next_marks[submission_id] = mention.external_id
        ordered = sorted(found.values(), key=lambda m: (m.external_id[:3], base36(m.external_id)))
        return ordered, next_marks, gone


# --- cursor ----------------------------------------------------------------------------


def _parse_cursor(cursor: str | None) -> dict[str, Any]:
    """``{"t3": fullname or None, "t1": {submission id: comment fullname}, "watch": [ids]}``.

    Also reads the older forms: a bare ``"t3_..."``, and ``t1`` as one comment fullname
    (the former global mark), which becomes the mark of every watched thread.
    """
    if not cursor:
        return {"t3": None, "t1": {}, "watch": []}
    if cursor.startswith("t3_"):
        return {"t3": cursor, "t1": {}, "watch": []}
    try:
        state = json.loads(cursor)
        if not isinstance(state, dict):
            raise ValueError
        t3, t1, watch = state.get("t3"), state.get("t1"), state.get("watch") or []
        if not isinstance(watch, list) or not all(isinstance(w, str) for w in watch):
            raise ValueError
        if t1 is None:
            marks = {}
        elif isinstance(t1, str):  # the global mark of earlier versions
            marks = dict.fromkeys(watch, t1)
        elif isinstance(t1, dict) and all(isinstance(v, str) for v in t1.values()):
            marks = dict(t1)
        else:
            raise ValueError
        if t3 is not None and not isinstance(t3, str):
            raise ValueError
        return {"t3": t3, "t1": marks, "watch": watch}
    except ValueError:
        raise ValueError(f"unreadable reddit cursor {cursor!r}") from None
