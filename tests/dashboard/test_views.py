"""Dashboard view helpers that need no browser."""

from __future__ import annotations

from dashboard.views.saliency import _clamp


def test_numeric_options_are_clamped_on_the_server():
    assert _clamp(9999, 32, 1, 512, int) == 512
    assert _clamp(-3, 32, 1, 512, int) == 1
    assert _clamp("7", 32, 1, 512, int) == 7
    for bad in (None, "x", float("nan"), float("inf"), [1]):
        assert _clamp(bad, 32, 1, 512, int) == 32
    assert _clamp(0.35, 0.15, 0.0, 2.0, float) == 0.35
