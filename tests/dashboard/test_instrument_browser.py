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
    _pick_model,
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
    # a model picked while the layer views are hidden: their layer lists (which record the
    # test set) are made when they are shown, not before
    page.wait_for_timeout(1000)
    answers.clear()
    _pick_model(page, watch, "lstm-sentiment")
    page.wait_for_timeout(1500)
    changed = sorted({key for answer in answers for key in answer})
    listed = [k for k in changed if k.startswith("act-") or k in ("latent-layer", "latent-map", "latent-layers")]
    assert not listed, changed  # (the lasso is emptied: nothing is computed for that)
    _tab(page, "Activations")
    _wait(page, watch, "#act-caption:has-text('units')")
    # listed for the LSTM; another model picked elsewhere: the LSTM's layer leaves the URL
    _wait(page, watch, function="location.search.includes('layer=')")
    _pick_model(page, watch, "mlp-cancer")
    _wait(page, watch, function="location.search.includes('model=mlp-cancer') && !location.search.includes('layer=')"
                                " && !location.search.includes('unit=')")
    _tab(page, "Activations")
    _wait(page, watch, "#act-caption:has-text('net.3:')")  # the MLP's own default layer
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
    # back and forward without a reload (the dcc.Location still holds the link it started with)
    page.go_back()
    _wait(page, watch, function="location.search.includes('sample=7')")
    _wait(page, watch, function=_sample_caption(r"sample 7\b"))
    page.go_forward()
    _wait(page, watch, function=_sample_caption(r"sample 8\b"))
    # a reload restores it
    page.reload()
    _wait(page, watch, function=_sample_caption(r"sample 8\b"))
    assert "vae-digits" in page.inner_text(".picker")
    # a step, then back to the entry the page was loaded at (the one the dcc.Location holds)
    page.wait_for_timeout(500)
    page.click("#sample-next")
    _wait(page, watch, function="location.search.includes('sample=9')")
    page.go_back()
    _wait(page, watch, function=_sample_caption(r"sample 8\b"))
    page.go_forward()
    _wait(page, watch, function=_sample_caption(r"sample 9\b"))
    page.go_back()
    _wait(page, watch, function=_sample_caption(r"sample 8\b"))
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


PIXEL = """([row, col]) => {
  const gd = document.querySelector('#whatif-canvas .js-plotly-plot') || document.querySelector('#whatif-canvas');
  const L = gd._fullLayout, box = gd.getBoundingClientRect();
  return {x: box.left + L.xaxis._offset + L.xaxis.l2p(col), y: box.top + L.yaxis._offset + L.yaxis.l2p(row)};
}"""


def _flipping_pixels(subject, index: int) -> list[tuple[int, int]]:
    """Pixels to draw (greedily, the one that lowers the predicted class most each time)
    until the digit CNN changes its mind about sample ``index``."""
    import torch

    from interp.study import overview

    x, hi = subject.inputs[index].clone(), float(subject.inputs.max())
    first = int(overview.predictions(subject)[index].argmax())
    picks = []
    for _ in range(12):
        trials = x.repeat(64, 1, 1, 1)
        trials.view(64, -1)[torch.arange(64), torch.arange(64)] = hi
        p = overview.predict(subject, trials)[:, first]
        k = int(p.argmin())
        x = trials[k]
        picks.append((k // 8, k % 8))
        if int(overview.predict(subject, x[None])[0].argmax()) != first:
            return picks
    raise AssertionError("no pixels found that change the prediction")


def _trace_values(page, graph: str) -> str:
    return page.evaluate(f"""() => {{
      const gd = document.querySelector('{graph} .js-plotly-plot') || document.querySelector('{graph}');
      return JSON.stringify(gd.data.map(t => [t.z, t.y, t.x]));
    }}""")


def test_a_pixel_edit_changes_the_prediction_and_the_saliency_map(browser, server):
    import zoo

    cnn = zoo.subject("cnn-digits")
    pixels = _flipping_pixels(cnn, 4)
    page, watch = _open(browser, server, "?model=cnn-digits&sample=4&view=saliency")
    _wait(page, watch, "#sal-caption:has-text('sample 4')")
    _wait(page, watch, function=_all_drawn(["#sal-grid"]))
    before = _trace_values(page, "#sal-grid")
    _tab(page, "Samples")
    _wait(page, watch, function=_all_drawn(["#whatif-canvas"]))
    for row, col in pixels:
        page.wait_for_timeout(300)
        at = page.evaluate(PIXEL, [row, col])
        page.mouse.click(at["x"], at["y"])
        _wait(page, watch, "#sample-caption:has-text('sample 4, edited')")
    _wait(page, watch, "#whatif-change:has-text('prediction changed')")
    _wait(page, watch, "#sample-caption:has-text('sample 4, edited')")
    _tab(page, "Saliency")
    _wait(page, watch, "#sal-caption:has-text('sample 4, edited')")
    _wait(page, watch, function=_all_drawn(["#sal-grid"]))
    page.wait_for_timeout(500)
    assert _trace_values(page, "#sal-grid") != before  # the maps are the edited input's
    # back to the test sample
    _tab(page, "Samples")
    page.click("#whatif-reset")
    _wait(page, watch, function=_sample_caption(r"sample 4:"))
    assert page.inner_text("#whatif-change") == ""
    assert watch.problems == []
    page.close()


def test_a_token_edit_changes_the_lrp_strip(browser, server):
    import zoo

    lstm = zoo.subject("lstm-sentiment")
    words = lstm.token_texts(lstm.inputs[2])
    page, watch = _open(browser, server, "?model=lstm-sentiment&sample=2&view=lrp")
    _wait(page, watch, "#lrp-caption:has-text('sample 2')")
    _wait(page, watch, function=_all_drawn(["#lrp-grid"]))
    before = _trace_values(page, "#lrp-grid")
    _tab(page, "Samples")
    _wait(page, watch, "#whatif-positions .Select, #whatif-positions [class*='dropdown']")
    position = next(i for i, w in enumerate(words) if w not in ("<pad>", "the", "a", "movie", "film"))
    other = next(w for w in lstm.vocab if w not in words and not w.startswith("<"))
    dropdown = page.locator(f'[id*=\'"index":{position}\'][id*="whatif-position"]').first
    dropdown.click()
    # typed into the open dropdown's search box (keys sent to the page land wherever the focus went)
    page.locator(".dash-dropdown-content[data-state='open'] input.dash-dropdown-search").fill(other)
    page.locator(f'.dash-dropdown-content [role="option"]:has-text("{other}")').first.click()
    assert other in dropdown.inner_text()  # picked, and the editor was not drawn again under the cursor
    _tab(page, "LRP")  # away and back: a pick not yet applied is still there
    _tab(page, "Samples")
    page.wait_for_timeout(800)
    assert other in dropdown.inner_text()
    page.click("#whatif-apply-tokens")
    _wait(page, watch, "#sample-caption:has-text('sample 2, edited')")
    _tab(page, "LRP")
    _wait(page, watch, "#lrp-caption:has-text('sample 2, edited')")
    _wait(page, watch, function=_all_drawn(["#lrp-grid"]))
    page.wait_for_timeout(500)
    after = _trace_values(page, "#lrp-grid")
    assert after != before and other in page.inner_text("#lrp-grid")  # the strip shows the new token
    assert watch.problems == []
    page.close()


def test_a_feature_edit_of_a_table_row(browser, server):
    page, watch = _open(browser, server, "?model=mlp-cancer&sample=3&view=samples")
    _wait(page, watch, function=_sample_caption(r"sample 3:"))
    field = page.locator('[id*="whatif-feature"][id*=\'"index":0\']').first
    before = float(field.input_value())
    field.fill(f"{before * 3:.4f}")
    field.press("Enter")
    page.click("#whatif-apply-features")
    _wait(page, watch, "#sample-caption:has-text('sample 3, edited')")
    _wait(page, watch, "#whatif-change:has-text('P(')")
    # a bad value is said in the page, the edit kept as it was
    field = page.locator('[id*="whatif-feature"][id*=\'"index":1\']').first
    field.fill("")
    field.press("Enter")
    page.click("#whatif-apply-features")
    _wait(page, watch, "#whatif-error:has-text('give a number for each of the 30 features')")
    assert watch.problems == []
    page.close()


def test_compare_mode(browser, server):
    page, watch = _open(browser, server, "?model=cnn-digits&sample=3&view=compare")
    _wait(page, watch, "#cmp-caption:has-text('Spearman')")
    _wait(page, watch, function=_all_drawn(["#cmp-pair"]))
    assert "right − left" in page.inner_text("#cmp-pair")  # the same input: the difference beside
    page.locator("#cmp-kind input[value='composites']").click()
    _wait(page, watch, "#cmp-pair:has-text('LRP epsilon')")
    # a pinned reference against the current sample
    page.click("#pin-sample")
    _wait(page, watch, "#pinned-text:has-text('pinned: cnn-digits sample 3')")
    page.click("#sample-next")
    page.locator("#cmp-kind input[value='samples']").click()
    _wait(page, watch, "#cmp-pair:has-text('sample 4')")
    assert "sample 3" in page.inner_text("#cmp-pair") and "right − left" not in page.inner_text("#cmp-pair")
    # two models reading the same sentences
    page.goto(server + "?model=lstm-sentiment&sample=2&view=compare")
    page.locator("#cmp-kind input[value='models']").click()
    page.click("#cmp-other-model")
    page.locator('[role="option"]:has(input[value="transformer-sentiment"])').click()
    _wait(page, watch, "#cmp-pair:has-text('transformer-sentiment')")
    _wait(page, watch, "#cmp-caption:has-text('Spearman')")
    assert watch.problems == []
    page.close()


def test_options_of_methods_not_ticked_are_hidden(browser, server):
    page, watch = _open(browser, server, "?model=mlp-cancer&sample=0&view=saliency&methods=gradient,smoothgrad")
    _wait(page, watch, "#sal-caption:has-text('2 methods')")
    assert page.locator("#sal-sg-samples").is_visible()
    for hidden in ("#sal-ig-steps", "#sal-occlusion-window", "#sal-cam-layer"):
        assert not page.locator(hidden).is_visible(), hidden  # integrated gradients, occlusion, Grad-CAM not ticked
    page.locator("#sal-methods input[value='smoothgrad']").click()
    _wait(page, watch, "#sal-caption:has-text('1 method ·')")
    assert not page.locator("#sal-sg-samples").is_visible()
    assert watch.problems == []
    page.close()
