"""The compose file's deployment defaults: only the facade is published, and Redis runs with the command the file
gives it (a password, the default user off, an ACL user limited to recstack's keys) under which every part of the
facade that uses Redis still works."""

import asyncio
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import yaml
from recstack.client.core.keys import RedisKeyStore, create_key
from recstack.client.core.ratelimit import RateLimiter
from recstack.client.core.sessions import RedisStore
from recstack.ensemble.server import free_port

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"
PASSWORD = "s3cret-for-tests"


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_only_the_facade_is_published():
    published = {name for name, service in services().items() if service.get("ports")}
    assert published == {"facade"}
    assert services()["facade"]["ports"] == ["8080:8080"]


@pytest.fixture
def compose_redis(tmp_path):
    """redis-server started with the compose file's command (the password filled in) on a free port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (make test installs Debian's redis-server)")
    command = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", arg.replace("${REDIS_PASSWORD:?set REDIS_PASSWORD}", PASSWORD))
               for arg in services()["redis"]["command"]]  # ${NAME:-default} as compose fills it in unset
    port = free_port()
    process = subprocess.Popen([binary, *command[1:], "--port", str(port), "--bind", "127.0.0.1",
                                "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = services()["facade"]["environment"]["RECSTACK_FACADE__REDIS_URL"].replace(
        "${REDIS_PASSWORD:?set REDIS_PASSWORD}", PASSWORD).replace("@redis:6379", f"@127.0.0.1:{port}")
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url, port
    process.kill()
    process.wait()


@pytest.mark.redis
def test_redis_refuses_strangers_and_serves_the_facade_user(compose_redis):
    url, port = compose_redis
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()  # the default user is off
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url.replace(PASSWORD, "guess")).ping()
    as_facade = redis.Redis.from_url(url)
    with pytest.raises(redis.ResponseError, match="permission"):
        as_facade.flushall()  # no admin commands
    with pytest.raises(redis.ResponseError, match="permission"):
        as_facade.set("other-app:key", 1)  # recstack's keys only

    async def facade_parts():
        store, limiter = RedisStore(url), RateLimiter(url)
        try:
            await store.append([{"user_id": "u1", "item_id": "a", "item_idx": 2, "event_type": "view"}], "1.2.3.4")
            await store.log_exposure({"user_id": "u1", "items": ["a"]})
            verdict = await limiter.hit("page@1.2.3.4", 60)
            return await store.recent("u1"), await store.popular(3), await store.forget("u1"), verdict.allowed
        finally:
            await store.close()
            await limiter.close()

    recent, popular, forgotten, allowed = asyncio.run(facade_parts())
    assert recent == ["a"] and popular == [("a", 1.0)] and forgotten["events"] == 1 and allowed
    assert as_facade.exists("recstack:ratelimit:page@1.2.3.4")  # limited in Redis, not by the local fallback
    keys = RedisKeyStore(url)
    new = create_key("shop", "server")
    keys.save(new.record)
    assert keys.load()["shop"].key_hash == new.record.key_hash


@pytest.mark.redis
def test_the_facade_user_reads_the_append_only_state_but_not_the_configuration(compose_redis):
    url, _ = compose_redis
    store = RedisStore(url)

    async def durability():
        try:
            return await store.durability()
        finally:
            await store.close()

    assert asyncio.run(durability()) == {"appendonly": True, "appendfsync": None}
    facade = services()["facade"]["environment"]["RECSTACK_FACADE__REDIS_FSYNC"]
    assert facade == "${RECSTACK_REDIS_FSYNC:-everysec}" and facade in services()["redis"]["command"]


DASK_COMPOSE = COMPOSE.with_name("dask.compose.yaml")


def _defaults(argument: str) -> str:
    """A compose argument with each ``${NAME:-default}`` replaced by its default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", argument)


def test_dask_cluster_runs_recstack_workers_behind_its_scheduler():
    dask = yaml.safe_load(DASK_COMPOSE.read_text())["services"]
    assert {dask[name]["build"]["dockerfile"] for name in dask} == {"docker/dask.Dockerfile"}
    assert dask["worker"]["command"][:3] == ["dask", "worker", "tcp://scheduler:8786"]
    assert dask["scheduler"]["ports"] == ["127.0.0.1:8787:8787"]  # the dashboard only, on the host only
    # Workers open the paths the client sends: every service mounts build/ at the same place.
    assert {tuple(service["volumes"]) for service in dask.values()} == {("../build:/work/build",)}


@pytest.mark.parametrize("service", ["scheduler", "worker"])
def test_dask_commands_take_the_options_the_compose_file_gives(service):
    command = [_defaults(a) for a in yaml.safe_load(DASK_COMPOSE.read_text())["services"][service]["command"]]
    dask = Path(sys.executable).parent / "dask"
    usage = subprocess.run([str(dask), command[1], "--help"], capture_output=True, text=True, check=True).stdout
    for option in (a for a in command if a.startswith("--")):
        assert option in usage, f"dask {command[1]} has no {option}"
