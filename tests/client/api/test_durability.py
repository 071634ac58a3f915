"""Durability stated: /ready reports the fsync policy the facade was told beside what Redis runs with, and the
seconds of acknowledged events an OS crash could take."""

import pytest
from recstack.benchmarks.redis_server import RedisServer

from .conftest import make_api

pytestmark = pytest.mark.redis


@pytest.mark.parametrize(("server", "stated", "loss_s"), [("always", "always", 0.0), ("everysec", "everysec", 2.0),
                                                           ("everysec", "always", 2.0)])
def test_ready_states_the_fsync_policy_beside_what_redis_runs(trained_shop, tmp_path, server, stated, loss_s):
    with RedisServer(tmp_path / "redis", fsync=server) as redis_server, \
            make_api(trained_shop, "127.0.0.1:1", redis_server.url, redis_fsync=stated) as api:
        durability = api.get("/ready").json()["durability"]
    assert durability == {"redis_fsync": stated, "appendonly": True, "appendfsync": server, "os_crash_loss_s": loss_s}


def test_an_in_process_store_says_nothing_survives_a_restart(trained_shop):
    with make_api(trained_shop, "127.0.0.1:1", None) as api:
        durability = api.get("/ready").json()["durability"]
    assert durability["appendonly"] is False and durability["os_crash_loss_s"] is None
