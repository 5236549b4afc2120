"""The demo source: replays sample EN/RU mentions of a demo brand, offline.

It behaves like a real connector (paging, cursor, threads, replies) so the
whole loop (collect -> score -> case -> reply) works without credentials.
Replies land in a local JSONL outbox instead of a social network.

Settings: ``page_size`` (6), ``outbox_path`` (default ``<var_dir>/demo-outbox.jsonl``,
``var_dir`` being the common key). No secrets.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Self

from otklik.connectors import Setting
from otklik.domain import MalformedResponse, Page, RawMention

SAMPLE_FILE = "demo_mentions.jsonl"


def load_samples() -> list[dict[str, Any]]:
    """The bundled sample posts, in replay order."""
    text = resources.files("collectors").joinpath(SAMPLE_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class DemoConnector:
    """Releases ``page_size`` sample posts per fetch; loops with fresh ids when done."""

    platform: ClassVar[str] = "demo"
    reply_limit: ClassVar[int | None] = 280
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("page_size", "sample posts released per fetch", default=6),
        Setting("outbox_path", "JSONL file replies are appended to (default: in var_dir)"),
        Setting("var_dir", "common key: directory of the default outbox", default="var"),
    )

    def __init__(self, page_size: int, outbox_path: Path, clock: Any = None) -> None:
        self.page_size = page_size
        self.outbox_path = outbox_path
        self.samples = load_samples()
        self._clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Self:
        """Settings: ``page_size`` (default 6), ``outbox_path`` or ``var_dir``."""
        page_size = settings.get("page_size", 6)
        if not isinstance(page_size, int) or page_size < 1:
            raise ValueError(
                f"demo source: 'page_size' must be a positive integer, got {page_size!r}"
            )
        outbox = settings.get("outbox_path") or Path(str(settings.get("var_dir", "var"))) / (
            "demo-outbox.jsonl"
        )
        return cls(page_size=page_size, outbox_path=Path(str(outbox)))

    def check(self) -> None:
        """Always fine: the demo needs no credentials."""

    def fetch(self, query: str, cursor: str | None) -> Page:
        """Cursor ``"<round>:<index>"`` = how many samples were released so far."""
        round_no, index = _parse_cursor(cursor)
        batch: list[RawMention] = []
        now = self._clock()
        for _ in range(self.page_size):
            sample = self.samples[index]
            batch.append(self._mention(sample, round_no, now))
            index += 1
            if index == len(self.samples):
                round_no, index = round_no + 1, 0
        # give the page increasing timestamps ending at `now`, so threads stay in order
        stamped = [
            _with_time(m, now - timedelta(seconds=len(batch) - i)) for i, m in enumerate(batch)
        ]
        return Page(mentions=stamped, cursor=f"{round_no}:{index}")

    @classmethod
    def reply_length(cls, text: str) -> int:
        """Characters, as the demo's 280 limit counts them."""
        return len(text)

    def reply(self, to: RawMention, text: str, idempotency_key: str = "") -> str:
        """Append the reply to the local outbox file; return its new id."""
        reply_id = f"demo-reply-{uuid.uuid4().hex[:12]}"
        record = {
            "id": reply_id,
            "in_reply_to": to.external_id,
            "text": text,
            "sent_at": self._clock().isoformat(),
        }
        self.outbox_path.parent.mkdir(parents=True, exist_ok=True)
        with self.outbox_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        return reply_id

    def _mention(self, sample: Mapping[str, Any], round_no: int, now: datetime) -> RawMention:
        suffix = "" if round_no == 0 else f"-r{round_no}"
        parent = sample.get("parent")
        return RawMention(
            platform=self.platform,
            external_id=f"demo-{sample['id']}{suffix}",
            url=f"https://demo.otklik.invalid/posts/{sample['id']}{suffix}",
            author_external_id=str(sample["author_id"]),
            author_handle=str(sample["author"]),
            author_followers=sample.get("followers"),
            text=str(sample["text"]),
            created_at=now,
            parent_external_id=f"demo-{parent}{suffix}" if parent else None,
            raw=dict(sample),
        )


def _parse_cursor(cursor: str | None) -> tuple[int, int]:
    if not cursor:
        return 0, 0
    try:
        round_text, index_text = cursor.split(":")
        return int(round_text), int(index_text)
    except ValueError:
        raise MalformedResponse(f"demo cursor {cursor!r} is not '<round>:<index>'") from None


def _with_time(mention: RawMention, created_at: datetime) -> RawMention:
    return replace(mention, created_at=created_at)


def read_outbox(path: Path) -> list[dict[str, Any]]:
    """The replies the demo source has 'posted' (for tests and the demo page)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
