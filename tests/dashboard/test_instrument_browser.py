"""The dashboard as an instrument, in a real headless Chromium: only the shown view works,
the state lives in the URL (reload, back, forward, a shared link), a lasso keeps its
samples, a second look at a sample is read back."""

from __future__ import annotations

import json
import re

import pytest

from tests.dashboard.test_browser import (
    LATENT_DONE,
    LATENT_MAP,
    Watch,
    _all_drawn,
    _sample_caption,
    _tab,
    _wait,
    browser,
    lasso_everything,
    server,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

__all__ = ["browser", "server"]  # the fixtures, shared with test_browser.py

def _open(browser, server: str, link: str = ""):
    """A page on ``server`` opened at ``link`` (a URL query), requests beyond the server failing."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    watch = Watch(page, (server.rstrip("/"),))
    page.goto(server + link)
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    return page, watch


VIEW_OUTPUTS = ("sal-", "lrp-", "sens-", "act-", "eval-", "latent-", "overview-")


def _answers(page) -> list[dict]:
    """Collects the callbacks the server answered with content (status 200: an answer of
    no_update everywhere is a 204) and what they set."""
    seen: list[dict] = []

    def on(response):
        if "_dash-update-component" in response.url and response.status == 200:
            try:
                seen.append(json.loads(response.text()).get("response", {}))
            except Exception:  # noqa: BLE001  (a page closing under it)
                pass

    page.on("response", on)
    return seen


def test_a_sample_step_computes_only_the_shown_view(browser, server):
    page, watch = _open(browser, server, "?model=cnn-digits&view=samples")
    _wait(page, watch, function=_sample_caption(r"sample 0\b"))
    page.wait_for_timeout(1500)  # the start's cascade is over
    answers = _answers(page)
    page.click("#sample-next")
    _wait(page, watch, function=_sample_caption(r"sample 1\b"))
    page.wait_for_timeout(1500)
    changed = sorted({key for answer in answers for key in answer})
    assert "sample-graph" in changed
    assert not [k for k in changed if k.startswith(VIEW_OUTPUTS) or "latent-" in k or "act-" in k], changed
    # the hidden views catch up when shown, with the sample picked meanwhile
    _tab(page, "Saliency")
    _wait(page, watch, "#sal-caption:has-text('sample 1')")
    assert watch.problems == []
    page.close()


def test_the_url_holds_the_state_through_reload_back_and_forward(browser, server):
    link = "?model=vae-digits&sample=7&view=activations&layer=encoder.logvar&unit=3"
    page, watch = _open(browser, server, link)
    _wait(page, watch, "#act-caption:has-text('encoder.logvar')")
    _wait(page, watch, "#act-caption:has-text('unit 3:')")
    assert page.input_value("#act-unit") == "3"
    _wait(page, watch, "#act-sample-map:has-text('sample 7')")
    assert re.search(r"[?&]model=vae-digits\b", page.url) and "sample=7" in page.url and "unit=3" in page.url
    # a change of view and of sample goes into the URL
    _tab(page, "Samples")
    _wait(page, watch, function=_sample_caption(r"sample 7\b"))
    # (changes closer than a quarter second make one history entry: the view's first)
    _wait(page, watch, function="location.search.includes('view=samples')")
    page.click("#sample-next")
    _wait(page, watch, function=_sample_caption(r"sample 8\b"))
    _wait(page, watch, function="location.search.includes('sample=8') && location.search.includes('view=samples')")
    # a reload restores it
    page.reload()
    _wait(page, watch, function=_sample_caption(r"sample 8\b"))
    assert "vae-digits" in page.inner_text(".picker")
    # back: the sample before; forward: the one after
    page.go_back()
    _wait(page, watch, function="location.search.includes('sample=7')")
    _wait(page, watch, function=_sample_caption(r"sample 7\b"))
    page.go_forward()
    _wait(page, watch, function=_sample_caption(r"sample 8\b"))
    # the LRP composite and the saliency methods too
    page.goto(server + "?model=cnn-digits&sample=4&view=lrp&composite=epsilon&methods=gradient,smoothgrad")
    _wait(page, watch, "#lrp-caption:has-text('sample 4')")
    assert "epsilon" in page.inner_text("#lrp-caption")
    _tab(page, "Saliency")
    _wait(page, watch, "#sal-caption:has-text('2 methods')")
    # a link to what is not here says so, and shows what it can
    page.goto(server + "?model=cnn-digits&sample=99999&view=saliency")
    _wait(page, watch, "#url-note:has-text('sample 99999 is out of range')")
    _wait(page, watch, "#sal-caption:has-text('sample 0')")
    assert watch.problems == []
    page.close()


def test_a_lasso_keeps_its_samples_and_the_current_one(browser, server):
    page, watch = _open(browser, server, "?model=cnn-digits&sample=5&view=latent")
    _wait(page, watch, LATENT_DONE, timeout=60)
    _wait(page, watch, function=_all_drawn([LATENT_MAP]))
    _wait(page, watch, "#latent-caption:has-text('sample 5')")
    lasso_everything(page, LATENT_MAP)
    _wait(page, watch, '[id*="latent-selection"]:has-text("20 selected samples")')
    page.wait_for_timeout(2500)  # before the fix the map redrew, the selection cleared and the panel went
    assert page.locator("#latent-selection-panel").is_visible()
    assert "sample 5" in page.inner_text("#latent-caption")  # the lasso did not move the current sample
    # the next sample moves the ring only: the selection stays
    _tab(page, "Samples")
    page.click("#sample-next")
    _wait(page, watch, function=_sample_caption(r"sample 6\b"))
    _tab(page, "Latent space")
    _wait(page, watch, "#latent-caption:has-text('sample 6')")
    page.wait_for_timeout(1000)
    assert page.locator("#latent-selection-panel").is_visible()
    page.click("#latent-clear")
    _wait(page, watch, function="getComputedStyle(document.querySelector('#latent-selection-panel')).display === "
                                "'none'")
    assert watch.problems == []
    page.close()


def test_export_of_a_view_opens_offline_with_its_numbers(browser, server, tmp_path):
    import numpy as np

    page, watch = _open(browser, server, "?model=cnn-digits&view=saliency&sample=2")
    _wait(page, watch, "#sal-caption:has-text('sample 2')")
    _wait(page, watch, function=_all_drawn(["#sal-grid", "#sal-summary"]))
    page.wait_for_timeout(500)
    with page.expect_download() as got:
        page.click("#export-html")
    html_file = tmp_path / got.value.suggested_filename
    got.value.save_as(html_file)
    assert html_file.name == "cnn-digits-saliency-sample2.html"
    text = html_file.read_text()
    outside_scripts = re.sub(r"<script\b.*?</script>", "", text, flags=re.S)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", outside_scripts)  # nothing from the network
    assert not re.search(r"<script[^>]+src=", text)  # plotly.js inline
    offline = browser.new_page()
    seen = Watch(offline, ("file://",))  # any other request fails the test
    offline.goto(html_file.as_uri())
    _wait(offline, seen, function="document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4")
    assert "sample 2" in offline.inner_text("body") and "6 methods" in offline.inner_text("body")
    assert seen.problems == []
    offline.close()
    # the numbers: the grid's maps as arrays, the same in the CSV
    with page.expect_download() as got:
        page.click("#export-npz")
    npz_file = tmp_path / got.value.suggested_filename
    got.value.save_as(npz_file)
    found = np.load(npz_file)
    maps = [k for k in found.files if k.startswith("sal-grid/") and k.endswith("/z")]
    assert len(maps) >= 6 and all(np.isfinite(found[k]).all() for k in maps)
    with page.expect_download() as got:
        page.click("#export-csv")
    rows = (tmp_path / "view.csv")
    got.value.save_as(rows)
    lines = rows.read_text().splitlines()
    assert lines[0] == "array,index,value" and any(line.startswith(maps[0] + ",") for line in lines)
    # every figure as SVG
    svgs = []
    page.on("download", lambda d: svgs.append(d))
    page.click("#export-svg")
    page.wait_for_timeout(3000)
    assert len(svgs) >= 2 and all(d.suggested_filename.endswith(".svg") for d in svgs)
    assert watch.problems == []
    page.close()
