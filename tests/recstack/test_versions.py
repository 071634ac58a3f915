"""The versions journal: append-only, one decision per line, and which entry a repository version serves."""

import pytest

from recstack.versions import RoundInProgress, VersionsJournal


def test_the_journal_numbers_versions_and_finds_the_served_one(tmp_path):
    journal = VersionsJournal(tmp_path / "versions")
    assert journal.entries() == [] and journal.next_version() == 1
    journal.append({"version": 1, "decision": "initial", "repository_version": 1})
    journal.append({"version": 2, "decision": "published", "repository_version": 2})
    journal.append({"version": 3, "decision": "refused", "repository_version": None})
    journal.append({"version": 4, "decision": "canary", "repository_version": 3})
    assert journal.next_version() == 5 and journal.folder(4).name == "0004"
    assert journal.served_by(2)["version"] == 2 and journal.served_by(3)["version"] == 4
    assert journal.served_by(7) is None
    # Reopened: the same entries, in order.
    assert [e["version"] for e in VersionsJournal(tmp_path / "versions").entries()] == [1, 2, 3, 4]


def test_a_torn_last_line_is_not_an_entry(tmp_path):
    journal = VersionsJournal(tmp_path)
    journal.append({"version": 1, "decision": "initial", "repository_version": 1})
    with journal.path.open("a") as f:
        f.write('{"version": 2, "decis')  # a crash in the middle of a write
    assert [e["version"] for e in journal.entries()] == [1] and journal.next_version() == 2
    journal.append({"version": 2, "decision": "refused", "repository_version": None})
    assert [e["version"] for e in journal.entries()] == [1, 2]


def test_one_round_at_a_time_holds_the_journal(tmp_path):
    journal = VersionsJournal(tmp_path)
    with journal.round():
        with pytest.raises(RoundInProgress, match="another retraining round"):
            with VersionsJournal(tmp_path).round():
                pass
    with journal.round():  # released at the end of the round
        pass
