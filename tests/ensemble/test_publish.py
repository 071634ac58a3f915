"""Publish, canary, promote and rollback on a real Triton server (started on free loopback ports)."""

import shutil
import time

import polars as pl
import pytest
from recstack.client.triton import TritonRecommender
from recstack.ensemble.build import MODELS, versions
from recstack.ensemble.config import ServingConfig
from recstack.ensemble.publish import promote, publish, rollback, serving_state
from recstack.ensemble.server import TritonServer
from recstack.ensemble.serving import CANARY_ENSEMBLE, ServingError
from tritonclient.utils import InferenceServerException

from .conftest import ClientLoad

pytestmark = pytest.mark.triton


@pytest.fixture
def served(model_repository, tmp_path):
    """A copy of the small shop's repository (version 1) and a server over it."""
    repository = tmp_path / "model_repository"
    shutil.copytree(model_repository, repository)
    server = TritonServer(repository).start()
    yield repository, server
    server.stop()


def repository_version(served_list) -> str:
    return served_list.items[0].model_version.rsplit("/", 1)[1]


def test_canary_serves_beside_the_default_until_promoted(trained_shop, served):
    (data, models), (repository, server) = trained_shop, served
    config = ServingConfig(keep_versions=1)
    report = publish(data, models, repository, config, triton_url=server.http_url, verbose=False, canary=0.25)
    assert report["version"] == 2
    assert serving_state(repository) == {"default": 1, "canary": 2, "canary_share": 0.25, "previous": []}
    with TritonRecommender(server.grpc_url) as client:
        history = [[5, 6, 7]]
        assert repository_version(client.recommend(history)[0]) == "r1"  # naming no version: the default
        assert repository_version(client.recommend(history, model=CANARY_ENSEMBLE)[0]) == "r2"
        assert repository_version(client.recommend(history, model=CANARY_ENSEMBLE, version=2)[0]) == "r2"
        assert repository_version(client.similar(7)) == "r1"
        assert repository_version(client.trending(5)) == "r1"
        assert len(client.rank([5, 6], [7, 8], version=1)) == len(client.rank([5, 6], [7, 8], version=2)) == 2

        moved = promote(repository, server.http_url)
        assert (moved["default"], moved["canary"], moved["previous"]) == (2, None, [1])
        assert repository_version(client.recommend(history)[0]) == "r2"
        assert repository_version(client.similar(7)) == "r2"
        with pytest.raises(InferenceServerException):
            client.recommend(history, model=CANARY_ENSEMBLE)
        assert not (repository / CANARY_ENSEMBLE).exists()
        with pytest.raises(ServingError, match="no canary to promote"):
            promote(repository, server.http_url)

        # keep_versions=1, yet the served versions and the rollback target stay.
        assert publish(data, models, repository, config, triton_url=server.http_url, verbose=False,
                       canary=0.5)["version"] == 3
        assert all(versions(repository / model) == [1, 2, 3] for model in MODELS)
        assert repository_version(client.recommend(history, model=CANARY_ENSEMBLE)[0]) == "r3"

        assert rollback(repository, server.http_url)["canary"] is None  # the canary is withdrawn first
        assert repository_version(client.recommend(history)[0]) == "r2"
        assert rollback(repository, server.http_url)["default"] == 1
        assert repository_version(client.recommend(history)[0]) == "r1"
        assert repository_version(client.similar(7)) == "r1"
        with pytest.raises(ServingError, match="no previous version"):
            rollback(repository, server.http_url)
    # Only what serves now, or will after a restart, is loaded.
    restarted = TritonServer(repository).start()
    try:
        with TritonRecommender(restarted.grpc_url) as client:
            assert repository_version(client.recommend([[5, 6, 7]])[0]) == "r1"
    finally:
        restarted.stop()


def test_promote_and_rollback_under_load_fail_no_request(trained_shop, served):
    (data, models), (repository, server) = trained_shop, served
    histories = pl.read_parquet(data / "eval_test.parquet", columns=["history"]).head(4)["history"].to_list()
    publish(data, models, repository, ServingConfig(), triton_url=server.http_url, verbose=False, canary=0.1)
    with ClientLoad(server, histories) as load:
        time.sleep(1.0)
        switches = {}
        for name, move, expected in (("promote", promote, "r2"), ("rollback", rollback, "r1")):
            begun = time.monotonic()
            move(repository, server.http_url)
            done = time.monotonic()
            time.sleep(1.0)
            later = [(started, repository_version(r)) for started, r in load.answers if started > begun]
            first = next(started for started, v in later if v == expected)
            # Every request sent after the switch returned gets the new default.
            assert {v for started, v in later if started > done} == {expected}
            switches[name] = {"returned_s": round(done - begun, 3), "first_answer_s": round(first - begun, 3)}
    answers, errors = load.answers, load.errors
    print(f"switches under 3 clients: {switches}; {len(answers)} requests, {len(errors)} failed")
    assert errors == []
    # The previous default is still loaded: rolling back is one ensemble load. (A promote first loads the new
    # version of similar and trending, python stubs that take seconds to start.)
    assert switches["rollback"]["returned_s"] < 5
