"""Inbox page time with many stored conversations (``make bench``).

Seeds N conversations (default 100,000; ``--posts`` scored customer posts each, default 1)
into a scratch SQLite database with bulk inserts, then times the inbox through the Flask test
client: the first page, a deep keyset page (~90% down the list), and the built-in views.
Prints the median and worst of several requests per page.
Usage: python benchmarks/bench_inbox.py [--n 100000] [--posts 10]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import load_settings  # noqa: E402
from otklik.domain.sla import policy_from_settings  # noqa: E402
from otklik.services import Services  # noqa: E402
from otklik.store import db  # noqa: E402
from otklik.store.inbox_query import SORTS, encode_cursor  # noqa: E402
from otklik.store.models import Author, Brand, Conversation, Mention, Score  # noqa: E402
from otklik.store.projections import due_of  # noqa: E402
from otklik.users import create_user  # noqa: E402

PASSWORD = "benchmark password"
PLATFORMS = ("twitter", "vk", "reddit", "discourse", "rss")
STATUSES = ("new", "new", "open", "open", "pending", "resolved")


def make_runtime(directory: Path) -> Services:
    """A runtime on a scratch SQLite database under ``directory``."""
    config = directory / "bench.toml"
    config.write_text(
        f'var_dir = "{directory}"\n[[brands]]\nname = "Ladoga Coffee"\nhandles = ["ladoga"]\n',
        encoding="utf-8",
    )
    runtime = Services.open(load_settings(config, environ={}))
    runtime.prepare_database()
    return runtime


def seed(runtime: Services, n: int, now: datetime, posts: int = 1) -> None:
    """Bulk-insert ``n`` conversations with ``posts`` scored customer posts each."""
    rng = random.Random(7)
    policy = policy_from_settings(runtime.settings.sla)
    with db.transaction(runtime.sessions) as session:
        brand_id = session.scalar(select(Brand.id))
        authors = [
            {
                "id": i + 1,
                "platform": PLATFORMS[i % 5],
                "external_id": f"a{i}",
                "handle": f"user_{i}",
                "followers": rng.randint(0, 200_000),
            }
            for i in range(n // 5)
        ]
        session.execute(insert(Author), authors)
        for start in range(0, n, 20_000):
            rows = [
                _conversation(i + 1, brand_id, rng, now)
                for i in range(start, min(n, start + 20_000))
            ]
            for row in rows:
                row["sla_due_at"], row["sla_risk_at"] = due_of(Conversation(**row), policy)
            session.execute(insert(Conversation), rows)
            for k in range(posts):
                mentions = [_mention(r, len(authors), k, posts) for r in rows]
                session.execute(insert(Mention), mentions)
                session.execute(
                    insert(Score), [_score(r, m["id"]) for r, m in zip(rows, mentions, strict=True)]
                )


def _conversation(i: int, brand_id: int, rng: random.Random, now: datetime) -> dict:
    opened = now - timedelta(minutes=rng.randint(0, 60 * 24 * 30))
    complaint, question = rng.random() < 0.2, rng.random() < 0.2
    status = rng.choice(STATUSES)
    return {
        "id": i,
        "brand_id": brand_id,
        "platform": PLATFORMS[i % 5],
        "status": status,
        "priority": rng.randint(0, 100),
        "opened_at": opened,
        "last_customer_at": opened,  # (the later posts of a thread keep the seed simple)
        "cycle_started_at": opened,
        "resolved_at": opened + timedelta(hours=1) if status == "resolved" else None,
        "peak_negative": rng.random(),
        "sentiment": rng.choice(("negative", "neutral", "positive")),
        "has_complaint": complaint,
        "has_question": question,
        "language": rng.choice(("en", "ru")),
        "assignee_id": 1 if rng.random() < 0.1 else None,
    }


def _mention(conversation: dict, authors: int, k: int, posts: int) -> dict:
    i = conversation["id"]
    at = conversation["opened_at"] + timedelta(minutes=k)
    return {
        "id": k * 10_000_000 + i,
        "platform": conversation["platform"],
        "external_id": f"m{i}-{k}",
        "url": "",
        "text": f"Post {k + 1} of {posts} in conversation {i} about Ladoga Coffee",
        "created_at": at,
        "fetched_at": at,
        "author_id": (i % authors) + 1,
        "conversation_id": i,
        "is_ours": False,
        "raw": {},
    }


def _score(conversation: dict, mention_id: int) -> dict:
    return {
        "mention_id": mention_id,
        "sentiment": conversation["sentiment"],
        "prob_negative": conversation["peak_negative"],
        "prob_neutral": 0.1,
        "prob_positive": 0.1,
        "complaint_prob": 0.5,
        "is_complaint": conversation["has_complaint"],
        "is_question": conversation["has_question"],
        "lang": conversation["language"],
        "model_version": "bench",
    }


def deep_cursor(runtime: Services, fraction: float) -> str:
    """The keyset cursor of the row ``fraction`` down the default (priority) order."""
    keys = SORTS["priority"]
    with runtime.sessions() as session:
        total = session.query(Conversation).filter(Conversation.status != "resolved").count()
        order = [c.desc() if d else c.asc() for c, d in keys]
        row = session.execute(
            select(*[c for c, _ in keys])
            .where(Conversation.status != "resolved")
            .order_by(*order)
            .offset(int(total * fraction))
            .limit(1)
        ).one()
    return encode_cursor(list(row))


def time_page(client, url: str, repeat: int) -> tuple[float, float, int]:
    """(median ms, worst ms, rows) over ``repeat`` requests after one warm-up."""
    client.get(url)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    rows = response.get_data(as_text=True).count('class="conversation-row')
    return statistics.median(times), max(times), rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="conversations to seed")
    parser.add_argument("--posts", type=int, default=1, help="customer posts per conversation")
    parser.add_argument("--repeat", type=int, default=9, help="requests per page")
    args = parser.parse_args()
    from web import create_app

    with tempfile.TemporaryDirectory(prefix="otklik-bench-") as tmp:
        runtime = make_runtime(Path(tmp))
        with db.transaction(runtime.sessions) as session:
            create_user(session, "bench", PASSWORD, role="lead")
        now = datetime.now(UTC)
        started = time.perf_counter()
        seed(runtime, args.n, now, args.posts)
        elapsed = time.perf_counter() - started
        print(
            f"seeded {args.n:,} conversations, {args.n * args.posts:,} mentions in {elapsed:.1f} s"
        )
        started = time.perf_counter()
        app = create_app(runtime, {"TESTING": True, "WTF_CSRF_ENABLED": False})
        elapsed = time.perf_counter() - started
        print(f"console start (SLA times for a new policy, ANALYZE) {elapsed:.2f} s")
        client = app.test_client()
        client.post("/login", data={"username": "bench", "password": PASSWORD})
        pages = {
            "first page (priority)": "/",
            "deep keyset page (90%)": "/?after=" + deep_cursor(runtime, 0.9),
            "sort by SLA due time": "/?sort=sla",
            "view: my open": "/?view=mine",
            "view: unassigned complaints": "/?view=unassigned-complaints",
            "view: breaching soon": "/?view=breaching",
            "filter: vk + negative + ru": "/?platform=vk&sentiment=negative&language=ru",
        }
        print(f"{'page':32} {'median ms':>10} {'worst ms':>9} {'rows':>5}")
        for name, url in pages.items():
            median, worst, rows = time_page(client, url, args.repeat)
            print(f"{name:32} {median:10.1f} {worst:9.1f} {rows:5d}")
        runtime.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
