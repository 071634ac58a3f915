import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from recstack.preprocessing.config import SplitConfig, WorkflowConfig
from recstack.preprocessing.datasets import SyntheticConfig, generate_synthetic, load_events_files
from recstack.preprocessing.pipeline import preprocess
from recstack.preprocessing.schema import InputError
from recstack.preprocessing.streaming import preprocess_streaming
from recstack.preprocessing.tombstones import digest

from tests.preprocessing.helpers import CATALOG, SHOP

COMPARED = ("counts", "files", "vocabulary_sizes", "dropped", "fingerprint", "split")


def assert_same_outputs(in_memory: Path, streamed: Path, a, b) -> None:
    for field in COMPARED:
        assert getattr(a, field) == getattr(b, field), field
    for name in a.files:
        assert pl.read_parquet(in_memory / name).equals(pl.read_parquet(streamed / name)), name
    for vocab in (in_memory / "workflow").glob("vocab_*.parquet"):
        assert pl.read_parquet(vocab).equals(pl.read_parquet(streamed / "workflow" / vocab.name)), vocab.name


@pytest.mark.parametrize("split", [SplitConfig(), SplitConfig(strategy="temporal")], ids=lambda s: s.strategy)
def test_chunks_of_users_give_the_in_memory_outputs(split, tmp_path):
    data = generate_synthetic(SyntheticConfig(n_events=20_000, seed=3))
    data.events.write_parquet(tmp_path / "events.parquet")
    data.items.write_parquet(tmp_path / "items.parquet")
    config = WorkflowConfig(min_item_count=2, min_user_count=2)  # OOV users and dropped events on OOV items
    gone = frozenset({digest(data.events["user_id"][0])})
    files = (tmp_path / "events.parquet", tmp_path / "items.parquet")
    a = preprocess(load_events_files(*files), tmp_path / "a", config, split, engine="cpu", progress=False,
                   tombstones=gone)
    b = preprocess_streaming(*files, tmp_path / "b", config, split, progress=False, tombstones=gone,
                             chunk_events=3_000)
    assert b.engine == "streaming" and a.dropped["forgotten_users"] == 1
    assert_same_outputs(tmp_path / "a", tmp_path / "b", a, b)
    assert not (tmp_path / "b" / ".streaming").exists()


def test_csv_input_and_the_hand_worked_shop(tmp_path):
    SHOP.write_csv(tmp_path / "shop.csv")
    CATALOG.write_csv(tmp_path / "catalog.csv")
    files = (tmp_path / "shop.csv", tmp_path / "catalog.csv")
    a = preprocess(load_events_files(*files), tmp_path / "a", engine="cpu", progress=False)
    b = preprocess_streaming(*files, tmp_path / "b", progress=False, chunk_events=1)
    assert_same_outputs(tmp_path / "a", tmp_path / "b", a, b)


def test_bad_rows_are_named_with_their_batch(tmp_path):
    SHOP.with_columns(pl.col("timestamp").cast(pl.String).replace({SHOP["timestamp"].cast(pl.String)[3]: "soon"})
                      ).write_csv(tmp_path / "shop.csv")
    with pytest.raises(InputError, match=r"shop.csv \(the batch from data row 1\): column 'timestamp', line 5"):
        preprocess_streaming(tmp_path / "shop.csv", None, tmp_path / "out", progress=False)


# Peak memory of a child process preprocessing one file: its own VmHWM (KiB). Not ru_maxrss from wait4: Linux
# carries the maximum over fork and exec, so a child of this test process (holding the generated events) would
# report the test's own size.
CHILD = """
import sys
from pathlib import Path
from recstack.preprocessing.datasets import load_events_files
from recstack.preprocessing.pipeline import preprocess
from recstack.preprocessing.streaming import preprocess_streaming
events, out = Path(sys.argv[2]), Path(sys.argv[3])
if sys.argv[1] == "streaming":
    preprocess_streaming(events, None, out, progress=False, chunk_events=100_000)
else:
    preprocess(load_events_files(events), out, engine="cpu", progress=False)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def peak_rss_mb(mode: str, events: Path, out: Path) -> float:
    # Two threads, whatever the machine: the streaming engine's buffers grow with the thread count.
    env = {**os.environ, "POLARS_MAX_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(events), str(out)], env=env, check=True,
                          capture_output=True, text=True)
    return int(done.stdout.split()[-1]) / 1024


@pytest.mark.parametrize("n_events", [pytest.param(1_500_000, id="1.5M"),
                                      pytest.param(6_000_000, id="6M", marks=pytest.mark.slow)])
def test_streaming_memory_stays_under_a_bound_the_in_memory_path_exceeds(n_events, tmp_path):
    """Both paths on one file, each in its own process; the bound is the peak of a tiny run (interpreter,
    libraries) plus the event table's in-memory size several times over. The in-memory path needs about 13 times
    the table; the streaming one one chunk of users plus polars' constant buffers (~100-150 MB)."""
    data = generate_synthetic(SyntheticConfig(n_events=n_events, seed=0))
    data.events.write_parquet(tmp_path / "events.parquet")
    table_mb = data.events.estimated_size() / 2**20
    data.events.head(2_000).write_parquet(tmp_path / "tiny.parquet")
    del data
    baseline = peak_rss_mb("streaming", tmp_path / "tiny.parquet", tmp_path / "tiny")
    bound = baseline + 5 * table_mb
    streamed = peak_rss_mb("streaming", tmp_path / "events.parquet", tmp_path / "streamed")
    in_memory = peak_rss_mb("in_memory", tmp_path / "events.parquet", tmp_path / "in_memory")
    print(f"table {table_mb:.0f} MB, bound {bound:.0f} MB: streaming {streamed:.0f} MB, in memory {in_memory:.0f} MB")
    assert streamed < bound < in_memory
