"""Rebuild the Russian catalogue: extract the console's strings, merge ru.py, compile.

Run from the repository root: ``python web/translations/build.py``. The compiled
``messages.mo`` is committed, so running the console needs no build step.
"""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

HERE = Path(__file__).resolve().parent
WEB = HERE.parent
# strings shown through _(value) that extraction cannot see
DYNAMIC = (
    "negative",
    "neutral",
    "positive",
    "open",
    "new",
    "pending",
    "resolved",
    "all",
    "high",
    "normal",
    "low",
    "true",
    "false",
    "queued",
    "sending",
    "sent",
    "failed",
    "unknown",
)


def main() -> int:
    """Extract, translate from ru.py, write messages.po and messages.mo; list gaps."""
    pot = HERE / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            str(WEB / "babel.cfg"),
            "-o",
            str(pot),
            "--omit-header",
            str(WEB),
        ],
        check=True,
        capture_output=True,
    )
    with pot.open("rb") as fh:
        catalog = read_po(fh, locale="ru")
    pot.unlink()
    for msgid in DYNAMIC:
        catalog.add(msgid)
    russian = runpy.run_path(str(HERE / "ru.py"))["RU"]
    missing = []
    for message in catalog:
        if message.id:
            message.string = russian.get(message.id, "")
            if not message.string:
                missing.append(message.id)
    out = HERE / "ru" / "LC_MESSAGES"
    out.mkdir(parents=True, exist_ok=True)
    with (out / "messages.po").open("wb") as fh:
        write_po(fh, catalog, width=100)
    with (out / "messages.mo").open("wb") as fh:
        write_mo(fh, catalog)
    for msgid in missing:
        print(f"untranslated: {msgid!r}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
