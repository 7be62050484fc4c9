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
