"""No page control sends data off the machine: every toolbar button of every graph, in every
tab of the dashboard and in a static report, clicked in a real headless Chromium, with any
request that leaves 127.0.0.1 (or the report's file) counted as a failure. Plotly's "Share
chart..." (an upload to Plotly's cloud, shown by Dash's graphs by default) is not offered."""

from __future__ import annotations

import pytest

import zoo
from tests.dashboard.test_browser import Watch, _open, _pick_model, _tab, _wait, browser, server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

__all__ = ["browser", "server"]  # the fixtures, shared with test_browser.py

TABS = ["Overview", "Samples", "Activations", "Saliency", "LRP", "Compare", "Sensitivity", "Evaluation", "Latent space"]
OFF_MACHINE = ("Share chart", "Edit in Chart Studio")


def _click_every_button(page) -> int:
    """Hover each drawn graph (its toolbar shows on hover) and click each of its buttons;
    returns how many were clicked."""
    clicked = 0
    graphs = page.locator(".js-plotly-plot")
    for g in range(graphs.count()):
        graph = graphs.nth(g)
        if not graph.is_visible() or graph.locator(".main-svg").count() == 0:
            continue
        graph.hover()
        buttons = graph.locator(".modebar-btn")
        titles = [buttons.nth(i).get_attribute("data-title") or "" for i in range(buttons.count())]
        assert not [t for t in titles if t.startswith(OFF_MACHINE)], titles
        for i in range(buttons.count()):
            graph.hover()
            buttons.nth(i).click(force=True)
            clicked += 1
    return clicked


def test_no_toolbar_button_sends_anything_off_the_machine(browser, server):
    page, watch = _open(browser, server)
    _pick_model(page, watch, "cnn-digits")
    clicked = 0
    for tab in TABS:
        _tab(page, tab)
        _wait(page, watch, function="document.querySelectorAll('.tab-body .js-plotly-plot .main-svg').length > 0")
        page.wait_for_timeout(1500)  # the tab's callbacks draw
        clicked += _click_every_button(page)
    page.wait_for_timeout(500)
    assert clicked > 50
    assert watch.problems == []
    page.close()


def test_no_toolbar_button_of_a_report_sends_anything(browser, tmp_path):
    from reports.build import build

    build([zoo.subject("mlp-cancer")], tmp_path, progress=False)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    watch = Watch(page, (tmp_path.as_uri(),))  # the page itself; anything else leaves it
    page.goto((tmp_path / "mlp-cancer.html").as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    assert _click_every_button(page) > 20
    page.wait_for_timeout(500)
    assert watch.problems == []
    page.close()
