"""``recstack score``: top-K lists with reasons for every user (or a given list), for email and push campaigns.

Users are scored in chunks written atomically, so a killed run continues where it stopped (see
:func:`recstack.client.scoring.score_users`); the result is ``recommendations.parquet`` and ``recommendations.csv``.
The batch mode (default) scores a chunk at once as matrices; ``--workers N`` or ``--scheduler tcp://HOST:PORT``
spread the chunks over Dask workers (``pip install 'recstack[dask]'``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recstack.client.scoring import MODES, score_users
from recstack.settings import Settings


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="recstack score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=settings.data_output("synthetic"), help="prepared dataset")
    parser.add_argument("--out", type=Path, default=settings.build_dir / "scores", help="output folder")
    parser.add_argument("--mode", choices=MODES, default="batch",
                        help="batch: a chunk at once (fastest); in-process or triton: the online funnel's requests")
    parser.add_argument("-k", type=int, default=50, help="items per user")
    parser.add_argument("--repository", type=Path, default=settings.model_repository,
                        help="model repository (batch and in-process modes)")
    parser.add_argument("--triton-url", default=settings.facade.triton_url, help="Triton gRPC address")
    parser.add_argument("--users", type=Path, help="file with one user id per line (a segment); all users if unset")
    parser.add_argument("--exclude", type=Path, help="file with one item id per line never to send")
    parser.add_argument("--chunk-users", type=int, default=5000)
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int, help="score on a local Dask cluster of this many processes")
    cluster.add_argument("--scheduler", help="score on a running Dask cluster (tcp://HOST:PORT); workers must see "
                                             "the same data, repository and output paths")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    users = args.users.read_text().split() if args.users else None
    exclude = args.exclude.read_text().split() if args.exclude else None
    try:
        summary = score_users(args.data, args.out, args.mode, args.k, args.repository, args.triton_url, users,
                              exclude, args.chunk_users, workers=args.workers, scheduler=args.scheduler)
    except ValueError as exc:
        print(f"recstack score: {exc}")
        return 1
    print(json.dumps(summary))
    return 0
