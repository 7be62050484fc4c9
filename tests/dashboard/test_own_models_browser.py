"""A user's own models in the dashboard, in a real headless Chromium.

``interp dashboard --subject tests/own_models.py:subjects --no-zoo`` as a user would run
it (a tabular MLP, an image CNN with batch-norm and in-place ReLU, a token classifier
with a vocabulary, an autoencoder; none in the zoo): each is picked, every tab is
opened, and every graph of it must draw with no failed callback, console error or
request leaving the machine.
"""

from __future__ import annotations

import pytest

from tests import own_models as om
from tests.dashboard.test_browser import (
    LATENT_DONE,
    LATENT_MAP,
    _open,
    _pick_model,
    _tab,
    _wait,
    browser,
    dashboard_server,
)
from tests.dashboard.test_instrument_browser import PIXEL

pytestmark = [pytest.mark.browser, pytest.mark.slow]

__all__ = ["browser"]  # the fixture, shared with test_browser.py

OWN = ["tabular_mlp", "image_cnn", "token_classifier", "autoencoder", "unlabelled"]
TABS = {  # tab -> graphs every subject draws there
    "Overview": ["#overview-figures"],
    "Samples": ["#sample-graph", "#prediction-graph"],
    "Activations": ["#act-sample-map", "#act-stats", "#act-histogram", '[id*="act-top"]', '[id*="act-heatmap"]'],
    "Saliency": ["#sal-grid", "#sal-summary"],
    "LRP": ["#lrp-plan", "#lrp-grid", "#lrp-flow", "#lrp-summary"],
    "Compare": ["#cmp-pair"],
    "Sensitivity": ["#sens-sample"],
    "Evaluation": ["#eval-sample", "#eval-leaderboard"],
    "Latent space": [LATENT_MAP, '[id*="latent-layers"]'],
}


CAPTIONS = {"Saliency": "#sal-caption", "LRP": "#lrp-caption", "Compare": "#cmp-caption",
            "Sensitivity": "#sens-caption", "Evaluation": "#eval-caption", "Latent space": "#latent-caption"}


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    yield from dashboard_server(tmp_path_factory, ["--subject", f"{om.__file__}:subjects", "--no-zoo"])


def test_every_tab_draws_for_models_of_ones_own(browser, own_server):
    page, watch = _open(browser, own_server)
    options = page.locator("#model-picker").inner_text()
    assert "tabular_mlp" in options and "cnn-digits" not in options  # --no-zoo
    for name in OWN:
        _pick_model(page, watch, name)
        for tab, graphs in TABS.items():
            _tab(page, tab)
            if tab in CAPTIONS:  # this subject's figures, not the previous one's left standing
                _wait(page, watch, f"{CAPTIONS[tab]}:has-text('{name} ·')", timeout=90)
            if tab == "Latent space":
                _wait(page, watch, LATENT_DONE, timeout=90)
            _wait(page, watch, function=" && ".join(
                f"document.querySelectorAll('{g} .js-plotly-plot .main-svg, {g}.js-plotly-plot .main-svg').length > 0"
                for g in graphs), timeout=90)
        if name == "token_classifier":
            _tab(page, "Samples")
            _wait(page, watch, "#sample-graph:has-text('good'), #sample-graph:has-text('bad')")
        if name == "image_cnn":  # what if: a pixel drawn on the batch-norm, in-place-ReLU CNN; every view follows
            _tab(page, "Samples")
            _wait(page, watch, "#whatif-canvas .main-svg")
            at = page.evaluate(PIXEL, [3, 3])
            page.mouse.click(at["x"], at["y"])
            _wait(page, watch, "#sample-caption:has-text('sample 0, edited')")
            _wait(page, watch, "#whatif-change:has-text('prediction')")
            _tab(page, "LRP")
            _wait(page, watch, "#lrp-caption:has-text('sample 0, edited')", timeout=90)
            _tab(page, "Samples")
            page.click("#whatif-reset")
            _wait(page, watch, "#sample-caption:has-text('sample 0:')")
    assert watch.callbacks > 0
    assert watch.problems == []
    page.close()
