"""``recstack forget USER_ID...``: delete users from every store recstack keeps (as ``DELETE /api/v1/users/{id}``):
the session store, the build folder's prepared datasets and scoring outputs, and the tombstone list every later
build applies. A running facade forgets them within seconds (it watches the tombstone list)."""

from __future__ import annotations

import argparse
import asyncio

from recstack.client.core.sessions import open_store
from recstack.client.forget import forget_users
from recstack.settings import Settings


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="recstack forget", description=__doc__)
    parser.add_argument("user_ids", nargs="+", metavar="USER_ID")
    args = parser.parse_args(argv)
    config = settings.facade_config()

    async def forget():
        store = open_store(config.redis_url, config.session_length, {}, config.store_policy)
        try:
            return await forget_users(args.user_ids, store, settings.build_dir)
        finally:
            await store.close()

    if config.redis_url is None:
        print("no RECSTACK_FACADE__REDIS_URL: live sessions of an in-process store end with their facade process; "
              "removing the users from the build folder")
    print(asyncio.run(forget()).model_dump_json(indent=2))
    return 0
