"""FileWatch: a followed file costs at most one look per interval, and a change is seen after it."""

from recstack.preprocessing import watch as watch_module
from recstack.preprocessing.watch import FileWatch


def test_a_change_is_seen_once_the_interval_passed_and_a_removed_file_reads_as_missing(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(watch_module.time, "monotonic", lambda: clock[0])
    path = tmp_path / "state.txt"
    path.write_text("one")
    reads = []
    followed = FileWatch(path, lambda p: reads.append(p) or p.read_text(), missing=None, refresh_s=2.0)
    assert followed.value() == "one"
    path.write_text("two, longer")
    assert followed.value() == "one"  # within the interval: not looked at
    clock[0] += 2.5
    assert followed.value() == "two, longer"
    clock[0] += 2.5
    assert followed.value() == "two, longer" and len(reads) == 2  # unchanged: not read again
    path.unlink()
    clock[0] += 2.5
    assert followed.value() is None
