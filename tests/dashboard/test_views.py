"""Dashboard view helpers that need no browser."""

from __future__ import annotations

from dashboard.views.lrp import COMPOSITE_RULE, composite_options, overrides_text, rule_options, with_override
from dashboard.views.saliency import _clamp
from zoo import lrp


def test_numeric_options_are_clamped_on_the_server():
    assert _clamp(9999, 32, 1, 512, int) == 512
    assert _clamp(-3, 32, 1, 512, int) == 1
    assert _clamp("7", 32, 1, 512, int) == 7
    for bad in (None, "x", float("nan"), float("inf"), [1]):
        assert _clamp(bad, 32, 1, 512, int) == 32
    assert _clamp(0.35, 0.15, 0.0, 2.0, float) == 0.35


def test_lrp_overrides_follow_the_pickers():
    layers = ["features.0", "features.2", "classifier.1"]
    one = with_override({}, "features.2", "gamma", layers)
    assert one == {"features.2": "gamma"}
    two = with_override(one, "classifier.1", "zplus", layers)
    assert two == {"features.2": "gamma", "classifier.1": "zplus"} and one == {"features.2": "gamma"}
    assert with_override(two, "features.2", COMPOSITE_RULE, layers) == {"classifier.1": "zplus"}
    # another model's layers (left in the store by a model switch) are dropped; unknown layers ignored
    assert with_override({"lstm.input_l0": "flat", "features.0": "flat"}, None, None, layers) == {"features.0": "flat"}
    assert with_override({}, "features.1", "gamma", layers) == {}
    assert with_override(one, "features.0", None, layers) == one
    assert overrides_text({}) == "no overrides"
    assert overrides_text(two) == "overrides: features.2 → gamma, classifier.1 → zplus"


def test_lrp_picker_options():
    options = composite_options(lrp.composites())
    assert options[0]["value"] == lrp.DEFAULT_COMPOSITE
    assert all(o["title"] for o in options)  # every composite is described
    rules = rule_options(lrp.rules())
    assert rules[0]["value"] == COMPOSITE_RULE
    assert {o["value"] for o in rules[1:]} == set(lrp.rules())
