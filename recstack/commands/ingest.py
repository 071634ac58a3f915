"""``recstack ingest``: move the events the facade accepted from its Redis stream to the event log
(``build/lake/events/date=YYYY-MM-DD/part-*.parquet``, :mod:`recstack.preprocessing.lake`), acknowledging each
batch only once it is durably written. Several can run at once (one Redis consumer group, a ``--name`` each);
SIGTERM or Ctrl-C finishes the current batch. ``recstack preprocess --dataset events --events build/lake/events``
trains on it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time

from recstack.client.core.ingest import Ingest
from recstack.preprocessing.lake import LAKE_NAME, EventLake
from recstack.settings import Settings


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="recstack ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=EventLake, default=EventLake(settings.build_dir / LAKE_NAME),
                        help="the event log's folder [build/lake]")
    parser.add_argument("--batch", type=int, default=5000, help="events per part file")
    parser.add_argument("--once", action="store_true", help="move what is on the stream now, then exit")
    parser.add_argument("--name", help="this consumer's name in the group, kept across restarts [the host name]; "
                                       "give each consumer on one host its own")
    parser.add_argument("--claim-idle-s", type=float, default=60.0,
                        help="take over entries another consumer read but left unacknowledged this long")
    args = parser.parse_args(argv)
    redis_url = settings.facade_config().redis_url
    if not redis_url:
        parser.error("the facade's events are on a Redis stream: set RECSTACK_FACADE__REDIS_URL")
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    stop = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.append(True))
    ingest = Ingest(redis_url, args.lake, args.batch, args.claim_idle_s, args.name)
    start = time.monotonic()
    try:
        stats = ingest.run(lambda: bool(stop), idle_exit=args.once)
        print(f"{stats.events:,} events in {stats.batches} batches to {args.lake.events_dir} in "
              f"{time.monotonic() - start:.1f} s; lag now {ingest.lag():,}")
    finally:
        ingest.close()
    return 0
