import json

from recstack.demo import main


def test_demo_generates_preprocesses_and_prints_a_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECSTACK_BUILD_DIR", str(tmp_path))
    assert main(["--events", "20000"]) == 0
    out = capsys.readouterr().out
    manifest = json.loads((tmp_path / "data" / "synthetic" / "manifest.json").read_text())
    assert manifest["dataset"] == "synthetic" and manifest["counts"]["test_users"] > 0
    assert "dataset synthetic" in out and "trending items" in out
    # the trending list shows raw ids, decoded through the saved id maps
    assert out.count(" i0") >= 5
