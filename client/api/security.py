"""Who may call what: API keys with scopes, the origins of public keys, signed user tokens and rate limits.

Every route declares the scope it needs with a dependency alias (:data:`PublicCaller`, :data:`ServerCaller`,
:data:`AdminCaller`); refusals happen before the route runs, so a refused request records nothing. Keys, tokens and
their scopes are described in :mod:`recstack.client.core.keys`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import APIKeyHeader, HTTPBearer
from recstack.client.api.problems import problem_responses
from recstack.client.core.config import FacadeConfig
from recstack.client.core.keys import ANONYMOUS_PREFIX, ApiKey, KeyRing, Scope, allows, verify_user_token
from recstack.client.core.ratelimit import RateLimiter

log = logging.getLogger(__name__)
KEY_HEADER = "X-API-Key"
USER_TOKEN_HEADER = "X-User-Token"
# Operators' routes: open to the host itself (a health checker, a local Prometheus), an admin key from elsewhere.
OPERATOR_PATHS = ("/ready", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
LOOPBACK = ("127.0.0.1", "::1", "localhost")
CORS_HEADERS = {"Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": f"Content-Type, Authorization, {KEY_HEADER}, {USER_TOKEN_HEADER}",
                "Access-Control-Max-Age": "600"}
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="recstack"'}


# What every keyed route may answer besides its own statuses (declared in the OpenAPI schema).
KEYED_RESPONSES = problem_responses(401, 403, 429)


@dataclass(frozen=True)
class Caller:
    """An admitted request: its key (None when auth is off), client address and user token."""

    key: ApiKey | None
    client: str
    user_token: str | None = None

    @property
    def contributor(self) -> str | None:
        """Whose share of the live statistics is capped: a public key's client address (pages are untrusted);
        None for backends."""
        return self.client if self.key is not None and self.key.scope == "public" else None

    def may_act_for(self, user_id: str) -> bool:
        """Public keys act for anonymous visitors, or for a user their shop's backend signed a token for."""
        if self.key is None or self.key.scope != "public" or user_id.startswith(ANONYMOUS_PREFIX):
            return True
        return bool(self.user_token and self.key.token_secret
                    and verify_user_token(self.key.token_secret, user_id, self.user_token))

    def check_user(self, user_id: str) -> None:
        if not self.may_act_for(user_id):
            raise HTTPException(403, f"a public key acts for anonymous visitors ({ANONYMOUS_PREFIX}...) or for a "
                                     f"user with a valid {USER_TOKEN_HEADER} signed by the shop's backend")


def presented_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get(KEY_HEADER) or None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Security:
    def __init__(self, config: FacadeConfig, keyring: KeyRing | None, limiter: RateLimiter | None):
        self.config, self.keyring, self.limiter = config, keyring, limiter
        self.limits = {"public": config.public_requests_per_minute, "server": config.server_requests_per_minute,
                       "admin": config.admin_requests_per_minute}

    @property
    def enabled(self) -> bool:
        return self.keyring is not None

    def authenticate(self, request: Request, scope: Scope, in_url: bool = False) -> ApiKey:
        """The request's live key, allowed ``scope``; 401 or 403 otherwise. ``in_url``: the key is the ``key``
        query parameter (beacons cannot set headers), and only a public key may travel there, since URLs end up
        in logs."""
        key = request.query_params.get("key") if in_url else presented_key(request)
        if key is None:
            raise HTTPException(401, f"an API key is needed (Authorization: Bearer <key>, or {KEY_HEADER}); this "
                                     f"call needs scope {scope!r}", headers=WWW_AUTHENTICATE)
        record = self.keyring.find(key)
        if record is None:
            raise HTTPException(401, "unknown or revoked API key", headers=WWW_AUTHENTICATE)
        if in_url and record.scope != "public":
            raise HTTPException(403, f"only a public key may be sent in a URL; key {record.name!r} has scope "
                                     f"{record.scope!r}: send it in a header")
        if not allows(record.scope, scope):
            raise HTTPException(403, f"this call needs a key of scope {scope!r} or above; key {record.name!r} has "
                                     f"scope {record.scope!r}")
        if record.scope == "public" and request.headers.get("origin") not in record.origins:
            raise HTTPException(403, f"public key {record.name!r} is for pages on its origins only "
                                     f"({', '.join(record.origins) or 'none configured'})")
        return record

    async def admit(self, request: Request, response: Response, scope: Scope, in_url: bool = False) -> Caller:
        # A beacon carries the user token in the URL too, for the same reason as its key.
        token = request.query_params.get("user_token") if in_url else request.headers.get(USER_TOKEN_HEADER)
        if not self.enabled:
            return Caller(None, client_address(request), token)
        record = self.authenticate(request, scope, in_url)
        client = client_address(request)
        bucket = f"{record.name}@{client}" if record.scope == "public" else record.name
        verdict = await self.limiter.hit(bucket, record.requests_per_minute or self.limits[record.scope])
        if not verdict.allowed:
            raise HTTPException(429, f"rate limit of key {record.name!r} reached; retry in {verdict.retry_after_s} s",
                                headers=verdict.headers())
        response.headers.update(verdict.headers())
        return Caller(record, client, token)

    def origin_allowed(self, origin: str) -> bool:
        """Whether a page on ``origin`` may call from a browser (CORS): some live public key lists it."""
        return not self.enabled or self.keyring.knows_origin(origin)

    def operator_allowed(self, request: Request) -> None:
        """Operators' routes: the host itself, or an admin key."""
        if self.enabled and client_address(request) not in LOOPBACK:
            self.authenticate(request, "admin")

    async def close(self) -> None:
        if self.limiter is not None:
            await self.limiter.close()


# The two ways to send a key, declared so that /docs offers them ("Authorize"); the key is read by presented_key.
KEY_SCHEMES = (Depends(APIKeyHeader(name=KEY_HEADER, auto_error=False)), Depends(HTTPBearer(auto_error=False)))


def _require(scope: Scope):
    async def dependency(request: Request, response: Response, _header=KEY_SCHEMES[0],
                         _bearer=KEY_SCHEMES[1]) -> Caller:
        return await request.app.state.security.admit(request, response, scope)

    dependency.__name__ = f"require_{scope}_key"
    return Depends(dependency)


async def _require_url_key(request: Request, response: Response) -> Caller:
    return await request.app.state.security.admit(request, response, "public", in_url=True)


PublicCaller = Annotated[Caller, _require("public")]
# navigator.sendBeacon cannot set headers: the public key (and a user token) come as query parameters.
BeaconCaller = Annotated[Caller, Depends(_require_url_key)]
ServerCaller = Annotated[Caller, _require("server")]
AdminCaller = Annotated[Caller, _require("admin")]
