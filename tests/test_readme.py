"""The README's library examples run as written: every ```python block of the library
section, in order, in one namespace (as a reader pastes them into one session)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def library_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## The library"):text.index("\n## The dashboard")]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_library_section_has_examples():
    blocks = library_blocks()
    assert len(blocks) >= 8
    assert any("out += " in b and "inplace=True" in b for b in blocks)  # a model as people write them


@pytest.mark.slow
def test_the_readme_library_examples_run_as_written(tmp_path, monkeypatch):
    import plotly.graph_objects as go

    shown = []
    monkeypatch.setattr(go.Figure, "show", lambda self, *a, **k: shown.append(self))  # no browser in a test
    monkeypatch.chdir(tmp_path)  # the examples write "my-store", "noise.safetensors"
    namespace: dict = {"__name__": "readme"}
    for i, block in enumerate(library_blocks()):
        try:
            exec(compile(block, f"README.md library block {i}", "exec"), namespace)
        except Exception as exc:  # say which block, with its text
            raise AssertionError(f"README library block {i} failed: {type(exc).__name__}: {exc}\n{block}") from exc
    assert shown and all(isinstance(f, go.Figure) for f in shown)


def own_model_blocks() -> tuple[str, list[str], str]:
    """The worked example of "Your own model, in every face": my_model.py, the shell lines,
    the Python session."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Your own model, in every face"):text.index("\n## What is built today")]
    python = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    shell = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert len(python) == 2 and len(shell) == 1 and python[0].startswith("# my_model.py")
    return python[0], [ln for ln in shell[0].splitlines() if ln.strip()], python[1]


@pytest.mark.slow
def test_the_readme_own_model_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """The file, the three shell lines (the dashboard's app built instead of served), and
    the Python session (likewise), as a reader runs them."""
    import runpy
    import shlex
    import sys

    import dashboard
    import dashboard.app
    from interp.cli import main

    served = []
    monkeypatch.setattr(dashboard.app, "serve", lambda subjects, **kw: served.append(dashboard.create_app(subjects)))
    monkeypatch.setattr(dashboard, "serve", dashboard.app.serve)
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    model_file, shell, session = own_model_blocks()
    (tmp_path / "my_model.py").write_text(model_file)
    for line in shell:
        words = shlex.split(line)
        if words[0] == "python":
            runpy.run_path(words[1], run_name="__main__")
        else:
            assert words[0] == "interp" and main(words[1:] + ["--quiet"] * (words[1] == "report")) == 0, line
    page = (tmp_path / "my-report" / "wine-mlp.html").read_text()
    assert "<h2>Latent space</h2>" in page and "cultivar 2" in page and "alcohol" in page
    assert len(served) == 1
    exec(compile(session, "README.md own-model session", "exec"), {"__name__": "readme"})
    assert "Subject('wine-mlp': classification, tabular (13,), 178 samples)" in capsys.readouterr().out
    assert len(served) == 2
    sys.modules.pop("my_model", None)
