"""Users, passwords and sessions, in the ledger's database; sign-in rate limiting.

Passwords are argon2id hashes (argon2-cffi's defaults). A session is a random 32-byte token
in an HTTP-only, SameSite=Strict cookie; the database keeps only its SHA-256, beside the
session's CSRF token, so a copy of the database signs nobody in. A disabled user's sessions
end at their next request: every request reads the user's row.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, insert, select, update

from console.roles import ROLES
from ledger.schema import sessions, users

SESSION_MS = 12 * 3_600_000          # one duty shift
USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MIN_PASSWORD = 8

_hasher = PasswordHasher()
#: Verified against when the username is unknown, so a wrong name takes as long as a wrong
#: password and the timing does not tell which names exist.
_DUMMY = _hasher.hash("not a password of anyone")


class UserError(ValueError):
    """A user command that cannot be done; the message says why."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    disabled: bool
    #: The board's sound and browser notification, the user's own switch (kept with the user,
    #: so it follows them from the desk to the big screen).
    notify: bool = False


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    expires_at: int


def _now() -> int:
    return int(time.time() * 1000)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_username(name: str) -> str:
    if not USERNAME.match(name):
        raise UserError(f"{name!r} is not a username: 1-64 letters, digits, '.', '_' or '-'")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password is too short: at least {MIN_PASSWORD} characters")
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"{role!r} is not a role: use one of {', '.join(ROLES)}")
    return role


class Accounts:
    """The console's users and sessions on the ledger's database engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- users (``cityorder console users``) ------------------------------------------------

    def add(self, username: str, password: str, role: str) -> None:
        check_username(username), check_password(password), check_role(role)
        with self.engine.begin() as conn:
            if conn.execute(select(users.c.username).where(users.c.username == username)).first():
                raise UserError(f"user {username!r} already exists: use `passwd` to change the "
                                "password, or choose another name")
            now = _now()
            conn.execute(insert(users).values(
                username=username, password_hash=_hasher.hash(password), role=role,
                disabled=False, created_at=now, updated_at=now))

    def passwd(self, username: str, password: str) -> None:
        check_password(password)
        self._update(username, password_hash=_hasher.hash(password))
        self.end_sessions(username)

    def set_role(self, username: str, role: str) -> None:
        self._update(username, role=check_role(role))

    def disable(self, username: str) -> None:
        self._update(username, disabled=True)
        self.end_sessions(username)

    def enable(self, username: str) -> None:
        self._update(username, disabled=False)

    def set_notify(self, username: str, on: bool) -> None:
        self._update(username, notify=on)

    def _update(self, username: str, **values: object) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(update(users).where(users.c.username == username)
                                .values(updated_at=_now(), **values))
            if done.rowcount == 0:
                raise UserError(f"no user {username!r}: `cityorder console users list` shows them")

    def list(self) -> list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users.c.username, users.c.role, users.c.disabled,
                                       users.c.notify).order_by(users.c.username)).all()
        return [User(r.username, r.role, bool(r.disabled), bool(r.notify)) for r in rows]

    def get(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(users.c.username, users.c.role, users.c.disabled,
                                    users.c.notify).where(users.c.username == username)).first()
        return None if r is None else User(r.username, r.role, bool(r.disabled), bool(r.notify))

    def verify(self, username: str, password: str) -> User | None:
        """The user, if the password is theirs and they are not disabled."""
        with self.engine.connect() as conn:
            r = conn.execute(select(users).where(users.c.username == username)).first()
        stored = _DUMMY if r is None else r.password_hash
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if r is None or r.disabled:
            return None
        return User(r.username, r.role, False)

    # -- sessions -----------------------------------------------------------------------------

    def start(self, user: User, address: str | None) -> tuple[str, Session]:
        """A new session: the cookie's token, and the session (with its CSRF token)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.expires_at < now))
            conn.execute(insert(sessions).values(
                token_hash=_digest(token), username=user.username, csrf=csrf, created_at=now,
                expires_at=now + SESSION_MS, address=(address or "")[:64]))
        return token, Session(user, csrf, now + SESSION_MS)

    def session(self, token: str | None) -> Session | None:
        """The live session of a cookie's token: not expired, its user still enabled."""
        if not token:
            return None
        with self.engine.connect() as conn:
            r = conn.execute(
                select(sessions.c.csrf, sessions.c.expires_at, users.c.username, users.c.role,
                       users.c.disabled, users.c.notify)
                .join(users, users.c.username == sessions.c.username)
                .where(sessions.c.token_hash == _digest(token))).first()
        if r is None or r.expires_at < _now() or r.disabled:
            return None
        return Session(User(r.username, r.role, False, bool(r.notify)), r.csrf, r.expires_at)

    def end(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == _digest(token)))

    def end_sessions(self, username: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.username == username))


class Throttle:
    """Failed sign-ins allowed per key (an address, a username) within a window: beyond it,
    sign-in is refused until the oldest failure leaves the window."""

    def __init__(self, limit: int = 5, window_ms: int = 300_000) -> None:
        self.limit, self.window_ms = limit, window_ms
        self._failures: dict[str, deque[int]] = {}

    def _recent(self, key: str, now: int) -> deque[int]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.window_ms:
            q.popleft()
        return q

    def blocked_for(self, keys: list[str], now: int) -> int:
        """Milliseconds until a sign-in is allowed for all ``keys`` (0: now)."""
        wait = 0
        for key in keys:
            q = self._recent(key, now)
            if len(q) >= self.limit:
                wait = max(wait, q[0] + self.window_ms - now)
        return wait

    def fail(self, keys: list[str], now: int) -> None:
        for key in keys:
            self._recent(key, now).append(now)
        if len(self._failures) > 10_000:        # keys that only ever failed once, long ago
            for key in [k for k, q in self._failures.items() if not self._recent(k, now)]:
                del self._failures[key]

    def forget(self, keys: list[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)
