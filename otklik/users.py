"""Console users: argon2 password hashes, roles, the password policy and username rules."""

from __future__ import annotations

import secrets
import unicodedata
from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from otklik.store.models import Role, User

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
MAX_USERNAME_LENGTH = 80
USERNAME_PUNCTUATION = frozenset("._-")
COMMON_PASSWORDS_FILE = "common_passwords.txt"  # beside this module; its header names the source

# Letters of other scripts that look like a Latin letter or digit (after casefolding), for the
# username key: a whole-script look-alike such as Cyrillic "ӏеаԁ" must not pass for "lead". A
# hand-picked subset of Unicode's confusables (UTS #39) for the scripts a console user is likely
# to type; a name that mixes scripts is refused outright (``check_username``).
_LOOK_ALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "г": "r", "е": "e", "ё": "e", "з": "3", "к": "k", "м": "m",
        "н": "h", "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x",
        "ш": "w", "ъ": "b", "ь": "b", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
        "ԛ": "q", "ԝ": "w", "ӏ": "l", "һ": "h", "ү": "y", "ґ": "r", "ɡ": "g",
        # Greek
        "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
        "ο": "o", "ρ": "p", "σ": "o", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "c",
        # digits and Latin letters that read as one another
        "0": "o", "1": "l",
    }
)  # fmt: skip


class UserError(ValueError):
    """A user could not be created (or a password set) as asked."""


def normalise_username(username: str) -> str:
    """The stored form of a username: NFKC, without surrounding whitespace."""
    return unicodedata.normalize("NFKC", username).strip()


def username_key(username: str) -> str:
    """What two usernames must not share: NFKC, casefolded, look-alike letters folded.

    ``ADMIN``, ``admin``, fullwidth ``ａｄｍｉｎ`` and Cyrillic ``аdmin`` have one key.
    """
    folded = unicodedata.normalize("NFKC", normalise_username(username).casefold())
    return folded.translate(_LOOK_ALIKES)


def check_username(username: str) -> str:
    """The normalised username, or UserError: letters, digits and ``._-`` of one script."""
    name = normalise_username(username)
    if not name:
        raise UserError("username is empty")
    if len(name) > MAX_USERNAME_LENGTH:
        raise UserError(f"username must have at most {MAX_USERNAME_LENGTH} characters")
    scripts = set()
    for ch in name:
        if ch in USERNAME_PUNCTUATION or ("0" <= ch <= "9"):
            continue
        if not unicodedata.category(ch).startswith("L") or unicodedata.category(ch) == "Lm":
            raise UserError("a username may hold only letters, digits and . _ -")
        scripts.add(_script(ch))
    if len(scripts) > 1:
        raise UserError("a username must not mix alphabets (such as Latin and Cyrillic)")
    return name


def _script(letter: str) -> str:
    """The script of a letter, from its Unicode name ('LATIN', 'CYRILLIC', 'GREEK', 'CJK'...)."""
    return unicodedata.name(letter, "UNKNOWN").split(" ", 1)[0]


def check_password(password: str, username: str = "") -> None:
    """UserError unless ``password`` is long enough, not too long and not a common one."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"password must have at most {MAX_PASSWORD_LENGTH} characters")
    folded = password.strip().casefold()
    if folded in common_passwords() or (username and folded == username.casefold()):
        raise UserError("this password is too common; choose a longer or less usual one")
    if len(set(folded)) < 3:
        raise UserError("this password is too common; choose a longer or less usual one")


@cache
def common_passwords() -> frozenset[str]:
    """The common passwords refused for new passwords (lowercase, loaded once)."""
    text = resources.files("otklik").joinpath(COMMON_PASSWORDS_FILE).read_text(encoding="utf-8")
    _header, _blank, passwords = text.partition("\n\n")  # the header ends at the first blank line
    return frozenset(line.strip().casefold() for line in passwords.splitlines() if line.strip())


def create_user(session: Session, username: str, password: str, role: str = Role.AGENT) -> User:
    """Add a user; the password is stored only as an argon2 hash."""
    username = check_username(username)
    if role not in {r.value for r in Role}:
        raise UserError(f"role {role!r} is not one of: {', '.join(r.value for r in Role)}")
    check_password(password, username)
    key = username_key(username)
    for existing in session.scalars(select(User.username)):
        if existing == username or username_key(existing) == key:
            raise UserError(f"user {existing!r} already exists (or one that looks the same)")
    user = User(username=username, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def set_password(user: User, password: str) -> None:
    """Give ``user`` a new password (UserError when the policy refuses it)."""
    check_password(password, user.username)
    user.password_hash = _hasher.hash(password)


def verify_password(user: User, password: str) -> bool:
    """Whether ``password`` is the user's (rehashing it when the argon2 costs have changed)."""
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return True


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with these credentials, or None."""
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None and normalise_username(username) != username.strip():
        user = session.scalar(select(User).where(User.username == normalise_username(username)))
    if user is None or not user.active:
        _hasher.hash(password)  # spend the same time as a real check
        return None
    return user if verify_password(user, password) else None


def count_users(session: Session) -> int:
    """How many users exist."""
    return session.scalar(select(func.count(User.id))) or 0


def generate_password() -> str:
    """A random password for the first admin."""
    return secrets.token_urlsafe(16)
