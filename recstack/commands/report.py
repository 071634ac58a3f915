"""``recstack report``: the experiment report from the facade's store (CTR and conversion per variant)."""

from __future__ import annotations

import argparse
import asyncio
import json

from recstack.client.core.report import experiment_report, format_report
from recstack.client.core.sessions import RedisStore
from recstack.settings import Settings


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="recstack report", description=__doc__)
    parser.add_argument("--redis-url", default=settings.facade.redis_url, required=settings.facade.redis_url is None,
                        help="the facade's store (exposures and events) [RECSTACK_FACADE__REDIS_URL]")
    parser.add_argument("--window-hours", type=float, default=24.0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    async def read():
        store = RedisStore(args.redis_url)
        try:
            return await store.exposures(), await store.events()
        finally:
            await store.close()

    exposures, events = asyncio.run(read())
    report = experiment_report(exposures, events, args.window_hours * 3600)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
