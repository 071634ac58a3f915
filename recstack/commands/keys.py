"""``recstack keys create|list|revoke``: the facade's API keys (client/README.md, "Keys, limits and data rights").

Keys live in the facade's Redis when it has one (``RECSTACK_FACADE__REDIS_URL``), in ``build/keys.json``
otherwise; a running facade picks up a new or revoked key within ``keys_refresh_s`` seconds.
"""

from __future__ import annotations

import argparse
import sys

from recstack.client.core.keys import SCOPES, add_key, create_key, open_key_store, revoke_key
from recstack.settings import Settings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recstack keys", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a key and print it (once: only its hash is stored)")
    create.add_argument("--scope", choices=SCOPES, required=True,
                        help="public: a storefront page; server: a shop's backend; admin: operators")
    create.add_argument("--name", required=True, help="what the key is for (1-64 letters, digits, - or _)")
    create.add_argument("--origin", action="append", default=[], dest="origins",
                        help="public keys: a page origin allowed to use it (https://shop.example); repeatable")
    create.add_argument("--requests-per-minute", type=float, help="this key's rate limit [the scope's]")
    sub.add_parser("list", help="every key's name, scope, origins and state (never the key)")
    revoke = sub.add_parser("revoke", help="revoke a key: refused by every facade process within seconds")
    revoke.add_argument("name")
    return p


def main(argv: list[str], settings: Settings) -> int:
    args = parser().parse_args(argv)
    config = settings.facade_config()
    store = open_key_store(config.redis_url, config.keys_file)
    try:
        if args.action == "create":
            new = create_key(args.name, args.scope, tuple(args.origins), args.requests_per_minute)
            add_key(store, new)
            print(f"key {args.name!r} ({args.scope}) created; it is shown this once, store it now:\n{new.key}")
            if new.token_secret:
                print(f"user-token secret (your backend signs logged-in users' ids with it; keep it off pages):\n"
                      f"{new.token_secret}")
        elif args.action == "list":
            records = sorted(store.load().values(), key=lambda r: r.created_at)
            print(f"{'name':<24} {'scope':<7} {'state':<8} {'created':<26} origins")
            for r in records:
                print(f"{r.name:<24} {r.scope:<7} {'revoked' if r.revoked else 'live':<8} {r.created_at:<26} "
                      f"{', '.join(r.origins)}")
        else:
            revoke_key(store, args.name)
            print(f"key {args.name!r} revoked; every facade refuses it within {config.keys_refresh_s:g} s")
    except ValueError as exc:
        print(f"recstack keys: {exc}", file=sys.stderr)
        return 2
    return 0
