"""Static reports: one self-contained HTML file per model plus an index, written atomically."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

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
    assert names == ["cnn-digits.html", "gan-digits.html", "index.html", "lstm-sentiment.html"]
    idx = Resources()
    idx.feed((report_dir / "index.html").read_text())
    assert sorted(idx.links) == ["cnn-digits.html", "gan-digits.html", "lstm-sentiment.html"]


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "mlp-cancer.html"]


def test_report_into_a_file_path_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = subprocess.run([sys.executable, "-m", "interp.cli", "report", "--model", "mlp-cancer",
                        "--out", str(blocker / "sub"), "--quiet"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "cannot write" in r.stderr
