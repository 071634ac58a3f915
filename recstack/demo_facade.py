"""The demo's last act: the FastAPI facade on a free port in front of Triton, called the way a shop would,
with the ``curl`` command of each call beside its answer."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import httpx
import polars as pl
import uvicorn

from recstack.client.api.main import create_app
from recstack.client.api.server import server_config
from recstack.client.core.config import FacadeConfig
from recstack.client.core.keys import Scope, create_key, open_key_store
from recstack.ensemble.server import free_port
from recstack.preprocessing.layout import PreparedLayout


class BackgroundServer:
    """The facade's server (``recstack serve api``'s deadlines and limits) in a thread of this process, stopped on
    exit."""

    def __init__(self, app, config: FacadeConfig):
        self.server = uvicorn.Server(server_config(app, config))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the facade did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def _show(method: str, url: str, body=None, keep: int = 5, headers: dict[str, str] | None = None) -> str:
    """The call as ``curl``, then its status and answer (recommendations one per line)."""
    response = httpx.request(method, url, json=body, timeout=30, headers=headers)
    payload = response.json()
    data = f" -H 'content-type: application/json' -d '{json.dumps(body)}'" if body is not None else ""
    sent = "".join(f" -H '{name}: {value}'" for name, value in (headers or {}).items())
    lines = [f"$ curl -s{' -X POST' if method == 'POST' else ''}{sent} '{url}'{data}"]
    if isinstance(payload, dict) and "recommendations" in payload:
        recs = payload.pop("recommendations")
        lines.append(f"{response.status_code} {json.dumps(payload)}")
        lines += [f"  {r['item_id']:>10}  {r['score']:.3f}  {r['reason']}  [{r['model_version']}]"
                  for r in recs[:keep]]
    else:
        lines.append(f"{response.status_code} {json.dumps(payload)}")
    return "\n".join(lines)


def demo_key(config: FacadeConfig, scope: Scope, origins: tuple[str, ...] = ()) -> str:
    """A key for the demo's calls, in the facade's key store; each run replaces the one the run before made."""
    new = create_key(f"demo-{scope}", scope, origins)
    open_key_store(config.redis_url, config.keys_file).save(new.record)
    return new.key


def show_facade(config: FacadeConfig) -> str:
    """Start the facade (on ``config.data`` and ``config.triton_url``), make the example calls, stop it; returns
    the transcript."""
    data_dir = config.data
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    backend = {"X-API-Key": demo_key(config, "server")}
    page = {"X-API-Key": demo_key(config, "public", (base,)), "Origin": base}
    app = create_app(config)
    user = pl.read_parquet(PreparedLayout(data_dir).eval_test, columns=["user_id"])["user_id"][0]
    items = pl.read_parquet(PreparedLayout(data_dir).items, columns=["item_id", "category_idx"]).drop_nulls("item_id")
    # A session in one category the user's list does not show yet, to see the list move towards it.
    with BackgroundServer(app, replace(config, host="127.0.0.1", port=port)):
        before = httpx.get(f"{base}/api/v1/recommendations/{user}", params={"limit": 5},
                           headers=backend).json()["recommendations"]
        shown = set(i["item_id"] for i in before)
        category = items.filter(~pl.col("item_id").is_in(list(shown)))["category_idx"].mode()[0]
        session = items.filter(pl.col("category_idx") == category)["item_id"].to_list()[:4]
        lines = ["the facade on " + base + " (OpenAPI docs at /docs), in front of Triton; every call carries an API "
                 "key (`recstack keys create`): a server key for the shop's backend, a public key for its pages:",
                 _show("GET", f"{base}/api/v1/recommendations/{user}?limit=5"),
                 _show("GET", f"{base}/api/v1/recommendations/{user}?limit=5", headers=backend),
                 _show("GET", f"{base}/api/v1/recommendations/{user}?type=trending&limit=3", headers=backend),
                 _show("GET", f"{base}/api/v1/similar/{session[0]}?kind=also_viewed&limit=3", headers=backend),
                 f"# the user now views {len(session)} items of another category in this session:",
                 _show("POST", f"{base}/api/v1/events",
                       {"events": [{"user_id": user, "item_id": i, "event_type": "view"} for i in session]},
                       headers=backend),
                 _show("GET", f"{base}/api/v1/recommendations/{user}?limit=5", headers=backend),
                 "# a storefront page, with its public key: an anonymous visitor's list; a shop user's list needs "
                 "a user token signed by the shop's backend",
                 _show("GET", f"{base}/api/v1/recommendations/anon_7f3a9c?context=homepage&limit=3", headers=page),
                 _show("GET", f"{base}/api/v1/recommendations/{user}?limit=3", headers=page),
                 _show("GET", f"{base}/ready")]
    return "\n".join(lines)
