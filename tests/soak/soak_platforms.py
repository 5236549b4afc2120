"""A fake of the five platforms for the soak test: a real HTTP server on 127.0.0.1.

One ``ThreadingHTTPServer`` (in a thread) serves, under a path prefix per platform, the
API shapes the connectors parse: ``/twitter/2/tweets/search/recent``,
``/vk/method/newsfeed.search``, ``/reddit/api/v1/access_token``,
``/reddit/r/<sub>/search/`` and ``/reddit/comments/<id>/``, ``/rss/feed.xml`` and
``/discourse/posts.json`` (+ ``/discourse/posts/by_number/<topic>/<n>.json``).

Each platform keeps a growing list of posts (a background thread adds new posts and
replies over time). With ``failures_on`` every data request may fail at random (seeded):
a 429 with the platform's own rate-limit signal, a 500, a response slower than the
connector timeout, or a 200 with a truncated body; every injection is counted.

Clients whose base URL is fixed (tweepy -> api.twitter.com, vk_api -> api.vk.ru, praw ->
www/oauth.reddit.com) reach the server through :func:`route_to`, a wrapper around
``requests.adapters.HTTPAdapter.send`` that rewrites only the URL of those hosts: the
libraries still build the requests and parse the responses themselves, over a real socket
with their real timeouts.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import requests
import requests.adapters

PLATFORMS = ("twitter", "vk", "reddit", "rss", "discourse")
FAILURE_KINDS = ("rate_limit", "server_error", "slow", "truncated")

# Hosts the client libraries call; routed to the server under the given path prefix.
ROUTED_HOSTS = {
    "api.twitter.com": "twitter",
    "api.x.com": "twitter",
    "api.vk.ru": "vk",
    "api.vk.com": "vk",
    "www.reddit.com": "reddit",
    "oauth.reddit.com": "reddit",
}

TWEET_BASE = 1_790_000_000_000_000_000
VK_OWNERS = (-170000222, 52000111, 61000333)
REDDIT_T3_BASE = int("1cqx00", 36)
REDDIT_T1_BASE = int("l3x0000", 36)
PAGE = {"twitter": 10, "vk": 8, "discourse": 5}  # small pages: backlogs span several
RSS_WINDOW = 50  # a feed carries only its newest entries
AUTHORS = ("dana_k", "ivan_p", "mara_s", "olga_v", "petr_n", "sam_r")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{int(ts * 1000) % 1000:03d}Z"
    )


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


@dataclass
class Post:
    """One post on a fake platform, with the text and parent a collector must store."""

    platform: str
    external_id: str
    seq: int
    created: float
    text: str  # what the connector turns the post into (the stored text)
    parent_external_id: str | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stats:
    """What the server did, per platform."""

    requests: Counter = field(default_factory=Counter)
    ok: Counter = field(default_factory=Counter)
    injected: Counter = field(default_factory=Counter)  # (platform, kind) -> n
    served_ids: dict[str, set[str]] = field(default_factory=lambda: {p: set() for p in PLATFORMS})


class FakePlatforms:
    """The fake server: posts per platform, HTTP handlers, growth and failure injection."""

    def __init__(
        self,
        seed: int,
        slow_seconds: float,
        failure_rate: float = 0.15,
        failure_rates: dict[str, float] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.slow_seconds = slow_seconds
        self.failure_rate = failure_rate
        self.failure_rates = failure_rates or {}  # per platform, else failure_rate
        # called with (platform, path) before a request is answered (test scenarios)
        self.on_request: Callable[[str, str], None] | None = None
        self.failures_on = False
        self.latency = (0.0, 0.03)  # every response waits a little, like a real network
        self.posts: dict[str, list[Post]] = {p: [] for p in PLATFORMS}
        self.stats = Stats()
        self.unexpected: list[str] = []
        self.escaped: Counter = Counter()  # filled by the soak test's run_source wrapper
        # (monotonic time, platform, what happened, external ids): to explain a failure
        self.events: list[tuple[float, str, str, tuple[str, ...]]] = []
        self._seq = 0
        self._discourse_topics: dict[int, list[Post]] = {}
        self._stop = threading.Event()
        self._growth: threading.Thread | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # clients that timed out
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, initial: int = 12) -> None:
        """Seed each platform with ``initial`` posts from the last hour, then serve."""
        now = time.time()
        for i in range(initial):
            for platform in PLATFORMS:
                self.add_post(platform, now - 3600 + i * 60 + PLATFORMS.index(platform))
        self._thread.start()

    def start_growth(self, tick: float = 0.2, probability: float = 0.25) -> None:
        def grow() -> None:
            while not self._stop.wait(tick):
                for platform in PLATFORMS:
                    with self.lock:
                        if self.rng.random() < probability:
                            self.add_post(platform)

        self._growth = threading.Thread(target=grow, name="fake-platform-growth", daemon=True)
        self._growth.start()

    def stop_growth(self) -> None:
        self._stop.set()
        if self._growth is not None:
            self._growth.join()

    def close(self) -> None:
        self.stop_growth()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # --- posts ---------------------------------------------------------------------------

    def add_post(self, platform: str, created: float | None = None) -> Post:
        """Append a new post (a reply to a recent post about 40% of the time)."""
        with self.lock:
            self._seq += 1
            seq, rng = self._seq, self.rng
            created = time.time() if created is None else created
            author = rng.choice(AUTHORS)
            posts = self.posts[platform]
            recent = posts[-8:]
            parent = rng.choice(recent) if recent and rng.random() < 0.4 else None
            word = rng.choice(("refund?", "love it", "late again", "great beans", "где заказ"))
            text = f"Ladoga coffee {platform} #{seq}: {word}"
            post = getattr(self, f"_new_{platform}")(seq, created, author, text, parent)
            posts.append(post)
            self.events.append((time.monotonic(), platform, "created", (post.external_id,)))
            return post

    def _new_twitter(self, seq, created, author, text, parent) -> Post:
        tweet_id = str(TWEET_BASE + seq)
        tweet = {
            "id": tweet_id,
            "text": text,
            "author_id": str(1000 + AUTHORS.index(author)),
            "created_at": _iso(created),
            "conversation_id": (parent.data["conversation_id"] if parent else tweet_id),
            "lang": "en",
            "edit_history_tweet_ids": [tweet_id],
        }
        if parent is not None:
            tweet["referenced_tweets"] = [{"type": "replied_to", "id": parent.external_id}]
            tweet["in_reply_to_user_id"] = parent.data["author_id"]
        return Post("twitter", tweet_id, seq, created, text, parent and parent.external_id, tweet)

    def _new_vk(self, seq, created, author, text, parent) -> Post:
        owner = self.rng.choice(VK_OWNERS)
        item = {
            "id": 1000 + seq,
            "owner_id": owner,
            "from_id": owner,
            "date": int(created),
            "post_type": "post",
            "text": text,
            "comments": {"count": 0},
            "likes": {"count": 0},
        }
        return Post("vk", f"{owner}_{1000 + seq}", seq, created, text, None, item)

    def _new_reddit(self, seq, created, author, text, parent) -> Post:
        submissions = [p for p in self.posts["reddit"] if p.external_id.startswith("t3_")]
        # comments go to the three newest threads (the connector watches the newest ten)
        threads = submissions[-3:]
        if threads and self.rng.random() < 0.6:
            thread = self.rng.choice(threads)
            in_thread = [
                p for p in self.posts["reddit"] if p.data.get("link_id") == thread.external_id
            ]
            target = self.rng.choice(in_thread) if in_thread and self.rng.random() < 0.5 else thread
            return self._reddit_comment(seq, created, author, text, thread, target)
        return self._reddit_submission(seq, created, author, text)

    def _reddit_submission(self, seq, created, author, text) -> Post:
        sid = _b36(REDDIT_T3_BASE + seq)
        title = f"Ladoga thread {seq}"
        data = {
            "id": sid,
            "name": f"t3_{sid}",
            "title": title,
            "selftext": text,
            "author": author,
            "author_fullname": f"t2_{author}",
            "created_utc": float(int(created)),
            "permalink": f"/r/ladoga/comments/{sid}/slug/",
            "subreddit": "ladoga",
            "num_comments": 0,
            "score": 1,
            "is_self": True,
        }
        return Post("reddit", f"t3_{sid}", seq, created, f"{title}\n\n{text}", None, data)

    def _reddit_comment(self, seq, created, author, text, thread: Post, target: Post) -> Post:
        cid = _b36(REDDIT_T1_BASE + seq)
        data = {
            "id": cid,
            "name": f"t1_{cid}",
            "body": text,
            "author": author,
            "author_fullname": f"t2_{author}",
            "created_utc": float(int(created)),
            "parent_id": target.external_id,
            "link_id": thread.external_id,
            "permalink": f"/r/ladoga/comments/{thread.data['id']}/slug/{cid}/",
            "subreddit": "ladoga",
            "score": 1,
        }
        return Post("reddit", f"t1_{cid}", seq, created, text, target.external_id, data)

    def add_reddit(self, thread: Post | None = None) -> Post:
        """A new submission, or with ``thread`` a new top-level comment on it."""
        with self.lock:
            self._seq += 1
            text = f"Ladoga coffee reddit #{self._seq}"
            if thread is None:
                post = self._reddit_submission(self._seq, time.time(), "dana_k", text)
            else:
                post = self._reddit_comment(self._seq, time.time(), "ivan_p", text, thread, thread)
            self.posts["reddit"].append(post)
            self.events.append((time.monotonic(), "reddit", "created", (post.external_id,)))
            return post

    def _new_rss(self, seq, created, author, text, parent) -> Post:
        created = float(int(created))  # RFC 822 dates carry whole seconds
        title = f"Blog post {seq}"
        data = {
            "title": title,
            "link": f"https://blog.example/ladoga/{seq}",
            "guid": f"urn:soak:rss:{seq}",
            "author": author,
            "body": text,
        }
        return Post("rss", data["guid"], seq, created, f"{title}\n\n{text}", None, data)

    def _new_discourse(self, seq, created, author, text, parent) -> Post:
        topics = self._discourse_topics
        if parent is not None:
            topic_id = parent.data["topic_id"]
            number = len(topics[topic_id]) + 1
            reply_to = parent.data["post_number"] if self.rng.random() < 0.5 else None
        else:
            topic_id, number, reply_to = 500 + seq, 1, None
            topics[topic_id] = []
        post_id = seq  # post ids only grow, forum-wide
        data = {
            "id": post_id,
            "topic_id": topic_id,
            "post_number": number,
            "created_at": _iso(created),
            "cooked": f"<p>{escape(text)}</p>",
            "raw": text,
            "username": author,
            "user_id": 10 + AUTHORS.index(author),
            "topic_title": f"Topic {topic_id} about Ladoga",
            "topic_slug": f"topic-{topic_id}",
            "reply_to_post_number": reply_to,
            "post_url": f"/t/topic-{topic_id}/{topic_id}/{number}",
        }
        topics[topic_id].append(None)  # placeholder, replaced below
        parent_number = reply_to or (1 if number > 1 else None)
        parent_id = str(topics[topic_id][parent_number - 1].external_id) if parent_number else None
        stored = f"{data['topic_title']}\n\n{text}" if number == 1 else text
        post = Post("discourse", str(post_id), seq, created, stored, parent_id, data)
        topics[topic_id][-1] = post
        return post

    def snapshot(self, platform: str) -> list[Post]:
        with self.lock:
            return list(self.posts[platform])

    # --- failure injection ---------------------------------------------------------------

    def pick_failure(self, platform: str) -> str | None:
        with self.lock:
            self.stats.requests[platform] += 1
            rate = self.failure_rates.get(platform, self.failure_rate)
            if not self.failures_on or self.rng.random() >= rate:
                return None
            kind = self.rng.choice(FAILURE_KINDS)
            self.stats.injected[(platform, kind)] += 1
            return kind

    def pause(self) -> None:
        with self.lock:
            low, high = self.latency
            delay = self.rng.uniform(low, high) if high else 0.0
        if delay:
            time.sleep(delay)


# --- HTTP ------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)  # posts carried by the body


def _json(payload: Any, status: int = 200, ids: list[str] | None = None, **headers: str) -> Reply:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return Reply(status, body, headers=headers, ids=ids or [])


def _handler_for(fake: FakePlatforms) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: no idle sockets left

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            self._handle(parse_qs(urlsplit(self.path).query))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            self._handle(parse_qs(body) | parse_qs(urlsplit(self.path).query))

        def _handle(self, params: dict[str, list[str]]) -> None:
            path = urlsplit(self.path).path
            platform, _, rest = path.lstrip("/").partition("/")
            route = ROUTES.get(platform)
            if route is None:
                fake.unexpected.append(self.path)
                self._send(_json({"error": "not found"}, 404))
                return
            fake.pause()
            if fake.on_request is not None:
                fake.on_request(platform, "/" + rest)
            one = {k: v[-1] for k, v in params.items()}
            data_endpoint = not rest.startswith("api/v1/access_token")
            kind = fake.pick_failure(platform) if data_endpoint else None
            if kind is not None:
                with fake.lock:
                    fake.events.append((time.monotonic(), platform, f"{kind} {self.path}", ()))
            if kind == "slow":
                time.sleep(fake.slow_seconds)  # the client gave up long ago
            if kind == "rate_limit":
                self._send(RATE_LIMITS[platform](fake))
                return
            if kind == "server_error":
                self._send(Reply(500, b"<html>500 Internal Server Error</html>", "text/html"))
                return
            try:
                reply = route(fake, "/" + rest, one, params)
            except LookupError:
                fake.unexpected.append(self.path)
                reply = _json({"error": "not found"}, 404)
            if kind == "truncated" and reply.status == 200 and len(reply.body) > 2:
                with fake.lock:
                    cut = fake.rng.randrange(1, len(reply.body) - 1)
                reply = Reply(200, reply.body[:cut], reply.content_type, reply.headers)
            elif reply.status == 200 and kind is None:
                with fake.lock:
                    fake.stats.ok[platform] += 1
                    fake.stats.served_ids[platform].update(reply.ids)
                    fake.events.append((time.monotonic(), platform, self.path, tuple(reply.ids)))
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)
            except OSError:
                pass  # the client timed out and closed the connection

    return Handler


# --- rate limits, in each platform's own words ------------------------------------------


def _twitter_429(fake: FakePlatforms) -> Reply:
    reset = int(time.time()) + 1
    problem = {"title": "Too Many Requests", "detail": "Too Many Requests", "status": 429}
    return _json(
        problem,
        429,
        **{
            "x-rate-limit-limit": "450",
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(reset),
        },
    )


def _vk_error6(fake: FakePlatforms) -> Reply:
    # VK answers 200 with error 6 ("Too many requests per second"); it has no headers.
    error = {"error_code": 6, "error_msg": "Too many requests per second", "request_params": []}
    return _json({"error": error})


def _reddit_429(fake: FakePlatforms) -> Reply:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-used": "600", "x-ratelimit-reset": "1"}
    return _json({"message": "Too Many Requests", "error": 429}, 429, **headers)


def _rss_429(fake: FakePlatforms) -> Reply:
    return Reply(429, b"Too Many Requests", "text/plain", {"Retry-After": "1"})


def _discourse_429(fake: FakePlatforms) -> Reply:
    body = {
        "errors": ["You've performed this action too many times. Please wait 1 second."],
        "error_type": "rate_limit",
        "extras": {"wait_seconds": 1, "time_left": "1 second"},
    }
    with fake.lock:
        header = fake.rng.random() < 0.5
    return _json(body, 429, **({"Retry-After": "1"} if header else {}))


RATE_LIMITS: dict[str, Callable[[FakePlatforms], Reply]] = {
    "twitter": _twitter_429,
    "vk": _vk_error6,
    "reddit": _reddit_429,
    "rss": _rss_429,
    "discourse": _discourse_429,
}


# --- endpoints -------------------------------------------------------------------------


def _twitter(fake: FakePlatforms, path: str, q: dict[str, str], _all: Any) -> Reply:
    if path != "/2/tweets/search/recent":
        raise LookupError(path)
    posts = fake.snapshot("twitter")
    if "since_id" in q:
        posts = [p for p in posts if int(p.external_id) > int(q["since_id"])]
    else:
        start = datetime.fromisoformat(q["start_time"].replace("Z", "+00:00")).timestamp()
        posts = [p for p in posts if p.created >= start]
    posts.sort(key=lambda p: int(p.external_id), reverse=True)
    if "next_token" in q:
        before = int(q["next_token"].removeprefix("nt"))
        posts = [p for p in posts if int(p.external_id) < before]
    size = min(PAGE["twitter"], int(q.get("max_results", 10)))
    page, more = posts[:size], len(posts) > size
    if not page:
        return _json({"meta": {"result_count": 0}})
    users = {
        p.data["author_id"]: {
            "id": p.data["author_id"],
            "username": AUTHORS[int(p.data["author_id"]) - 1000],
            "name": AUTHORS[int(p.data["author_id"]) - 1000].title(),
            "public_metrics": {"followers_count": 100 + int(p.data["author_id"]) - 1000},
        }
        for p in page
    }
    meta = {
        "newest_id": page[0].external_id,
        "oldest_id": page[-1].external_id,
        "result_count": len(page),
    }
    if more:
        meta["next_token"] = f"nt{page[-1].external_id}"
    body = {"data": [p.data for p in page], "includes": {"users": list(users.values())}}
    return _json({**body, "meta": meta}, ids=[p.external_id for p in page])


def _vk(fake: FakePlatforms, path: str, q: dict[str, str], _all: Any) -> Reply:
    if path != "/method/newsfeed.search":
        raise LookupError(path)
    if q.get("access_token") != "vk-soak-token":
        return _json({"error": {"error_code": 5, "error_msg": "User authorization failed"}})
    posts = [p for p in fake.snapshot("vk") if p.data["date"] >= int(q["start_time"])]
    posts.sort(key=lambda p: (p.data["date"], p.seq), reverse=True)
    if q.get("start_from"):
        date, seq = map(int, q["start_from"].split("/"))
        posts = [p for p in posts if (p.data["date"], p.seq) < (date, seq)]
    size = min(PAGE["vk"], int(q.get("count", 30)))
    page, more = posts[:size], len(posts) > size
    response: dict[str, Any] = {
        "items": [p.data for p in page],
        "count": len(posts),
        "total_count": len(posts),
        "profiles": [
            {"id": 52000111, "first_name": "Dana", "screen_name": "dana_k", "followers_count": 7},
            {"id": 61000333, "first_name": "Ivan", "screen_name": "ivan_p", "followers_count": 9},
        ],
        "groups": [{"id": 170000222, "name": "Ladoga fans", "screen_name": "ladoga_fans"}],
    }
    if more:
        response["next_from"] = f"{page[-1].data['date']}/{page[-1].seq}"
    return _json({"response": response}, ids=[p.external_id for p in page])


def _reddit(fake: FakePlatforms, path: str, q: dict[str, str], _all: Any) -> Reply:
    if path == "/api/v1/access_token":
        token = {"access_token": "reddit-soak-token", "expires_in": 86400, "scope": "*"}
        return _json({**token, "token_type": "bearer"})
    posts = fake.snapshot("reddit")
    if path.startswith("/r/") and path.rstrip("/").endswith("/search"):
        subs = [p for p in posts if p.external_id.startswith("t3_")]
        subs.sort(key=lambda p: p.seq)
        limit = min(100, int(q.get("limit", 25)))
        if q.get("before"):
            anchor = int(q["before"].removeprefix("t3_"), 36)
            newer = [p for p in subs if int(p.data["id"], 36) > anchor]
            page = newer[:limit]  # the items just newer than the anchor
        else:
            page = subs[-limit:]
        children = [{"kind": "t3", "data": p.data} for p in reversed(page)]
        listing = {"kind": "Listing", "data": {"children": children, "after": None, "before": None}}
        return _json(listing, ids=[p.external_id for p in page], **_reddit_quota())
    if path.startswith("/comments/"):
        sid = path.strip("/").split("/")[1]
        submission = next((p for p in posts if p.external_id == f"t3_{sid}"), None)
        if submission is None:
            raise LookupError(path)
        comments = [p for p in posts if p.data.get("link_id") == submission.external_id]
        data = dict(submission.data, num_comments=len(comments))
        tree = _comment_tree(comments, submission.external_id)
        body = [
            {"kind": "Listing", "data": {"children": [{"kind": "t3", "data": data}]}},
            {"kind": "Listing", "data": {"children": tree, "after": None, "before": None}},
        ]
        return _json(body, ids=[p.external_id for p in comments], **_reddit_quota())
    raise LookupError(path)


def _reddit_quota() -> dict[str, str]:
    return {"x-ratelimit-remaining": "590", "x-ratelimit-used": "10", "x-ratelimit-reset": "300"}


def _comment_tree(comments: list[Post], parent: str) -> list[dict[str, Any]]:
    children = [c for c in comments if c.parent_external_id == parent]
    children.sort(key=lambda c: c.seq, reverse=True)  # sort=new
    out = []
    for comment in children:
        replies = _comment_tree(comments, comment.external_id)
        data = dict(comment.data)
        data["replies"] = (
            {"kind": "Listing", "data": {"children": replies, "after": None, "before": None}}
            if replies
            else ""
        )
        out.append({"kind": "t1", "data": data})
    return out


def _rss(fake: FakePlatforms, path: str, q: dict[str, str], _all: Any) -> Reply:
    if path != "/feed.xml":
        raise LookupError(path)
    posts = fake.snapshot("rss")[-RSS_WINDOW:]
    items = []
    for post in reversed(posts):
        d = post.data
        stamp = email.utils.format_datetime(datetime.fromtimestamp(post.created, UTC), True)
        items.append(
            f"<item><title>{escape(d['title'])}</title><link>{d['link']}</link>"
            f'<guid isPermaLink="false">{d["guid"]}</guid><pubDate>{stamp}</pubDate>'
            f"<dc:creator>{d['author']}</dc:creator>"
            f"<description>{escape('<p>' + escape(d['body']) + '</p>')}</description></item>"
        )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        "<title>Ladoga blog</title><link>https://blog.example/</link>"
        "<description>Posts</description>" + "".join(items) + "</channel></rss>\n"
    )
    return Reply(
        200, xml.encode(), "application/rss+xml; charset=utf-8", ids=[p.external_id for p in posts]
    )


def _discourse(fake: FakePlatforms, path: str, q: dict[str, str], _all: Any) -> Reply:
    posts = fake.snapshot("discourse")
    if path == "/posts.json":
        posts.sort(key=lambda p: p.data["id"], reverse=True)
        if q.get("before"):
            posts = [p for p in posts if p.data["id"] < int(q["before"])]
        page = posts[: PAGE["discourse"]]
        return _json({"latest_posts": [p.data for p in page]}, ids=[p.external_id for p in page])
    if path.startswith("/posts/by_number/"):
        topic, number = path.removesuffix(".json").split("/")[-2:]
        for post in posts:
            if post.data["topic_id"] == int(topic) and post.data["post_number"] == int(number):
                return _json(post.data)
        not_found = {"errors": ["The requested URL or resource could not be found."]}
        return _json({**not_found, "error_type": "not_found"}, 404)
    raise LookupError(path)


ROUTES: dict[str, Callable[..., Reply]] = {
    "twitter": _twitter,
    "vk": _vk,
    "reddit": _reddit,
    "rss": _rss,
    "discourse": _discourse,
}


# --- routing fixed hosts to the server -------------------------------------------------


def route_to(fake: FakePlatforms, original_send: Callable[..., requests.Response]) -> Callable:
    """A replacement for ``HTTPAdapter.send`` sending the platform hosts to ``fake``.

    Only the URL changes (``https://api.twitter.com/2/...`` becomes
    ``http://127.0.0.1:<port>/twitter/2/...``); the response is handed back with the
    original request and URL, so the client library sees its own call answered. Any
    other host is refused: the soak test never reaches the internet.
    """

    def send(self: requests.adapters.HTTPAdapter, request: requests.PreparedRequest, **kwargs):
        parts = urlsplit(request.url)
        kwargs["proxies"] = {}
        if parts.hostname == "127.0.0.1":
            return original_send(self, request, **kwargs)
        prefix = ROUTED_HOSTS.get(parts.hostname or "")
        if prefix is None:
            fake.unexpected.append(request.url)
            raise requests.ConnectionError(f"soak test: no route to {request.url}")
        local = request.copy()
        query = f"?{parts.query}" if parts.query else ""
        local.url = f"{fake.base_url}/{prefix}{parts.path}{query}"
        response = original_send(self, local, **kwargs)
        response.request, response.url = request, request.url
        return response

    return send
