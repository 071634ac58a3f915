"""API keys with scopes, stored hashed, in Redis when the facade shares one, in a file otherwise.

Three scopes, each allowing what the one before it allows:

``public``
    Safe to embed in a storefront page: ``GET`` recommendations and similar items, ``POST`` events; only from the
    origins configured for the key, and only for anonymous visitors or users vouched for by a signed user token.
``server``
    A shop's backend: also ranking, search re-ranking, any user id.
``admin``
    Also the catalog, user deletion, the dashboard, the docs and metrics from outside the host.

A key is shown once, when created; the store keeps its SHA-256 (keys are 192 random bits, so a fast hash is safe)
and the facade compares hashes in constant time. A public key also gets a user-token secret: the shop's backend
signs ``user id + expiry`` with it (:func:`sign_user_token`), so a page can read the recommendations of the user
who is logged in, and nobody can read a stranger's (their reasons would name items of that stranger's history).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

log = logging.getLogger(__name__)

Scope = Literal["public", "server", "admin"]
SCOPES: tuple[Scope, ...] = ("public", "server", "admin")  # each allows what the ones before it allow
ANONYMOUS_PREFIX = "anon_"  # visitor ids the widget makes; never a shop's user id
REDIS_HASH = "keys"  # under the store's prefix: name -> key record (JSON)


def allows(granted: Scope, needed: Scope) -> bool:
    """Whether a key of scope ``granted`` may call what needs ``needed``.

    Examples
    --------
    >>> allows("admin", "public"), allows("public", "server")
    (True, False)
    """
    return SCOPES.index(granted) >= SCOPES.index(needed)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A key as stored: never the key itself."""

    name: str
    scope: Scope
    key_hash: str
    created_at: str
    origins: tuple[str, ...] = ()  # public keys: the pages allowed to use it (scheme://host[:port])
    token_secret: str | None = None  # public keys: signs user tokens (shown once, like the key)
    requests_per_minute: float | None = None  # None: the scope's limit
    revoked: bool = False

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "origins": list(self.origins)})

    @classmethod
    def from_json(cls, text: str) -> ApiKey:
        data = json.loads(text)
        return cls(**{**data, "origins": tuple(data.get("origins", ()))})


@dataclass(frozen=True)
class NewKey:
    """What :func:`create_key` returns: the record to store, and the secrets to show once."""

    record: ApiKey
    key: str
    token_secret: str | None = None


def create_key(name: str, scope: Scope, origins: tuple[str, ...] = (),
               requests_per_minute: float | None = None) -> NewKey:
    """A new random key of ``scope`` (``rsk_<scope>_<32 url-safe characters>``), and a user-token secret for a
    public key.

    Examples
    --------
    >>> new = create_key("storefront", "public", ("https://shop.example",))
    >>> new.key.startswith("rsk_public_"), new.record.key_hash == hash_key(new.key), new.token_secret is not None
    (True, True, True)
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose from {list(SCOPES)}")
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"a key name is 1-64 letters, digits, '-' or '_'; got {name!r}")
    for origin in origins:
        if not origin.startswith(("http://", "https://")) or origin.endswith("/") or origin.count("/") != 2:
            raise ValueError(f"an origin is scheme://host[:port] with no path (https://shop.example); got {origin!r}")
    if origins and scope != "public":
        raise ValueError("origins restrict public keys only (server and admin keys are for backends)")
    if requests_per_minute is not None and requests_per_minute <= 0:
        raise ValueError("requests_per_minute must be positive")
    key = f"rsk_{scope}_{secrets.token_urlsafe(24)}"
    token_secret = secrets.token_urlsafe(32) if scope == "public" else None
    record = ApiKey(name, scope, hash_key(key), datetime.now(UTC).isoformat(timespec="seconds"), tuple(origins),
                    token_secret, requests_per_minute)
    return NewKey(record, key, token_secret)


def sign_user_token(secret: str, user_id: str, ttl_s: int = 3600, now: float | None = None) -> str:
    """What a shop's backend hands its page for the logged-in user: ``<expiry>.<hmac>``.

    Examples
    --------
    >>> token = sign_user_token("s3cret", "u42", ttl_s=60, now=1000)
    >>> token.split(".")[0], verify_user_token("s3cret", "u42", token, now=1030), verify_user_token(
    ...     "s3cret", "u43", token, now=1030), verify_user_token("s3cret", "u42", token, now=1061)
    ('1060', True, False, False)
    """
    expiry = int((time.time() if now is None else now) + ttl_s)
    return f"{expiry}.{_user_mac(secret, user_id, expiry)}"


def verify_user_token(secret: str, user_id: str, token: str, now: float | None = None) -> bool:
    expiry, _, mac = token.partition(".")
    if not expiry.isdigit() or int(expiry) < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(mac, _user_mac(secret, user_id, int(expiry)))


def _user_mac(secret: str, user_id: str, expiry: int) -> str:
    return hmac.new(secret.encode(), f"{user_id}\n{expiry}".encode(), hashlib.sha256).hexdigest()


class KeyStore(Protocol):
    """Where key records live; every facade process reads the same one."""

    def load(self) -> dict[str, ApiKey]:
        """Every key record by name, revoked ones included."""

    def save(self, record: ApiKey) -> None: ...


class FileKeyStore:
    """Key records in a JSON file (written atomically, readable by its owner only): one facade process, or
    several on one host."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> dict[str, ApiKey]:
        if not self.path.exists():
            return {}
        return {name: ApiKey.from_json(text) for name, text in json.loads(self.path.read_text()).items()}

    def save(self, record: ApiKey) -> None:
        self.replace_all(self.load() | {record.name: record})

    def replace_all(self, records: dict[str, ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({name: r.to_json() for name, r in records.items()}, indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


class RedisKeyStore:
    """Key records in a Redis hash, shared by every facade process that uses the same Redis."""

    def __init__(self, url: str, prefix: str = "recstack:"):
        import redis

        self.redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2.0)
        self.key = f"{prefix}{REDIS_HASH}"

    def load(self) -> dict[str, ApiKey]:
        return {name: ApiKey.from_json(text) for name, text in self.redis.hgetall(self.key).items()}

    def save(self, record: ApiKey) -> None:
        self.redis.hset(self.key, record.name, record.to_json())


def open_key_store(redis_url: str | None, keys_file: str | Path | None) -> KeyStore:
    if redis_url:
        return RedisKeyStore(redis_url)
    if keys_file is None:
        raise ValueError("no key store: set the facade's redis_url or keys_file")
    return FileKeyStore(keys_file)


def add_key(store: KeyStore, new: NewKey) -> None:
    if new.record.name in store.load():
        raise ValueError(f"a key named {new.record.name!r} exists; revoke it or choose another name")
    store.save(new.record)


def revoke_key(store: KeyStore, name: str) -> ApiKey:
    record = store.load().get(name)
    if record is None:
        raise ValueError(f"no key named {name!r}")
    revoked = replace(record, revoked=True)
    store.save(revoked)
    return revoked


@dataclass
class KeyRing:
    """The keys a facade process checks against: re-read from the store every ``refresh_s`` seconds, so a new or
    revoked key takes effect on every process within that time, without a restart.

    With keys in Redis, ``fallback`` (the keys file) keeps a copy of the last keys read, used while Redis cannot
    be read, so a Redis outage at start-up does not lock every client out."""

    store: KeyStore
    refresh_s: float = 2.0
    fallback: FileKeyStore | None = None
    _by_hash: dict[str, ApiKey] = field(default_factory=dict)
    _loaded_at: float = float("-inf")
    _loaded_once: bool = False

    def find(self, key: str) -> ApiKey | None:
        """The live (not revoked) record of ``key``, or None."""
        self._refresh()
        candidate = hash_key(key)
        for key_hash, record in self._by_hash.items():  # compare every hash in constant time: no timing oracle
            if hmac.compare_digest(key_hash, candidate):
                return record
        return None

    def knows_origin(self, origin: str) -> bool:
        """Whether a live public key lists ``origin``."""
        self._refresh()
        return any(origin in record.origins for record in self._by_hash.values())

    def _refresh(self) -> None:
        if time.monotonic() - self._loaded_at <= self.refresh_s:
            return
        self._loaded_at = time.monotonic()
        try:
            records = self.store.load()
        except Exception as exc:  # noqa: BLE001 - an unreachable store keeps the keys last read
            if not self._loaded_once and self.fallback is not None:
                records = self.fallback.load()
                log.warning("key store unreadable (%s); using the %d keys of %s", exc, len(records),
                            self.fallback.path)
            else:
                log.warning("key store unreadable, keeping the %d keys read before: %s", len(self._by_hash), exc)
                return
        else:
            self._loaded_once = True
            if self.fallback is not None and records != self.fallback.load():
                self.fallback.replace_all(records)
        self._by_hash = {r.key_hash: r for r in records.values() if not r.revoked}
