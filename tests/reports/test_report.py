"""Static reports: one self-contained HTML file per model plus an index, written atomically."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest
import torch

import zoo
from interp.study import lrp, overview
from reports.build import build


class Resources(HTMLParser):
    """Collects what a browser would fetch: script src, stylesheet/icon links, images, frames."""

    def __init__(self):
        super().__init__()
        self.fetched: list[str] = []
        self.scripts = 0
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag in ("script", "img", "iframe", "source", "video", "audio", "embed") and a.get("src"):
            self.fetched.append(a["src"])
        if tag == "link" and a.get("href"):
            self.fetched.append(a["href"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])


def _external(url: str) -> bool:
    return bool(re.match(r"^(https?:)?//", url))


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    build([zoo.subject(n) for n in ("cnn-digits", "lstm-sentiment", "gan-digits")], out, progress=False)
    return out


def test_files_and_index(report_dir):
    names = sorted(p.name for p in report_dir.iterdir())
    assert names == ["cnn-digits.html", "gan-digits.html", "index.html", "lstm-sentiment.html", "reports.json"]
    idx = Resources()
    idx.feed((report_dir / "index.html").read_text())
    pages = {link.split("#")[0] for link in idx.links if not link.startswith("#")}  # "#…": the index's own parts
    assert sorted(pages) == ["cnn-digits.html", "gan-digits.html", "lstm-sentiment.html"]
    assert "cnn-digits.html#lrp" in idx.links and "gan-digits.html#summary" in idx.links  # a section's anchor


class Story(HTMLParser):
    """The page's outline: the table of contents' targets, the sections' ids in order, the
    figures and their reading lines, and every address a script, link, img or anchor names."""

    def __init__(self):
        super().__init__()
        self.toc: list[str] = []
        self.sections: list[str] = []
        self.figures = self.reads = 0
        self.addresses: list[str] = []
        self._in_toc = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "nav" and "toc" in (a.get("class") or ""):
            self._in_toc = True
        if tag == "a" and self._in_toc:
            self.toc.append(a.get("href", ""))
        if tag == "section" and a.get("id"):
            self.sections.append(a["id"])
        if tag == "figure":
            self.figures += 1
        if tag == "figcaption" and "read" in (a.get("class") or ""):
            self.reads += 1
        for key in ("src", "href"):
            if tag in ("script", "link", "img", "a", "iframe", "source") and a.get(key):
                self.addresses.append(a[key])

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in_toc = False


@pytest.mark.parametrize("name", ["cnn-digits", "lstm-sentiment", "gan-digits"])
def test_a_page_reads_as_a_story(report_dir, name):
    """A table of contents whose every entry is a section of the page, the summary first and
    the record last, every figure with a line on how to read it, and nothing on the network."""
    text = (report_dir / f"{name}.html").read_text()
    page = Story()
    page.feed(text)
    assert page.sections == ["summary", "card", "overview", "samples", "activations", "saliency", "lrp",
                             "sensitivity", "evaluation", "latent", "record"]
    assert page.toc == [f"#{s}" for s in page.sections]
    assert page.figures >= 15 and page.reads == page.figures  # every figure says how to read it
    assert not [u for u in page.addresses if re.match(r"^\s*(https?:)?//", u, re.I)]
    summary = text.split('id="summary"')[1].split("</section>")[0]
    assert "Where the relevance lies" in summary and "Most faithful explanation" in summary
    assert re.search(r"\d\.\d", summary)  # sentences with numbers
    record = text.split('id="record"')[1].split("</section>")[0]
    for what in ("torch", "captum", "plotly", "numpy", "scikit-learn", "umap-learn", "Python", "weights sha256",
                 "data sha256", "evaluation seed", "command", "commit"):
        assert f"<td>{what}</td>" in record, what
    assert re.search(r"<td>weights sha256</td><td>[0-9a-f]{64}</td>", record)
    assert "(click one)" not in text and "generated 20" not in text  # no dashboard wording, no timestamp


def test_the_summary_says_what_the_sections_found():
    """Its sentences are the sections' numbers: the most faithful method is the evaluation's
    leaderboard head, the relevance lies on the features LRP ranks first."""
    import torch

    from interp.study import evaluation
    from reports.build import _report, _summary

    entry = zoo.subject("mlp-cancer")
    parts, _ = _report(entry, ("lrp", "evaluation"))
    summary = _summary(entry, parts)
    best, value = next((m, v) for m, v in evaluation.result(entry).leaderboard("deletion") if m != "random")
    assert f"<b>{best}</b> at {value:.3f}" in summary
    c = lrp.comparison(entry, overview.showcase_samples(entry))
    first = int(c.result.relevance[0].abs().argmax())
    assert entry.features[first] in summary.split("Where the relevance lies")[1].split("</li>")[0]
    assert torch.isfinite(c.result.relevance).all()


@pytest.mark.parametrize("name, against", [("mlp-cancer", "moves the agreement with the labels from"),
                                           ("autoencoder-digits", "changes the score by")])
def test_the_most_sensitive_layer_is_told_in_what_was_measured(name, against):
    """A classifier's layer check measures how many predictions stay right; a one-output
    model's measures the relative change of its score (no agreement to speak of). The
    sentence names the layer whose ablation moves that measure most."""
    from interp.study import sensitivity
    from reports.build import _report, _summary

    entry = zoo.subject(name)
    parts, _ = _report(entry, ("sensitivity",))
    sentence = _summary(entry, parts).split("Most sensitive layer")[1].split("</li>")[0]
    assert against in sentence
    layer = sensitivity.dataset_result(entry, dataclasses.replace(sensitivity.settings(entry), kind="layer"))
    moved = (layer.ablation.double() - layer.baseline).abs()
    assert f"<b>{layer.layers[int(moved.nan_to_num(-1).argmax())]}</b>" in sentence


def test_a_damaged_manifest_entry_is_left_out_of_the_index(tmp_path):
    """A reports.json of another version (an entry without a headline, a section unknown
    here) does not break the next run: that entry is left out, the others stay."""
    import json

    build([zoo.subject("mlp-cancer")], tmp_path, progress=False, sections=["overview"])
    manifest = json.loads((tmp_path / "reports.json").read_text())
    (tmp_path / "old.html").write_text("<html></html>")
    (tmp_path / "odd.html").write_text("<html></html>")
    manifest["entries"]["old.html"] = {"name": "old", "file": "old.html"}
    manifest["entries"]["odd.html"] = dict(manifest["entries"]["mlp-cancer.html"], name="odd", file="odd.html",
                                           sections=["spectra"])
    (tmp_path / "reports.json").write_text(json.dumps(manifest))
    build([zoo.subject("autoencoder-digits")], tmp_path, progress=False, sections=["overview"])
    text = (tmp_path / "index.html").read_text()
    assert ">mlp-cancer</b>" in text and ">autoencoder-digits</b>" in text
    assert ">old</b>" not in text and ">odd</b>" not in text


def test_pdf_without_chromium_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    builder = importlib.import_module("reports.build")  # the package re-exports build, the function
    from interp.cli import main

    monkeypatch.setattr(builder, "chromium", lambda: None)
    monkeypatch.setattr(builder, "_report", lambda *a, **k: pytest.fail("computed before the arguments were checked"))
    assert main(["report", "--model", "mlp-cancer", "--format", "pdf", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Chromium" in err and "drop --format pdf" in err and len(err.splitlines()) == 1


def test_two_runs_give_the_same_bytes_and_timings_stay_beside(tmp_path):
    import json

    entry = zoo.subject("mlp-cancer")
    for run in ("a", "b"):
        build([entry], tmp_path / run, progress=False, sections=["overview", "saliency", "lrp"])
    for page in ("mlp-cancer.html", "index.html"):
        assert (tmp_path / "a" / page).read_bytes() == (tmp_path / "b" / page).read_bytes(), page
    text = (tmp_path / "a" / "mlp-cancer.html").read_text()
    assert "ms (batch)" not in text and "<b>ms</b>" not in text  # the tables' timing columns moved out
    timings = json.loads((tmp_path / "a" / "reports.json").read_text())["entries"]["mlp-cancer.html"]["timings"]
    assert set(timings["seconds"]) == {"overview", "saliency", "lrp"}
    assert timings["tables"]["lrp"]["lrp-summary"] and timings["tables"]["saliency"]["saliency-summary"]


def test_plotly_shared_is_written_once_beside_small_pages(tmp_path):
    from plotly.offline import get_plotlyjs

    build([zoo.subject("mlp-cancer")], tmp_path, progress=False, plotly="shared")
    assert (tmp_path / "plotly.min.js").read_text() == get_plotlyjs()
    for page in ("mlp-cancer.html", "index.html"):
        text = (tmp_path / page).read_text()
        assert '<script type="text/javascript" src="plotly.min.js"></script>' in text
        assert get_plotlyjs()[:200] not in text
    assert (tmp_path / "mlp-cancer.html").stat().st_size <= 1.5e6


def test_a_folder_keeps_every_report_in_its_index(tmp_path):
    """A run for one model into a folder of reports adds it to the index, never replaces it."""
    build([zoo.subject("mlp-cancer")], tmp_path, progress=False, sections=["overview"])
    build([zoo.subject("autoencoder-digits")], tmp_path, progress=False, sections=["overview"])
    idx = Resources()
    idx.feed((tmp_path / "index.html").read_text())
    assert {link.split("#")[0] for link in idx.links if not link.startswith("#")} == {"autoencoder-digits.html",
                                                                                     "mlp-cancer.html"}
    build([zoo.subject("mlp-cancer")], tmp_path, progress=False, sections=["overview"])  # again: once
    assert (tmp_path / "index.html").read_text().count(">mlp-cancer</b>") == 1


def test_an_interrupted_run_leaves_complete_pages_and_a_true_index(tmp_path, monkeypatch):
    builder = importlib.import_module("reports.build")  # the package re-exports build, the function

    calls = []

    def interrupted(entry):
        calls.append(entry.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return builder.Part("overview", "<section id=\"overview\"><h2>Overview</h2></section>")

    monkeypatch.setitem(builder._SECTIONS, "overview", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build([zoo.subject("mlp-cancer"), zoo.subject("autoencoder-digits")], tmp_path, progress=False,
              sections=["overview"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "mlp-cancer.html", "reports.json"]
    assert (tmp_path / "mlp-cancer.html").read_text().rstrip().endswith("</html>")
    assert "autoencoder-digits" not in (tmp_path / "index.html").read_text()


@pytest.mark.browser
def test_the_pdf_prints_every_figure_within_the_page(tmp_path):
    """Chromium prints the page (A4): a PDF whose first pages, rendered to images, have
    nothing cut at the right edge, and whose figures, laid out at the printed width, each
    fit it without overlapping the next."""
    import pypdfium2
    from playwright.sync_api import sync_playwright

    from reports.build import PRINT_WIDTH_PX, chromium

    if chromium() is None:
        pytest.skip("no Chromium on this machine (CI installs it)")
    paths = build([zoo.subject("cnn-digits")], tmp_path, progress=False, formats=["pdf"],
                  sections=["overview", "saliency", "lrp"])
    pdf = tmp_path / "cnn-digits.pdf"
    assert pdf in paths and pdf.read_bytes()[:5] == b"%PDF-"
    document = pypdfium2.PdfDocument(str(pdf))
    assert len(document) >= 3
    for number in range(3):
        image = document[number].render(scale=1).to_pil().convert("L")
        width, height = image.size
        edge = image.crop((int(width * 0.96), 0, width, height))
        assert edge.getextrema()[0] > 240, f"page {number + 1}: something drawn into the right margin"
        assert image.getextrema()[0] < 128  # something is printed
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": PRINT_WIDTH_PX, "height": 1000})
        page.goto((tmp_path / "cnn-digits.html").as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg")
        page.emulate_media(media="print")
        boxes = page.eval_on_selector_all(".js-plotly-plot .main-svg:first-child",
                                          "els => els.map(e => { const r = e.getBoundingClientRect(); "
                                          "return [r.left, r.top, r.right, r.bottom]; })")
        browser.close()
    assert boxes and all(right <= PRINT_WIDTH_PX + 1 and left >= -1 for left, _, right, _ in boxes)
    ordered = sorted(boxes, key=lambda b: (b[1], b[0]))
    for a, b in zip(ordered, ordered[1:]):
        apart = b[1] >= a[3] - 1 or b[0] >= a[2] - 1  # below, or beside
        assert apart, f"figures overlap: {a} and {b}"


@pytest.mark.browser
def test_every_figure_as_png_and_svg(tmp_path):
    """``--format png,svg``: each figure of the page as a PNG (twice its size in pixels) and
    an SVG that names nothing outside itself, one file per figure in NAME-figures/."""
    import xml.etree.ElementTree as ET

    from PIL import Image

    from reports.build import IMAGE_SCALE, IMAGE_SIZE, chromium

    if chromium() is None:
        pytest.skip("no Chromium on this machine (CI installs it)")
    paths = build([zoo.subject("mlp-cancer")], tmp_path, progress=False, formats=["png", "svg"],
                  sections=["overview"])
    page = (tmp_path / "mlp-cancer.html").read_text()
    ids = re.findall(r'<div id="(mlp-cancer-[^"]+)" class="plotly-graph-div"', page)
    folder = tmp_path / "mlp-cancer-figures"
    assert ids and sorted(p.name for p in folder.iterdir()) == sorted(f"{i}.{f}" for i in ids for f in ("png", "svg"))
    assert set(folder.iterdir()) <= set(paths)
    for i in ids:
        svg = (folder / f"{i}.svg").read_text()
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg") and not re.search(r'(href|src)="(https?:)?//', svg)
        width, height = float(root.get("width")), float(root.get("height"))
        assert width >= min(IMAGE_SIZE) and height > 0
        with Image.open(folder / f"{i}.png") as image:
            assert image.format == "PNG" and image.size == (IMAGE_SCALE * width, IMAGE_SCALE * height)
            assert image.convert("L").getextrema()[0] < 128  # something is drawn


def test_figures_without_kaleido_is_one_line(monkeypatch):
    builder = importlib.import_module("reports.build")  # the package re-exports build, the function
    from interp.errors import InterpError

    find = importlib.util.find_spec
    monkeypatch.setattr(builder, "chromium", lambda: "/usr/bin/chromium")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "kaleido" else find(name, *a))
    with pytest.raises(InterpError, match=r"pip install 'interp\[images\]'") as caught:
        builder.check_formats(["svg"])
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["cnn-digits", "lstm-sentiment", "gan-digits"])
def test_report_is_self_contained(report_dir, name):
    from plotly.offline import get_plotlyjs

    text = (report_dir / f"{name}.html").read_text()
    res = Resources()
    res.feed(text)
    assert [u for u in res.fetched if _external(u) or not u.startswith("data:")] == []
    assert all(not _external(u) for u in res.links)
    assert text.count(get_plotlyjs()[:200]) == 1  # plotly.js embedded exactly once
    # every overview figure of the dashboard is in the report
    subject = zoo.subject(name)
    for key in overview.overview_figures(subject):
        assert f'id="{name}-{key}"' in text
    assert subject.description and subject.description in text  # the card's description


@pytest.mark.parametrize("name", ["cnn-digits", "lstm-sentiment", "gan-digits"])
def test_report_has_an_lrp_section(report_dir, name):
    text = (report_dir / f"{name}.html").read_text()
    assert "<h2>LRP</h2>" in text
    assert text.index("<h2>Saliency</h2>") < text.index("<h2>LRP</h2>")
    for key in ("lrp-grid", "lrp-flow", "lrp-plan", "lrp-summary"):
        assert f'id="{name}-{key}"' in text
    # convolution and sequence layers have maps; the GAN's dense discriminator has none
    assert (f'id="{name}-lrp-layer-maps"' in text) == (name != "gan-digits")
    assert f"<b>{lrp.default_composite(zoo.subject(name))}</b>" in text


@pytest.mark.parametrize("name", ["cnn-digits", "lstm-sentiment", "gan-digits"])
def test_report_has_a_sensitivity_section(report_dir, name):
    text = (report_dir / f"{name}.html").read_text()
    assert text.index("<h2>LRP</h2>") < text.index("<h2>Sensitivity</h2>")
    entry = zoo.subject(name)
    keys = ["noise", "layer"] + [f"occlusion-{i}" for i in overview.showcase_samples(entry)[:3]]
    for key in keys:
        assert f'id="{name}-sensitivity-{key}"' in text
    # token models are rated in their embedding space, without LRP, and the page says so
    assert f'id="{name}-sensitivity-explanation"' in text
    assert ("so LRP is not rated" in text) == (name == "lstm-sentiment")
    robustness = text.split(f'id="{name}-sensitivity-explanation"')[1].split("<h2>Evaluation</h2>")[0]
    assert ("lrp:" in robustness) == (name != "lstm-sentiment")


@pytest.mark.parametrize("name", ["cnn-digits", "lstm-sentiment", "gan-digits"])
def test_report_has_a_latent_section(report_dir, name):
    from interp.study import latent

    text = (report_dir / f"{name}.html").read_text()
    assert text.index("<h2>Sensitivity</h2>") < text.index("<h2>Latent space</h2>")
    for key in ("latent-map", "latent-layers"):
        assert f'id="{name}-{key}"' in text
    layer = latent.default_layer(zoo.subject(name))
    assert f"UMAP of <b>{layer}</b>" in text and "trustworthiness" in text
    assert "not built yet" not in text


@pytest.mark.parametrize("name", ["cnn-digits", "lstm-sentiment", "gan-digits"])
def test_report_has_an_evaluation_section(report_dir, name):
    from interp.study import evaluation

    text = (report_dir / f"{name}.html").read_text()
    assert text.index("<h2>Sensitivity</h2>") < text.index("<h2>Evaluation</h2>") < text.index("<h2>Latent space</h2>")
    entry = zoo.subject(name)
    for key in ("leaderboard", "curves", "randomisation", "randomisation-maps", "agreement"):
        assert f'id="{name}-evaluation-{key}"' in text
    section = text.split("<h2>Evaluation</h2>")[1].split("<h2>Latent space</h2>")[0]
    assert all(m in section for m in evaluation.methods(entry))  # every method ranked, none hidden
    assert ("Ground truth" in section) == (entry.truth is not None)


def test_the_index_ranks_methods_across_models(report_dir):
    from plotly.offline import get_plotlyjs

    text = (report_dir / "index.html").read_text()
    assert text.count(get_plotlyjs()[:200]) == 1
    assert 'id="index-leaderboard-0"' in text  # deletion, every model
    assert 'id="index-leaderboard-1"' in text  # relevance mass: the LSTM's tokens have true regions
    figure = text.split('id="index-leaderboard-0"')[1]
    assert all(n in figure for n in ("cnn-digits", "lstm-sentiment", "gan-digits"))


def test_tabular_report_sweeps_the_strongest_feature(tmp_path):
    from interp.study import sensitivity

    build([zoo.subject("mlp-cancer")], tmp_path, progress=False)
    text = (tmp_path / "mlp-cancer.html").read_text()
    entry = zoo.subject("mlp-cancer")
    strongest = sensitivity.strongest_feature(entry, sensitivity.settings(entry))
    assert 'id="mlp-cancer-sensitivity-sweep"' in text and "occlusion-" not in text
    assert entry.features[strongest] in text


def test_report_shows_misclassified_samples(report_dir):
    text = (report_dir / "cnn-digits.html").read_text()
    assert "misclassified" in text and "correct" in text


def test_cli_report_all(tmp_path):
    r = subprocess.run([sys.executable, "-m", "interp.cli", "report", "--model", "mlp-cancer",
                        "--out", str(tmp_path), "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "mlp-cancer.html", "reports.json"]
    record = (tmp_path / "mlp-cancer.html").read_text().split('id="record"')[1]
    assert f"<td>interp report --model mlp-cancer --out {tmp_path} --quiet</td>" in record  # the command


@pytest.mark.parametrize("argv, message", [
    (["--out", ""], "--out is empty"),
    (["--out", "{file}"], "it is a file, not a folder"),
    (["--out", "{dir}", "--sections", "lrp,spectra"], "unknown section 'spectra'"),
    (["--out", "{dir}", "--format", "docx"], "unknown format 'docx'"),
    (["--out", "{dir}", "--sections", ""], "no section chosen"),
])
def test_report_arguments_are_checked_before_any_work(tmp_path, monkeypatch, capsys, argv, message):
    builder = importlib.import_module("reports.build")  # the package re-exports build, the function
    from interp.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setattr(builder, "_report", lambda *a, **k: pytest.fail("computed before the arguments were checked"))
    argv = [a.format(file=blocker, dir=tmp_path / "out") for a in argv]
    assert main(["report", "--model", "mlp-cancer", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or message == "--out is empty"  # a refused option makes no folder


def test_a_model_named_twice_is_reported_once(tmp_path, monkeypatch):
    builder = importlib.import_module("reports.build")  # the package re-exports build, the function
    from interp.cli import main

    seen = []
    monkeypatch.setattr(builder, "build", lambda subjects, out, **kw: seen.append([s.name for s in subjects]) or [])
    assert main(["report", "--model", "mlp-cancer", "--model", "mlp-cancer", "--out", str(tmp_path), "--quiet"]) == 0
    assert seen == [["mlp-cancer"]]


def test_report_help_has_examples(capsys):
    from interp.cli import main

    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--plotly shared" in out and "--format pdf" in out


def test_report_into_a_file_path_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = subprocess.run([sys.executable, "-m", "interp.cli", "report", "--model", "mlp-cancer",
                        "--out", str(blocker / "sub"), "--quiet"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "cannot write" in r.stderr


def _png(uri: str):
    import base64
    import io

    from PIL import Image

    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")


def test_a_relevance_thumbnail_keeps_sign_and_shape():
    """Red where the relevance is most positive, blue where most negative, white at 0, the
    picture's aspect kept; a feature row becomes a strip of cells in order."""
    from interp.figures._style import NEGATIVE, POSITIVE
    from reports import thumbnails

    def rgb(hex_colour):
        return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))

    r = torch.zeros(1, 8, 16)
    r[0, 0, 0], r[0, 7, 15] = 2.0, -2.0
    image = _png(thumbnails.relevance(r.numpy(), image=True))
    assert image.size == (thumbnails.SIZE, thumbnails.SIZE // 2)
    corner = (image.width - 1, image.height - 1)
    assert image.getpixel((0, 0)) == rgb(POSITIVE) and image.getpixel(corner) == rgb(NEGATIVE)
    assert image.getpixel((image.width // 2, image.height // 2)) == (255, 255, 255)
    strip = _png(thumbnails.relevance([1.0, 0.0, -0.5], image=False))
    cell = strip.width // 3
    assert strip.getpixel((0, 0)) == rgb(POSITIVE) and strip.getpixel((cell + 1, 0)) == (255, 255, 255)
    half = strip.getpixel((2 * cell + 1, 0))  # -0.5 of 1: half way from white to blue
    assert all(abs(h - (255 + n) / 2) <= 1 for h, n in zip(half, rgb(NEGATIVE)))


def test_a_map_thumbnail_colours_points_by_class():
    import plotly.colors

    from reports import thumbnails

    xy = [[0.0, 0.0], [1.0, 1.0]]
    image = _png(thumbnails.scatter(xy, [0, 1]))
    first, second = (plotly.colors.hex_to_rgb(c) for c in plotly.colors.qualitative.Plotly[:2])
    edge = thumbnails.POINT + 1
    assert image.getpixel((edge, thumbnails.SIZE - edge)) == first  # (0, 0): bottom left
    assert image.getpixel((thumbnails.SIZE - edge, edge)) == second  # (1, 1): top right
    assert image.getpixel((thumbnails.SIZE // 2, thumbnails.SIZE // 2)) == (255, 255, 255)


def test_the_index_shows_each_models_key_figures(report_dir):
    """Every model's row has a thumbnail of its LRP relevance and of its latent map, each
    linking to that section of its page; cnn-digits' relevance keeps the digit's square."""
    text = (report_dir / "index.html").read_text()
    for name in ("cnn-digits", "lstm-sentiment", "gan-digits"):
        for anchor in ("lrp", "latent"):
            link = rf'<a class="thumb" href="{name}.html#{anchor}" title="[^"]+">'
            assert re.search(link + '<img src="data:image/png;base64,', text)
    uri = re.search(r'<a class="thumb" href="cnn-digits.html#lrp" title="[^"]+"><img src="([^"]+)"', text).group(1)
    image = _png(uri)
    assert image.size == (96, 96) and len(image.getcolors(96 * 96)) > 2
