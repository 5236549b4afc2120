"""The console's catalogues: each messages.po is the source of truth, and must be complete.

`make translations` (web/README.md, "Translations") keeps messages.pot, the .po files and the
committed .mo files in step; these tests fail when one of them is behind the code or the .po.
"""

from __future__ import annotations

import importlib
import io
from pathlib import Path

import pytest
from babel.messages import frontend
from babel.messages.catalog import PYTHON_FORMAT, Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from babel.util import pathmatch
from flask import Flask
from flask_babel import force_locale, gettext

from web import i18n

WEB = Path(i18n.__file__).resolve().parent
ROOT = WEB.parent
BABEL_CFG = WEB / "babel.cfg"
POT = i18n.TRANSLATIONS / "messages.pot"
PO_FILES = sorted(i18n.TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))
LOCALES = [po.parent.parent.name for po in PO_FILES]
FIX = "run `make translations`, then translate in the .po (web/README.md, 'Translations')"

Key = tuple[str, str | None]  # (singular msgid, msgctxt)


def _mapping() -> tuple[list[tuple[str, str]], dict[str, dict]]:
    """web/babel.cfg as pybabel reads it (``parse_mapping`` before Babel 2.14)."""
    parse = getattr(frontend, "parse_mapping_cfg", None) or frontend.parse_mapping
    with BABEL_CFG.open(encoding="utf-8") as fh:
        return parse(fh, str(BABEL_CFG))


def _key(message: Message) -> Key:
    msgid = message.id[0] if isinstance(message.id, (list, tuple)) else message.id
    return msgid, message.context


def _messages(catalog: Catalog) -> dict[Key, Message]:
    return {_key(m): m for m in catalog if m.id}


def _read_po(path: Path) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh)


def _forms(value: str | tuple | list) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _placeholders(text: str) -> set[str]:
    """``%(name)d``, ``%s``... as written (``%%`` is a literal percent sign, not a placeholder)."""
    return {m.group(0) for m in PYTHON_FORMAT.finditer(text) if m.group(0) != "%%"}


@pytest.fixture(scope="module")
def extracted() -> dict[Key, Message]:
    """What `pybabel extract -F web/babel.cfg ... web` finds in the code and templates now."""
    method_map, options_map = _mapping()
    catalog = Catalog()
    for filename, lineno, message, comments, context in extract_from_dir(
        str(WEB), method_map, options_map
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return _messages(catalog)


@pytest.fixture(scope="module")
def pot() -> dict[Key, Message]:
    assert POT.is_file(), f"{POT.relative_to(ROOT)} is missing: {FIX}"
    return _messages(_read_po(POT))


def test_there_is_a_russian_catalogue() -> None:
    assert "ru" in LOCALES


def test_babel_cfg_maps_every_template_and_python_file_of_the_console() -> None:
    method_map, _ = _mapping()
    files = [*WEB.glob("*.py"), *(WEB / "templates").glob("**/*.html")]
    assert files
    for path in files:
        relative = path.relative_to(WEB).as_posix()
        methods = [method for pattern, method in method_map if pathmatch(pattern, relative)]
        expected = "jinja2" if path.suffix == ".html" else "python"
        assert methods and methods[0] == expected, f"web/babel.cfg does not map {relative}"


def test_extraction_finds_the_console_strings(extracted) -> None:
    # one from Python code, one from a template, one value shown through _(variable) (web/i18n.py)
    for msgid in ("Wrong username or password.", "Keyboard shortcuts", "resolved"):
        assert (msgid, None) in extracted
    assert set(i18n.DYNAMIC_MESSAGES) <= {msgid for msgid, _ in extracted}


def test_every_value_shown_through_a_variable_is_marked_for_extraction() -> None:
    # templates call _(c.status), _(r.state), _(sentiment), _(b), _(v) on these values
    inbox = importlib.import_module("web.inbox")
    models = importlib.import_module(inbox.Conversation.__module__)
    values = {
        *inbox.STATUS_CHOICES,
        *inbox.SENTIMENTS,
        *inbox.BANDS,
        *(v for values in inbox.casework.CORRECTABLE.values() for v in values),
        *(s.value for s in models.Status),
        *(s.value for s in models.ReplyState),
    }
    missing = sorted(values - set(i18n.DYNAMIC_MESSAGES))
    assert not missing, f"add N_(...) for {missing} to DYNAMIC_MESSAGES in web/i18n.py"


def test_the_committed_pot_is_a_current_extraction(extracted, pot) -> None:
    assert sorted(set(extracted) - set(pot)) == [], f"new strings not in messages.pot: {FIX}"
    assert sorted(set(pot) - set(extracted)) == [], f"messages.pot lists removed strings: {FIX}"
    for key, message in extracted.items():
        assert pot[key].id == message.id, f"{key}: plural changed: {FIX}"
        assert pot[key].python_format == message.python_format, key


@pytest.mark.parametrize("po_path", PO_FILES, ids=LOCALES)
def test_the_po_has_exactly_the_extracted_messages(po_path: Path, extracted) -> None:
    catalog = _read_po(po_path)
    messages = _messages(catalog)
    missing = sorted(set(extracted) - set(messages))
    stale = sorted(set(messages) - set(extracted))
    assert not missing, f"{po_path.relative_to(ROOT)} lacks {missing}: {FIX}"
    assert not stale, (
        f"{po_path.relative_to(ROOT)} has strings no longer in the code {stale}: {FIX}"
    )
    assert not catalog.obsolete, f"obsolete (#~) entries in {po_path.relative_to(ROOT)}: {FIX}"
    for key, message in extracted.items():
        assert messages[key].id == message.id, f"{key}: plural changed: {FIX}"


@pytest.mark.parametrize("po_path", PO_FILES, ids=LOCALES)
def test_every_message_is_translated_and_none_is_fuzzy(po_path: Path) -> None:
    catalog = _read_po(po_path)
    # `pybabel compile` skips a catalogue whose header is fuzzy, and every fuzzy message
    assert not catalog.fuzzy, f"the header of {po_path.relative_to(ROOT)} is marked fuzzy"
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert not fuzzy, f"fuzzy in {po_path.relative_to(ROOT)}: review, then drop '#, fuzzy'"
    untranslated = [
        m.id
        for m in catalog
        if m.id
        and (
            not all(_forms(m.string))
            or len(_forms(m.string)) != (catalog.num_plurals if m.pluralizable else 1)
        )
    ]
    assert not untranslated, f"untranslated in {po_path.relative_to(ROOT)}: {untranslated}"


@pytest.mark.parametrize("po_path", PO_FILES, ids=LOCALES)
def test_python_format_placeholders_survive_translation(po_path: Path) -> None:
    catalog = _read_po(po_path)
    lines = po_path.read_text(encoding="utf-8").splitlines()
    problems = []
    for message in catalog:
        if not message.id:
            continue
        wanted = set().union(*map(_placeholders, _forms(message.id)))
        # read_po re-derives the flag from the msgid, so look at the file's own "#," line
        comments = []
        for line in reversed(lines[: message.lineno - 1]):
            if not line.startswith("#"):
                break
            comments.append(line)
        flagged = any(c.startswith("#,") and "python-format" in c for c in comments)
        if message.python_format != flagged:  # Babel's own rule (a msgid with "%")
            problems.append(
                f"{message.id!r}: python-format flag {'missing' if flagged is False else 'wrong'}"
            )
        for form in _forms(message.string):
            if form and _placeholders(form) != wanted:
                problems.append(f"{message.id!r} -> {form!r}: placeholders {sorted(wanted)}")
    problems += [f"{m.id!r}: {e}" for m, errors in catalog.check() for e in errors]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("po_path", PO_FILES, ids=LOCALES)
def test_the_committed_mo_is_the_compilation_of_the_po(po_path: Path) -> None:
    mo_path = po_path.with_suffix(".mo")
    assert mo_path.is_file(), f"{mo_path.relative_to(ROOT)} is missing: {FIX}"
    compiled = io.BytesIO()
    write_mo(compiled, _read_po(po_path))  # what `pybabel compile` writes (no fuzzy messages)
    compiled.seek(0)
    expected = read_mo(compiled)
    with mo_path.open("rb") as fh:
        committed = read_mo(fh)
    stale = f"{mo_path.relative_to(ROOT)} is not the compiled .po: {FIX}"
    assert {k: m.string for k, m in _messages(committed).items()} == {
        k: m.string for k, m in _messages(expected).items()
    }, stale
    assert {k: m.id for k, m in _messages(committed).items()} == {
        k: m.id for k, m in _messages(expected).items()
    }, stale
    assert committed.plural_forms == expected.plural_forms, stale


def test_the_console_finds_the_russian_catalogue() -> None:
    app = Flask(__name__)
    i18n.init_app(app)
    with app.test_request_context(), force_locale("ru"):
        assert gettext("Inbox") == "Входящие"
        assert gettext("%(n)d min", n=5) == "5 мин"
        assert gettext("resolved") == "решено"
