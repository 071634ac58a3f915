"""The facade's image installs the ``serve`` extra only (no torch): the facade must import, start and answer
without torch, through the same settings and command modules the image runs."""

import json
import subprocess
import sys
import textwrap


def test_the_facade_answers_with_torch_unimportable(trained_shop, model_repository, tmp_path):
    code = textwrap.dedent(f"""
        import contextlib, io, json, sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError, as in the serve-only image
        from dataclasses import replace
        from fastapi.testclient import TestClient
        import recstack.commands.serve
        from recstack.client.api.main import create_app
        from recstack.commands.keys import main as keys
        from recstack.settings import Settings

        settings = Settings(build_dir={str(tmp_path)!r})
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            keys(["create", "--scope", "public", "--name", "page", "--origin", "https://shop.example"], settings)
        key = printed.getvalue().splitlines()[1]  # the line after the announcement
        config = replace(settings.facade_config(), engine="in-process", repository={str(model_repository)!r},
                         data={str(trained_shop[0])!r})
        with TestClient(create_app(config), headers={{"X-API-Key": key, "Origin": "https://shop.example"}}) as api:
            answers = {{"health": api.get("/health").status_code,
                       "trending": api.get("/api/v1/recommendations/anyone", params={{"type": "trending"}}).json()}}
        answers["loaded"] = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "onnx"))
        print(json.dumps(answers))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answers["health"] == 200
    assert len(answers["trending"]["recommendations"]) > 0 and answers["trending"]["degraded"] is False
    assert answers["loaded"] == ["torch"]  # only the blocker itself: nothing imported torch or onnx
