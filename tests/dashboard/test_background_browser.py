"""A sample's explanations computed in the background (dashboard.later) reach the page: a
server that answers every explanation with "computing" first (INTERP_INLINE_S=0), the
views polling until the figures come, and quick sample steps ending on the last sample."""

from __future__ import annotations

import pytest

from tests.dashboard.test_browser import Watch, _all_drawn, _tab, _wait, browser, dashboard_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

__all__ = ["browser"]

# every text the captions took, from before the page's first script (a state shown for 300 ms is not missed)
RECORD_CAPTIONS = """
window._captions = {};
new MutationObserver(() => {
    for (const id of ["lrp-caption", "sal-caption"]) {
        const text = document.getElementById(id)?.textContent ?? "";
        const seen = (window._captions[id] = window._captions[id] || []);
        if (text && seen[seen.length - 1] !== text) { seen.push(text); }
    }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture(scope="module")
def polling_server(tmp_path_factory):
    yield from dashboard_server(tmp_path_factory, env={"INTERP_INLINE_S": "0"})


def test_background_explanations_reach_the_page_and_quick_steps_end_on_the_last(browser, polling_server):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.add_init_script(RECORD_CAPTIONS)
    watch = Watch(page, (polling_server.rstrip("/"),))
    page.goto(polling_server + "?model=cnn-digits&sample=3&view=lrp")
    _wait(page, watch, "#lrp-caption:has-text('Σ relevance')")
    assert "sample 3" in page.inner_text("#lrp-caption")
    _wait(page, watch, function=_all_drawn(["#lrp-grid", "#lrp-flow"]))
    said = page.evaluate("window._captions['lrp-caption']")
    assert any("of the sample chosen: " in text for text in said), said  # "computing" or "waiting", then done
    # four quick steps: the page ends on sample 7, explained
    for _ in range(4):
        page.click("#sample-next")
    _wait(page, watch, function="/sample 7\\b[\\s\\S]*Σ relevance/.test("
                                "document.querySelector('#lrp-caption')?.textContent ?? '')")
    _wait(page, watch, function=_all_drawn(["#lrp-grid"]))
    # saliency the same way
    _tab(page, "Saliency")
    _wait(page, watch, "#sal-caption:has-text('explaining')")
    assert "sample 7" in page.inner_text("#sal-caption")
    _wait(page, watch, function=_all_drawn(["#sal-grid"]))
    assert any("saliency maps of the sample chosen: " in t for t in page.evaluate("window._captions['sal-caption']"))
    # a sample's sensitivity and the Compare view poll the same way
    _tab(page, "Sensitivity")
    _wait(page, watch, function="/sample 7\\b/.test(document.querySelector('#sens-caption')?.textContent ?? '')")
    _wait(page, watch, function=_all_drawn(["#sens-sample"]))
    _tab(page, "Compare")
    _wait(page, watch, "#cmp-caption:has-text('Spearman')")
    _wait(page, watch, function=_all_drawn(["#cmp-pair"]))
    assert watch.problems == []
    page.close()
