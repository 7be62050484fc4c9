"""The dashboard in a real headless Chromium (Debian's, never a downloaded browser).

Starts ``interp dashboard`` as the user would (the zoo's models listed, each made a
subject when first picked), picks every zoo model in the picker, opens the sample
browser, and fails on any callback error (HTTP >= 400 on ``/_dash-update-component``),
console error, page error, or request that leaves 127.0.0.1 (a CDN would). Also opens a
generated report from disk with the network cut off, to prove it is self-contained.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import zoo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def _chromium() -> str | None:
    for path in (os.environ.get("INTERP_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if path and os.path.exists(path):
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    path = _chromium()
    if path is None:
        reason = ("Debian's chromium is not installed (`make test` installs it as root: "
                  "tools/ensure-chromium)")
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must run the browser tests")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from dashboard_server(tmp_path_factory)


def dashboard_server(tmp_path_factory, args=(), env=None):
    """``interp dashboard [args]`` on a free port with a private cache, as a user starts
    it; yields its URL once it answers, and stops it afterwards (for module fixtures)."""
    port = _free_port()
    cache = tmp_path_factory.mktemp("cache")
    log = open(cache / "server.log", "w")  # noqa: SIM115  (closed with the server)
    SERVER_LOG[0] = cache / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "interp.cli", "dashboard", "--port", str(port),
                             "--cache", str(cache), *args],
                            stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"dashboard did not start:\n{_server_errors()}")
        time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


SERVER_LOG: list[Path | None] = [None]


def _server_errors() -> str:
    """The server's output without its request lines: tracebacks of failed callbacks."""
    path = SERVER_LOG[0]
    if path is None or not path.exists():
        return ""
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if '" 200 -' not in ln]
    return "\n".join(lines[-40:])


class Watch:
    """Collects everything that counts as a failure while a page is open."""

    def __init__(self, page, allowed_prefixes: tuple[str, ...]):
        self.problems: list[str] = []
        self.callbacks = 0
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("response", self._response)
        page.route("**/*", lambda route: self._route(route, allowed_prefixes))

    def _response(self, r) -> None:
        if "_dash-update-component" in r.url:
            self.callbacks += 1
        if r.status >= 400:
            self.problems.append(f"HTTP {r.status} on {r.url}")

    def _route(self, route, allowed) -> None:
        url = route.request.url
        if url.startswith(allowed) or url.startswith("data:") or url.startswith("blob:"):
            route.continue_()
        else:
            self.problems.append(f"request left the machine: {url}")
            route.abort()


def _open(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    watch = Watch(page, (url.rstrip("/"),))
    page.goto(url)
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    return page, watch


def _wait(page, watch: Watch, selector: str = "", function: str = "", timeout: float = 30.0) -> None:
    """Wait for a selector or JS condition, failing at once (with the reason) if a problem shows."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = time.time() + timeout
    while True:
        if watch.problems:
            pytest.fail("; ".join(watch.problems) + "\nserver output:\n" + _server_errors())
        try:
            if selector:
                page.wait_for_selector(selector, timeout=500)
            else:
                page.wait_for_function(function, timeout=500)
            return
        except PlaywrightTimeout:
            if time.time() > deadline:
                pytest.fail(f"waited {timeout:.0f} s for {selector or function}\n" + _page_state(page)
                            + "\nserver output:\n" + _server_errors())


def _page_state(page) -> str:
    """What the page shows when a wait failed: its URL, tab, captions and notes (for a flaky failure's report)."""
    try:
        return page.evaluate("""() => [
            'url: ' + location.href,
            'tab: ' + (document.querySelector('#view-tabs-parent .tab--selected')?.textContent ?? '?'),
            ...Array.from(document.querySelectorAll('[id$="caption"], [id$="note"], .error'))
                .map(e => e.id + ': ' + (e.textContent ?? '').slice(0, 200))].join('\\n')""")
    except Exception as exc:  # noqa: BLE001  (the page is gone: say so, the failure is the wait's)
        return f"(the page could not be read: {exc})"


def _tab(page, label: str) -> None:
    page.locator("#view-tabs-parent").get_by_text(label, exact=True).click()


def _sample_caption(pattern: str) -> str:
    """JS: whether the sample browser's caption starts with ``pattern`` (a regular
    expression), e.g. ``sample 1\\b``: the caption begins "sample N:" or "sample N (label):"."""
    return (f"new RegExp({json.dumps('^' + pattern)})"
            ".test(document.querySelector('#sample-caption')?.textContent ?? '')")


def _rendered(selector: str) -> str:
    """JS counting the plotly graphs under ``selector`` that have drawn (each draws 3 svgs)."""
    return (f"Array.from(document.querySelectorAll('{selector} .js-plotly-plot'))"
            ".filter(g => g.querySelector('.main-svg')).length")


def test_every_zoo_model_renders_without_callback_errors(browser, server):
    page, watch = _open(browser, server)
    for name in zoo.names():
        _tab(page, "Overview")
        page.click("#model-picker")
        page.locator(f'[role="option"]:has(input[value="{name}"])').click()
        _wait(page, watch, f"text=Model card: {name}")
        subject = zoo.subject(name)
        expected = 3  # metrics, architecture, confusion / reconstructions / generated samples
        _wait(page, watch, function=f"{_rendered('#overview-figures')} === {expected}")
        card_text = page.inner_text("#overview-card")
        assert subject.description and subject.description in card_text  # the card's description
        arch = page.inner_text("#overview-architecture")
        assert "calls" not in arch and "not called" not in arch  # every layer once, nothing leaked

        _tab(page, "Samples")
        _wait(page, watch, function=_sample_caption(r"sample 0\b"))
        page.click("#sample-next")
        _wait(page, watch, function=_sample_caption(r"sample 1\b"))
        assert page.evaluate(_rendered("#sample-graph")) == 1
        assert page.evaluate(_rendered("#prediction-graph")) == 1
        if subject.is_classifier:
            assert re.search(r"predicted \S+ \(\d\.\d{3}\)", page.inner_text("#sample-caption"))
    assert watch.callbacks > 0
    assert watch.problems == []
    page.close()


ACTIVATION_GRAPHS = ["#act-sample-map", "#act-stats", "#act-histogram",
                     '[id*="act-top"]', '[id*="act-heatmap"]']


def _pick_model(page, watch, name: str) -> None:
    _tab(page, "Overview")
    page.click("#model-picker")
    page.locator(f'[role="option"]:has(input[value="{name}"])').click()
    _wait(page, watch, f"text=Model card: {name}")


def _all_drawn(selectors) -> str:
    return " && ".join(f"{_rendered(sel)} === 1" for sel in selectors)


def _click_center(page, selector: str, nth: int = 0) -> None:
    """Click where an element is drawn (plotly listens on the drag layer above its marks)."""
    box = page.locator(selector).nth(nth).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_activations_view_for_every_model(browser, server):
    _view_for_every_model(browser, server, "Activations", ACTIVATION_GRAPHS, "#act-caption", lambda _: "units")


def _view_for_every_model(browser, server, tab: str, graphs, caption: str, expected) -> None:
    """Pick each zoo model, open ``tab``, wait for ``expected(name)`` in the caption and for
    every graph to draw."""
    page, watch = _open(browser, server)
    for name in zoo.names():
        _pick_model(page, watch, name)
        _tab(page, tab)
        _wait(page, watch, f"{caption}:has-text('{expected(name)}')")
        _wait(page, watch, function=_all_drawn(graphs))
    assert watch.problems == []
    page.close()


def test_activations_clicks_pick_units_and_samples(browser, server):
    from interp.study import activations

    page, watch = _open(browser, server)
    _pick_model(page, watch, "cnn-digits")
    _tab(page, "Activations")
    _wait(page, watch, function=_all_drawn(ACTIVATION_GRAPHS))
    # another layer from the picker
    page.click("#act-layer")
    page.locator('[role="option"]:has(input[value="classifier.2"])').click()
    _wait(page, watch, "#act-caption:has-text('classifier.2: 64 units')")
    # click a unit's bar in the statistics: it becomes the unit
    bar = page.locator("#act-stats .barlayer .point").nth(5).bounding_box()
    area = page.locator("#act-stats .nsewdrag").first.bounding_box()
    page.mouse.click(bar["x"] + bar["width"] / 2, area["y"] + area["height"] / 2)
    _wait(page, watch, "#act-caption:has-text('unit 5:')")
    assert page.input_value("#act-unit") == "5"
    # click the first top sample: it becomes the current sample everywhere
    first = int(activations.top_samples(zoo.subject("cnn-digits"), "classifier.2", 5)[0][0])
    # the top samples are another callback's than the caption: clicked once they are unit 5's
    # (the title ends at the unit: "unit 5" alone would also match units 50 to 59)
    _wait(page, watch, '[id*="act-top"] .gtitle:text-matches("top 9 samples for classifier.2, unit 5$")')
    _click_center(page, '[id*="act-top"] .nsewdrag', nth=0)
    _wait(page, watch, f"#act-sample-map:has-text('· sample {first}')")
    _tab(page, "Samples")
    _wait(page, watch, function=_sample_caption(f"sample {first}:"))
    assert watch.problems == []
    page.close()


SALIENCY_GRAPHS = ["#sal-grid", "#sal-summary"]


def test_saliency_view_for_every_model(browser, server):
    _view_for_every_model(browser, server, "Saliency", SALIENCY_GRAPHS, "#sal-caption",
                          lambda name: f"{name} · sample 0")


def test_saliency_controls_change_what_is_explained(browser, server):
    page, watch = _open(browser, server)
    _pick_model(page, watch, "cnn-digits")
    _tab(page, "Samples")
    _wait(page, watch, function=_sample_caption(r"sample 0\b"))
    page.click("#sample-next")
    _wait(page, watch, function=_sample_caption(r"sample 1\b"))
    _tab(page, "Saliency")
    _wait(page, watch, "#sal-caption:has-text('cnn-digits · sample 1:')")
    _wait(page, watch, function=_all_drawn(SALIENCY_GRAPHS))
    # another target class
    page.click("#sal-target")
    page.locator('[role="option"]', has_text="class 3").click()
    _wait(page, watch, "#sal-caption:has-text('target 3')")
    _wait(page, watch, "#sal-grid:has-text('score of class 3')")
    # fewer methods, another option value: the grid follows
    page.locator("#sal-methods label", has_text="smoothgrad").click()
    page.fill("#sal-ig-steps", "8")
    page.press("#sal-ig-steps", "Enter")
    _wait(page, watch, "#sal-grid:has-text('steps 8')")
    assert "smoothgrad" not in page.inner_text("#sal-grid")
    # a window too large for the 8x8 input is explained in words, not as a server error
    page.fill("#sal-occlusion-window", "9")
    page.press("#sal-occlusion-window", "Enter")
    _wait(page, watch, "#sal-caption:has-text('larger than the input')")
    assert watch.problems == []
    page.close()


LRP_GRAPHS = ["#lrp-plan", "#lrp-grid", "#lrp-flow", "#lrp-summary"]


def test_lrp_view_for_every_model(browser, server):
    _view_for_every_model(browser, server, "LRP", LRP_GRAPHS, "#lrp-caption",
                          lambda name: f"{name} · sample 0")


def _pick_option(page, dropdown: str, value: str) -> None:
    page.click(dropdown)
    page.locator(f'[role="option"]:has(input[value="{value}"])').click()


def test_lrp_controls_change_the_plan(browser, server):
    page, watch = _open(browser, server)
    _pick_model(page, watch, "cnn-digits")
    _tab(page, "LRP")
    _wait(page, watch, "#lrp-caption:has-text('epsilon_plus_flat')")
    _wait(page, watch, function=_all_drawn(LRP_GRAPHS + ["#lrp-layer-maps"]))
    _wait(page, watch, "#lrp-plan:has-text('flat')")
    assert "alpha2" not in page.inner_text("#lrp-plan")
    # another composite: the plan and the description follow
    _pick_option(page, "#lrp-composite", "alpha2_beta1")
    _wait(page, watch, "#lrp-caption:has-text('alpha2_beta1')")
    _wait(page, watch, "#lrp-plan:has-text('alpha2')")
    _wait(page, watch, "#lrp-composite-description:has-text('Bach et al. 2015')")
    # one layer's rule overridden: the plan shows it, the caption names it
    _pick_option(page, "#lrp-override-layer", "classifier.1")
    _pick_option(page, "#lrp-override-rule", "gamma")
    _wait(page, watch, "#lrp-caption:has-text('classifier.1 → gamma')")
    _wait(page, watch, "#lrp-plan:has-text('gamma (0.25)')")
    # an input-layer rule on a hidden layer: in the plan, and explained in words (no server error)
    _pick_option(page, "#lrp-override-layer", "features.2")
    _pick_option(page, "#lrp-override-rule", "wsquare")
    _wait(page, watch, "#lrp-caption:has-text('cnn-digits · cannot explain this')")
    assert "input-layer rule" in page.inner_text("#lrp-caption")
    # reset: back to the composite's rules
    page.click("#lrp-override-reset")
    _wait(page, watch, "#lrp-caption:has-text('no overrides')")
    assert "gamma" not in page.inner_text("#lrp-plan")
    assert watch.problems == []
    page.close()


def test_sample_browser_misclassified_filter(browser, server):
    page, watch = _open(browser, server)
    page.click("#model-picker")
    page.locator('[role="option"]:has(input[value="cnn-digits"])').click()
    _wait(page, watch, "text=Model card: cnn-digits")
    _tab(page, "Samples")
    _wait(page, watch, function=_sample_caption(r"sample 0\b"))
    page.locator("#sample-only-misclassified input").check()
    _wait(page, watch, "#sample-caption:has-text('misclassified')")
    assert watch.problems == []
    page.close()


SENSITIVITY_DONE = "#sens-progress-text:has-text('done, kept on disk')"


def test_sensitivity_view_for_every_model_and_kind(browser, server):
    """Every kind of every model: the sample's figure and, where the kind has one, the test
    set's figure after its background job (the progress text says done)."""
    page, watch = _open(browser, server)
    for name in zoo.names():
        _pick_model(page, watch, name)
        _tab(page, "Sensitivity")
        subject = zoo.subject(name)
        from interp.study import sensitivity

        for kind, label in sensitivity.kinds(subject):
            page.locator(f"#sens-kind input[value='{kind}']").click()
            _wait(page, watch, f"#sens-caption:has-text('{name} · sample 0')", timeout=60)
            _wait(page, watch, f"#sens-caption:has-text('{label}')")
            _wait(page, watch, function=_all_drawn(["#sens-sample"]))
            if kind == "occlusion" and subject.modality != "tabular":
                _wait(page, watch, function="getComputedStyle(document.getElementById('sens-dataset-panel'))"
                      ".display === 'none'")
            else:
                done = sensitivity.dataset_label(subject, sensitivity.settings(subject, kind=kind))
                _wait(page, watch, f"#sens-progress-text:has-text('{done}: done')", timeout=90)
                _wait(page, watch, function=_all_drawn(["#sens-dataset"]))
    assert watch.problems == []
    page.close()


def test_sensitivity_options_reach_the_figures(browser, server):
    page, watch = _open(browser, server)
    _pick_model(page, watch, "cnn-digits")
    _tab(page, "Sensitivity")
    _wait(page, watch, SENSITIVITY_DONE, timeout=90)
    # occlusion: the window and the baseline show in the map's title; no test-set panel
    page.locator("#sens-kind input[value='occlusion']").click()
    _pick_option(page, "#sens-window", "3")
    _wait(page, watch, "#sens-sample:has-text('window 3×3')")
    _pick_option(page, "#sens-baseline", "blur")
    _wait(page, watch, "#sens-sample:has-text('(blur)')")
    # layers: another noise level and ablation start a new background job, then draw it
    page.locator("#sens-kind input[value='layer']").click()
    _pick_option(page, "#sens-noise", "0.5")
    _wait(page, watch, "#sens-dataset:has-text('noise 0.5 × the data')", timeout=90)
    _pick_option(page, "#sens-ablate", "0.5")
    _wait(page, watch, "#sens-dataset:has-text('perturbed by noise 0.5')", timeout=90)
    # another sample: the sample's figure follows
    _tab(page, "Samples")
    page.click("#sample-next")
    _wait(page, watch, function=_sample_caption(r"sample 1\b"))
    _tab(page, "Sensitivity")
    _wait(page, watch, "#sens-caption:has-text('cnn-digits · sample 1:')")
    _wait(page, watch, "#sens-sample:has-text('sample 1')")
    assert watch.problems == []
    page.close()


LATENT_DONE = "#latent-progress-text:has-text('done, kept in the store')"
LATENT_MAP = '[id*="latent-map"]'


EVALUATION_GRAPHS = ["#eval-sample", "#eval-leaderboard", "#eval-curves", "#eval-randomisation",
                     "#eval-randomisation-maps", "#eval-agreement"]


def test_evaluation_view_for_every_model(browser, server):
    """Every model: the current sample's curves at once, then the test set's leaderboard,
    curves, sanity check and agreement after the background job (the progress text says done)."""
    from interp.study import evaluation

    page, watch = _open(browser, server)
    for name in zoo.names():
        _pick_model(page, watch, name)
        _tab(page, "Evaluation")
        _wait(page, watch, f"#eval-caption:has-text('{name} · sample 0')", timeout=60)
        label = evaluation.label(zoo.subject(name))
        _wait(page, watch, f"#eval-progress-text:has-text({json.dumps(label + ': done')})", timeout=120)
        _wait(page, watch, function=_all_drawn(EVALUATION_GRAPHS))
    assert watch.problems == []
    page.close()


def test_evaluation_controls_reach_the_figures(browser, server):
    """The baseline picker recomputes the sample's curves and starts the test set's scoring
    for that baseline; the leaderboard's buttons sort its rows."""
    page, watch = _open(browser, server)
    _pick_model(page, watch, "cnn-shapes")
    _tab(page, "Evaluation")
    _wait(page, watch, "#eval-caption:has-text('cnn-shapes · sample 0')", timeout=60)
    _pick_option(page, "#eval-baseline", "blur")
    _wait(page, watch, "#eval-caption:has-text('baseline: blurred sample')", timeout=60)
    _wait(page, watch, "#eval-progress-text:has-text('baseline: blurred sample: done')", timeout=120)
    _wait(page, watch, function=_all_drawn(EVALUATION_GRAPHS))
    rows = "Array.from(document.querySelectorAll('#eval-leaderboard .yaxislayer-above .ytick text'))" \
           ".map(t => t.textContent).join(',')"
    before = page.evaluate(rows)
    page.locator("#eval-leaderboard").scroll_into_view_if_needed()
    _click_center(page, "#eval-leaderboard .updatemenu-header")  # plotly's menu listens to the mouse
    item = page.locator("#eval-leaderboard .updatemenu-item-text >> text='sort: randomisation'")
    item.wait_for()
    page.wait_for_timeout(500)  # the menu slides open
    item.scroll_into_view_if_needed()
    box = item.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    _wait(page, watch, function=f"{rows} !== {json.dumps(before)}")
    assert watch.problems == []
    page.close()


def test_latent_view_for_every_model(browser, server):
    """Every model's deepest hidden layer mapped (PCA), and the layer-by-layer maps."""
    page, watch = _open(browser, server)
    for name in zoo.names():
        _pick_model(page, watch, name)
        _tab(page, "Latent space")
        _wait(page, watch, f"#latent-caption:has-text('{name} · sample 0')", timeout=60)
        _wait(page, watch, LATENT_DONE, timeout=60)
        _wait(page, watch, function=_all_drawn([LATENT_MAP, '[id*="latent-layers"]']), timeout=60)
        assert "trustworthiness" in page.inner_text(LATENT_MAP)
    assert watch.problems == []
    page.close()


def test_latent_view_walks_generative_latents(browser, server):
    """The VAE's traversal around the current sample's code and its KL per unit; the GAN's
    interpolation scored by its discriminator; none for a classifier."""
    page, watch = _open(browser, server)
    _pick_model(page, watch, "vae-digits")
    _tab(page, "Latent space")
    _wait(page, watch, "#latent-generative-traversal:has-text(\"Decoding around sample 0's code\")", timeout=60)
    _wait(page, watch, "#latent-generative-kl:has-text('units used')")
    _tab(page, "Samples")
    page.click("#sample-next")
    _wait(page, watch, function=_sample_caption(r"sample 1\b"))
    _tab(page, "Latent space")
    _wait(page, watch, "#latent-generative-traversal:has-text(\"Decoding around sample 1's code\")")
    _pick_model(page, watch, "gan-digits")
    _tab(page, "Latent space")
    _wait(page, watch, "#latent-generative-interpolation:has-text('discriminator: real logit')", timeout=60)
    _pick_model(page, watch, "cnn-digits")
    _tab(page, "Latent space")
    _wait(page, watch, function="getComputedStyle(document.getElementById('latent-generative')).display === 'none'")
    assert watch.problems == []
    page.close()


POINT = """() => {
  const gd = document.querySelector('[id*="latent-map"] .js-plotly-plot');
  const t = gd._fullData.findIndex(d => d.customdata && d.customdata.length && d.name !== 'selected');
  const d = gd._fullData[t], L = gd._fullLayout, box = gd.getBoundingClientRect();
  const i = Math.floor(d.x.length / 2);
  return {id: d.customdata[i], x: box.left + L.xaxis._offset + L.xaxis.l2p(d.x[i]),
          y: box.top + L.yaxis._offset + L.yaxis.l2p(d.y[i])};
}"""


def lasso_everything(page, graph: str) -> None:
    """Draw a lasso around the whole plotting area of ``graph`` with the mouse."""
    box = page.locator(f"{graph} .nsewdrag").first.bounding_box()
    corners = [(0.02, 0.02), (0.98, 0.02), (0.98, 0.98), (0.02, 0.98), (0.02, 0.03)]
    page.mouse.move(box["x"] + box["width"] * corners[0][0], box["y"] + box["height"] * corners[0][1])
    page.mouse.down()
    for fx, fy in corners[1:]:
        page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=8)
    page.mouse.up()


def test_latent_map_clicks_and_lassos_pick_samples(browser, server):
    page, watch = _open(browser, server)
    _pick_model(page, watch, "cnn-digits")
    _tab(page, "Latent space")
    _wait(page, watch, LATENT_DONE, timeout=60)
    _wait(page, watch, function=_all_drawn([LATENT_MAP]))
    # UMAP in the background: the progress line, then the map, kept for the next look
    page.locator("#latent-method input[value='umap']").click()
    _wait(page, watch, "#latent-progress-text:has-text('UMAP of classifier.2 over 450 test samples')")
    _wait(page, watch, "#latent-progress-text:has-text('UMAP of classifier.2 over 450 test samples: done')",
          timeout=120)
    _wait(page, watch, f"{LATENT_MAP}:has-text('UMAP of classifier.2')")
    # hovering a point shows its sample; a unit's activation colours the map
    page.wait_for_timeout(500)
    point = page.evaluate(POINT)
    page.mouse.move(point["x"], point["y"])
    _wait(page, watch, "#latent-hovered:has-text('sample ')")
    page.locator("#latent-colour input[value='unit']").click()
    page.fill("#latent-unit", "3")
    page.press("#latent-unit", "Enter")
    _wait(page, watch, f"{LATENT_MAP}:has-text('unit 3')")
    # a click on a point makes its sample the current one everywhere
    page.wait_for_timeout(500)
    point = page.evaluate(POINT)
    page.mouse.click(point["x"], point["y"])  # on that point, or a neighbour drawn over it
    _wait(page, watch, function="!document.querySelector('#latent-caption').innerText.includes('· sample 0:')")
    picked = re.search(r"· sample (\d+):", page.inner_text("#latent-caption")).group(1)
    _tab(page, "Samples")
    _wait(page, watch, function=_sample_caption(f"sample {picked}:"))
    _tab(page, "Latent space")
    # a lasso around the whole plot selects every point: the selected samples are shown
    lasso_everything(page, LATENT_MAP)
    _wait(page, watch, '[id*="latent-selection"]:has-text("20 selected samples")')
    assert watch.problems == []
    page.close()


def test_served_with_debug_off_and_local_assets(server):
    with urllib.request.urlopen(server, timeout=5) as r:
        html, served_by = r.read().decode(), r.headers.get("Server", "")
    assert served_by == "interp"  # waitress (its ident), not Flask's development server (Werkzeug)
    assert '"ui":false' in html  # Dash dev tools (debug) off
    for src in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not re.match(r"(https?:)?//", src), src


def test_report_renders_offline(browser, tmp_path):
    from reports.build import build

    build([zoo.subject("vae-digits")], tmp_path, progress=False)
    page = browser.new_page()
    watch = Watch(page, ("file://",))
    page.goto(Path(tmp_path / "vae-digits.html").as_uri())
    n_divs = page.locator(".plotly-graph-div").count()
    assert n_divs >= 3 + 2 * 3  # overview figures, and sample + prediction per showcased sample
    _wait(page, watch, function=f"{_rendered('')} === {n_divs}")
    assert watch.problems == []
    page.close()
