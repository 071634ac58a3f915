"""``recstack serve triton|api``: Triton over the model repository, or the FastAPI facade."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from recstack.ensemble.config import DEFAULT_TRITON_GRPC_URL
from recstack.settings import Settings


def api_main(argv: list[str], settings: Settings) -> int:
    from recstack.client.api.main import create_app
    from recstack.client.api.server import serve

    parser = argparse.ArgumentParser(prog="recstack serve api", description="Run the FastAPI facade (docs at /docs).")
    parser.add_argument("--data", type=Path, help="prepared dataset [build/data/synthetic]")
    parser.add_argument("--triton-url", help=f"Triton gRPC address [{DEFAULT_TRITON_GRPC_URL}]")
    parser.add_argument("--engine", choices=["triton", "in-process"],
                        help="where the funnel runs: Triton, or in this worker without Triton [triton]")
    parser.add_argument("--repository", type=Path, help="built model repository (in-process engine)")
    parser.add_argument("--redis-url", help="Redis URL; in-process store when unset")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--insecure-no-auth", action="store_true",
                        help="no API keys: anyone who reaches the facade may call everything (local experiments "
                             "only; logged as a warning) [RECSTACK_FACADE__AUTH=false]")
    parser.add_argument("--demo", action="store_true",
                        help="serve the demo storefront at /demo/ (widgets of /static/recstack.js on the prepared "
                             "catalog) [RECSTACK_FACADE__DEMO=true]")
    args = parser.parse_args(argv)
    given = {name: getattr(args, name) for name in ("data", "engine", "repository", "triton_url", "redis_url", "host",
                                                    "port") if getattr(args, name) is not None}
    if args.demo:
        given["demo"] = True
    if args.insecure_no_auth:
        given["auth"] = False
    config = replace(settings.facade_config(), **given)
    if config.demo:
        print(f"demo storefront: http://127.0.0.1:{config.port}/demo/  dashboard: http://127.0.0.1:{config.port}"
              "/dashboard (admin key)")
    serve(create_app(config), config)
    return 0


def main(argv: list[str], settings: Settings) -> int:
    from recstack.commands.triton import serve_main

    servers = {"triton": serve_main, "api": api_main}
    if not argv or argv[0] not in servers:
        print(f"usage: recstack serve {{{'|'.join(servers)}}} [options]", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return servers[argv[0]](argv[1:], settings)
