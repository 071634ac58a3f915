import polars as pl
from recstack.preprocessing.config import WorkflowConfig
from recstack.preprocessing.sequences import evaluation_set, user_sequences
from recstack.preprocessing.workflow import Workflow

from tests.preprocessing.helpers import SHOP, events


def _encoded(log=SHOP):
    wf = Workflow(WorkflowConfig()).fit(log)
    return wf, wf.transform(log)


def _decoded(wf, seq):
    return wf.vocabularies["item_id"].decode(pl.Series(seq, dtype=pl.UInt32)).to_list()


def test_sequences_are_chronological_collapsed_and_truncated_to_the_most_recent():
    wf, enc = _encoded()
    seqs = user_sequences(enc.lazy(), collapse_repeats=True, max_length=3).collect()
    alice = seqs.filter(pl.col("user_id") == "alice").row(0, named=True)
    assert _decoded(wf, alice["item_seq"]) == ["sock", "belt", "hat"]
    assert alice["length"] == 5
    full = user_sequences(enc.lazy(), collapse_repeats=False, max_length=50).collect()
    assert full.filter(pl.col("user_id") == "alice")["length"][0] == 7


def test_evaluation_history_is_never_truncated():
    wf, enc = _encoded()
    ev = evaluation_set(enc.lazy(), enc.lazy(), collapse_repeats=False).collect()
    assert len(ev.filter(pl.col("user_id") == "alice")["history"][0]) == 7


def test_evaluation_set_history_precedes_targets_and_new_users_get_empty_history():
    wf, enc = _encoded()
    later = wf.transform(events([("alice", "sock", "view", 900), ("alice", "sock", "click", 901),
                                 ("alice", "shoe", "view", 902), ("zed", "hat", "view", 903)]))
    ev = evaluation_set(enc.lazy(), later.lazy(), collapse_repeats=True).collect()
    alice = ev.filter(pl.col("user_id") == "alice").row(0, named=True)
    assert _decoded(wf, alice["targets"]) == ["sock", "shoe"]
    assert _decoded(wf, alice["history"]) == ["shoe", "hat", "sock", "belt", "hat"]
    zed = ev.filter(pl.col("user_id") == "zed").row(0, named=True)
    assert zed["history"] == [] and _decoded(wf, zed["targets"]) == ["hat"]
