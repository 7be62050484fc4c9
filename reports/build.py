"""Static reports: one self-contained HTML page per subject, an index, and on request PDF.

    import reports, interp
    reports.build([interp.Subject(model, (x, y))], out="reports-out")

A page reads as a story: a table of contents that stays in view, a summary first (the
task, the data and metrics, then sentences with numbers drawn from the sections below:
where the relevance lies, the most sensitive layer, the most faithful explanation, the
conservation gap), then one section per analysis, each figure with a line on how to read
it, and last a reproducibility record (versions, the full hashes of the weights and the
data, seeds and options, the command and the commit). Nothing in a page depends on when
or how fast it was made: timings go to ``reports.json`` beside the pages, so two runs give
the same bytes.

The figures are the dashboard's: both come from :mod:`interp.study`, which draws with
:mod:`interp.figures`; a report reads only :class:`interp.Subject` objects, whoever made
them. Plotly.js is inlined in each page (it opens offline, alone) or, with
``plotly="shared"``, written once beside the pages for a folder of them; nothing refers
to the network. ``reports.json`` lists every report in the folder, so a later run for
one model keeps the others in the index. Every file is written atomically, the index
after each page: an interrupted run leaves complete pages and an index of them.

PDF goes through the system's Chromium (``--print-to-pdf``, with the page laid out at
the printed width and a print stylesheet): written here because the maintained
alternatives (kaleido, weasyprint) either need a browser too or do not run plotly.js.
Figures as PNG or SVG files (``formats=("png", "svg")``) are drawn by Kaleido, plotly's own
exporter, through the same Chromium (one browser for all of a page's figures, MathJax off,
the plotly.js of the installed plotly: no network).
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
from tqdm.auto import tqdm

import interp
from interp._io import atomic_path, write_text
from interp.errors import InputError, InterpError, UnknownNameError
from interp.hashing import tensor_bytes
from interp.study import activations, latent, lrp, overview, saliency, sensitivity
from interp.study import evaluation as trust
from interp.subject import Subject
from interp.subject import subjects as checked

from . import thumbnails

# no control that sends data off the machine (plotly.js offers none of them unless asked; said anyway)
FIGURE_CONFIG = {"displaylogo": False, "responsive": True, "showSendToCloud": False,
                 "modeBarButtonsToRemove": ["sendDataToCloud", "editInChartStudio"]}

SECTIONS = ("overview", "samples", "activations", "saliency", "lrp", "sensitivity", "evaluation", "latent")
TITLES = {"summary": "Summary", "card": "Model card", "overview": "Overview", "samples": "Samples",
          "activations": "Activations", "saliency": "Saliency", "lrp": "LRP", "sensitivity": "Sensitivity",
          "evaluation": "Evaluation", "latent": "Latent space", "record": "Reproducibility"}
PLOTLY_MODES = ("inline", "shared")
FORMATS = ("html", "pdf", "png", "svg")
IMAGE_FORMATS = ("png", "svg")
IMAGE_SIZE = (900, 450)  # px of a figure laid out by its container (a page's row), as an image
IMAGE_SCALE = 2          # PNG pixels per CSS pixel: sharp on a high-density screen and in print
PLOTLY_FILE = "plotly.min.js"
MANIFEST = "reports.json"
PRINT_WIDTH_PX = 703  # A4 less 12 mm margins, at 96 px per inch: the width a printed page lays out at
DEAD_SHARE = 0.99  # a unit zero on at least this share of the samples is dead (as the activations figures say)
TIMING_COLUMNS = ("ms", "ms (batch)")  # table columns that move to the timings (reports.json)
VERSIONS = ("torch", "captum", "plotly", "numpy", "scikit-learn", "umap-learn", "dash")

CSS = """
body { font-family: Inter, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #1d2530;
       background: #f6f8fb; }
header { background: #1d2b3a; color: white; padding: 14px 28px; }
header a { color: #bcd3ff; }
.layout { display: flex; align-items: flex-start; max-width: 1440px; margin: 0 auto; }
nav.toc { position: sticky; top: 0; flex: 0 0 180px; max-height: 100vh; overflow-y: auto;
          padding: 18px 8px 18px 18px; font-size: 13px; box-sizing: border-box; }
nav.toc b { display: block; margin: 0 6px 6px; color: #4a5665; font-size: 12px; text-transform: uppercase; }
nav.toc a { display: block; padding: 3px 6px; color: #1d2b3a; text-decoration: none; border-radius: 4px; }
nav.toc a:hover { background: #e3eaf4; }
main { flex: 1 1 auto; min-width: 0; max-width: 1180px; padding: 18px 28px 60px; }
section { background: white; border: 1px solid #e1e6ee; border-radius: 8px; padding: 14px 18px;
          margin: 16px 0; scroll-margin-top: 8px; }
h1 { font-size: 22px; margin: 0; } h2 { font-size: 17px; margin: 4px 0 10px; }
table.card { border-collapse: collapse; font-size: 13px; width: 100%; table-layout: fixed; }
table.card td { border-bottom: 1px solid #eef1f5; padding: 5px 8px; vertical-align: top;
                overflow-wrap: anywhere; }
table.card td:first-child { font-weight: 600; width: 150px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.grid > figure { flex: 1 1 380px; min-width: 0; }
figure { margin: 0 0 12px; min-width: 0; }
figure.wide { overflow-x: auto; }
figcaption.read { font-size: 12.5px; color: #4a5665; margin: 2px 4px 10px; }
.caption { font-size: 13px; color: #4a5665; margin: 6px 0; }
.muted { color: #6b7685; font-size: 12px; }
.summary ul { margin: 6px 0 0; padding-left: 20px; } .summary li { margin: 5px 0; line-height: 1.45; }
.warn { color: #b3261e; }
table.index { table-layout: auto; } table.index td { overflow-wrap: normal; }
table.index td:first-child { width: 200px; }
td.thumbs { white-space: nowrap; }
a.thumb { display: inline-block; margin: 0 8px 4px 0; text-align: center; vertical-align: top; color: #4a5665;
          font-size: 11px; text-decoration: none; }
a.thumb img { display: block; border: 1px solid #e1e6ee; image-rendering: pixelated; margin: 0 auto 2px; }
@media (max-width: 900px) {  /* a phone, or Chromium laying the page out at the printed width */
  nav.toc { display: none; } .layout { display: block; } main { padding: 10px 12px 40px; }
}
@page { size: A4; margin: 12mm; }
@media print {
  body { background: white; }
  nav.toc, header a, .modebar-container { display: none; }
  .layout { display: block; max-width: none; }
  main { max-width: none; padding: 0; }
  header { padding: 8px 0; background: white; color: #1d2530; }
  section { border: none; border-radius: 0; padding: 0; margin: 10px 0; }
  figure { break-inside: avoid; }
  figure.wide { overflow: visible; } figure.wide > div { zoom: var(--print-zoom); }
  h2 { break-after: avoid; }
  .grid { display: block; }
}
"""

# how to read each figure, by its key in its section
READ = {
    "metrics": "The test-set metrics, with the quality bar each must clear where one is set.",
    "architecture": "Each layer in order with its output shape and parameter count: what the other sections "
                    "name when they name a layer.",
    "confusion": "Rows are true classes, columns predictions; the diagonal holds the correct ones. Off-diagonal "
                 "cells show which classes the model mixes up.",
    "reconstructions": "Inputs above, the model's reconstructions below: what the model keeps and what it blurs.",
    "generated": "Samples drawn by the generator from fixed random codes, as a judge classifies them.",
    "sample": "The input as the model sees it.",
    "prediction": "What the model says about this input: its probabilities, or its output.",
    "activations-stats-table": "One row per layer output over the test set: its size, mean, spread and the share "
                               "of units that never fire (dead) or always do.",
    "activations-sample": "The chosen layer's response to one sample, unit by unit (feature maps for "
                          "convolutions).",
    "activations-unit-stats": "Each unit's mean activation over the test set with its spread; dead units in red.",
    "activations-top": "The test samples that excite the chosen unit most: what it responds to.",
    "activations-heatmap": "Units (columns) against test samples (rows, grouped by class): units that fire for "
                           "one class only are its detectors.",
    "saliency-grid": "Methods (rows) against samples (columns). Red pushes the target up, blue down; each map is "
                     "scaled to its own largest magnitude, so compare shapes, not colours, across maps.",
    "saliency-summary": "The numbers behind each map: target, score, the sum of the attribution and, for "
                        "methods that promise completeness, how far the sum misses the score.",
    "lrp-grid": "Relevance (first row) beside gradient-based maps for the same samples. Red is evidence for the "
                "target, blue against; each map scaled to its own largest magnitude.",
    "lrp-flow": "How the relevance of the first sample passes through the layers: each bar is what a layer "
                "hands on; a drop means the layer (its bias, the epsilon) absorbed relevance.",
    "lrp-plan": "Which rule each layer was given, and why: what the composite chose.",
    "lrp-layer-maps": "Where the relevance lies inside each layer: the same sample's relevance on the layers' "
                      "inputs, from the output side back to the input.",
    "lrp-summary": "Per sample: the score, the sum of relevance and the gap between them, with what the layers "
                   "absorbed and created. A conserving explanation has a gap near 0.",
    "sensitivity-noise": "The score as Gaussian noise of growing size is added to the input; a steep fall means "
                         "a fragile model.",
    "sensitivity-sweep": "Each line is one sample's score as the strongest feature is swept over its range (ICE); "
                         "parallel lines mean the feature acts alike for every sample.",
    "sensitivity-layer": "Left: how much each layer's output changes under input noise. Right: what the output "
                         "loses when the layer's output is replaced by its mean: the layers the model relies on.",
    "sensitivity-explanation": "How much each explanation changes under small input noise (sensitivity) and how "
                               "far it mispredicts the score's change (infidelity); lower is better for both.",
    "sensitivity-occlusion": "The score's drop when a window of the input is blanked: where blanking hurts, the "
                             "model looks.",
    "evaluation-leaderboard": "Each method's mean score per metric, best first (the menu sorts by any metric); "
                              "'random' is the floor a method must beat.",
    "evaluation-curves": "The target's probability or score as the most relevant units are removed, averaged over "
                         "the samples: a faithful method falls fastest. The dashed line removes in random order.",
    "evaluation-randomisation": "How much each explanation still looks like itself as the model's layers are "
                                "re-initialised from the top: a method that stays near 1 ignores the model.",
    "evaluation-randomisation-maps": "The first sample's explanation after each randomisation stage.",
    "evaluation-agreement": "Rank correlation between methods' explanations: methods that disagree cannot all be "
                            "right.",
    "latent-map": "Each point is a test sample placed by the chosen layer's representation (UMAP); nearby points "
                  "are represented alike. Well-separated colours mean the layer already tells the classes apart.",
    "latent-layers": "The same samples placed by PCA at several depths: how the classes separate layer by layer.",
    "latent-traversal": "Decoding while one latent unit moves away from a sample's code: what each unit controls.",
    "latent-kl": "The KL divergence per latent unit over the test set; units near 0 (grey) carry nothing.",
    "latent-interpolation": "The generator's output along a straight path between two codes, with the judge's "
                            "score of each step.",
    "latent-between": "Decoding along the path between two samples' codes.",
}


@dataclasses.dataclass
class Part:
    """One section of a page: its HTML, the facts the summary tells, the options the
    record lists and the timings moved out of its tables."""
    key: str
    html: str
    facts: dict = dataclasses.field(default_factory=dict)
    options: dict = dataclasses.field(default_factory=dict)
    timings: dict = dataclasses.field(default_factory=dict)
    figures: dict = dataclasses.field(default_factory=dict)  # the figures, by their id in the page
    thumbs: dict = dataclasses.field(default_factory=dict)   # {anchor: (title, PNG data URI)}: the index's


def _page(title: str, body: str, plotly: str | None, shared: bool = False) -> str:
    """A whole HTML page; ``plotly``: the plotly.js source to inline, or with ``shared`` the
    file name beside the page that holds it."""
    if plotly is None:
        script = ""
    elif shared:
        script = f"<script type=\"text/javascript\" src=\"{html.escape(plotly)}\"></script>"
    else:
        script = f"<script type=\"text/javascript\">{plotly}</script>"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style>{script}</head>"
            f"<body>{body}</body></html>\n")


def _untimed(fig: go.Figure, timings: dict, label: str) -> go.Figure:
    """``fig`` without the timing columns of its tables (moved to ``timings[label]``): a
    page must not change with the machine's speed."""
    for trace in fig.data:
        if trace.type != "table" or trace.header.values is None:
            continue
        headers = [re.sub(r"<[^>]+>", "", str(h)) for h in trace.header.values]
        drop = [j for j, h in enumerate(headers) if h in TIMING_COLUMNS]
        if not drop:
            continue
        cells = list(trace.cells.values)
        timings[label] = [str(v) for v in cells[drop[0]]]
        keep, width = [j for j in range(len(headers)) if j not in drop], len(headers)

        def kept(values, keep=keep, width=width):
            return [values[j] for j in keep] if isinstance(values, (list, tuple)) and len(values) == width else values

        trace.header.values = kept(list(trace.header.values))
        trace.cells.values = [cells[j] for j in keep]
        for obj, attr in ((trace, "columnwidth"), (trace.cells, "align"), (trace.header, "align")):
            value = getattr(obj, attr)
            if isinstance(value, (list, tuple)):
                setattr(obj, attr, kept(list(value)))
    return fig


ARRAY_PROPS = ("x", "y", "z", "customdata", "values", "open", "high", "low", "close")
SMALL_ARRAY = 64  # values: shorter arrays stay as they are written (JSON text)


def _compact(fig: go.Figure) -> go.Figure:
    """``fig`` with its long float arrays as 32-bit floats: plotly writes numpy arrays as
    base64 (``bdata``), 4 bytes a value instead of 8 (float64) or a decimal text (a list);
    what a reader can see (7 significant digits in a hover) does not change. Integers
    plotly already writes in the fewest bytes; arrays with gaps (None) or text stay."""
    for trace in fig.data:
        for prop in ARRAY_PROPS + ("marker.color", "marker.size"):
            if prop not in trace:  # asked for, a missing one costs plotly a search for similar names
                continue
            value = trace[prop]
            if value is None or isinstance(value, str) or np.size(value) < SMALL_ARRAY:
                continue
            try:
                array = np.asarray(value)
            except ValueError:  # ragged
                continue
            if array.dtype == np.float64:
                trace[prop] = None  # plotly ignores a new value equal to the old one
                trace[prop] = array.astype(np.float32)
    return fig


def _figure(fig: go.Figure, div_id: str, read: str | None = None) -> str:
    """A figure and, below it, how to read it."""
    body = _compact(fig).to_html(full_html=False, include_plotlyjs=False, include_mathjax=False,
                       div_id=div_id, config=FIGURE_CONFIG)
    caption = f"<figcaption class=\"read\">{html.escape(read)}</figcaption>" if read else ""
    width = fig.layout.width
    if width and width > PRINT_WIDTH_PX:  # printed smaller, as a whole; a screen scrolls it instead
        return (f"<figure class=\"wide\" style=\"--print-zoom: {PRINT_WIDTH_PX / width:.4f}\">"
                f"{body}{caption}</figure>")
    return f"<figure>{body}{caption}</figure>"


def _figures(entry: Subject, figs: dict, part: Part, prefix: str = "", grid: bool = False) -> str:
    out = []
    for key, fig in figs.items():
        name = f"{prefix}{key}"
        fig = _untimed(fig, part.timings, name)
        read = READ.get(name) or READ.get(re.sub(r"-\d+$", "", name)) or READ.get(re.sub(r"-\d+$", "", key))
        div_id = f"{_file_name(entry)}-{name}"
        part.figures[div_id] = fig
        out.append(_figure(fig, div_id, read))
    body = "".join(out)
    return f"<div class=\"grid\">{body}</div>" if grid else body


def _section(key: str, note: str, body: str) -> str:
    return (f"<section id=\"{key}\"><h2>{TITLES[key]}</h2>"
            + (f"<p class=\"muted\">{note}</p>" if note else "") + f"{body}</section>")


def _card_table(rows: Iterable[tuple[str, str]], cls: str = "card") -> str:
    cells = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table class=\"{cls}\">{cells}</table>"


# ---------------------------------------------------------------------------- the sections

def _overview_section(entry) -> Part:
    part = Part("overview", "")
    part.html = _section("overview", "", _figures(entry, overview.overview_figures(entry), part, grid=True))
    return part


def _samples_section(entry) -> Part:
    part = Part("samples", "")
    body = []
    for index in overview.showcase_samples(entry):
        body.append(f"<p class=\"caption\">{html.escape(overview.sample_caption(entry, index))}</p>")
        body.append(_figures(entry, overview.sample_figures(entry, index), part, prefix=f"sample{index}-",
                             grid=True))
    part.options["showcased samples"] = ", ".join(str(i) for i in overview.showcase_samples(entry))
    part.html = _section("samples", _showcase_note(entry), "".join(body))
    return part


def _activations_section(entry) -> Part:
    """Layer statistics of every output over the test set, and the key figures of the
    default output: one sample's maps, unit statistics, the most active unit's top samples."""
    output = activations.default_output(entry)
    unit = activations.most_active_unit(entry, output)
    sample = overview.showcase_samples(entry)[0]
    figs = {
        "activations-stats-table": activations.stats_table_figure(entry),
        "activations-sample": activations.sample_figure(entry, output, sample, unit),
        "activations-unit-stats": activations.stats_figure(entry, output, unit),
        "activations-top": activations.top_figure(entry, output, unit),
        "activations-heatmap": activations.heatmap_figure(entry, output),
    }
    part = Part("activations", "", options={"activations layer": output, "activations unit": str(unit)})
    s = activations.stats(entry, output)
    dead = int((np.asarray(s.frac_zero) >= DEAD_SHARE).sum()) if hasattr(s, "frac_zero") else 0
    part.facts["dead"] = (output, dead, s.units)
    note = (f"Every leaf module recorded over the {len(entry.inputs)} samples. Figures show "
            f"<b>{html.escape(output)}</b>; unit {unit} is its most active unit.")
    part.html = _section("activations", note, _figures(entry, figs, part))
    return part


def _saliency_section(entry) -> Part:
    """The methods × samples grid for the showcased test samples (for the GAN, each real
    sample beside a generated one), with the numbers beside it."""
    indices = overview.showcase_samples(entry)
    if entry.task == "generation":
        indices = indices[:3]
    grid, summary, attrs = saliency.comparison(entry, indices)
    obj = saliency.objective(entry, None)
    gaps = [float(a.delta.abs().max()) for a in attrs if a.delta is not None]
    note = (f"Explaining the {html.escape(obj.label)}"
            + (" of the predicted class" if obj.key == "class" else "")
            + f" with {', '.join(html.escape(a.label) for a in attrs)}. "
            + ("Real samples, each beside a generated one. " if entry.task == "generation" else
               "Samples as above. ")
            + (f"Largest completeness gap |Σ attribution − (f(x) − f(baseline))|: {max(gaps):.3g}." if gaps else ""))
    part = Part("saliency", "", options={"saliency methods": ", ".join(a.label for a in attrs),
                                         "saliency objective": obj.label})
    part.html = _section("saliency", note, _figures(entry, {"saliency-grid": grid, "saliency-summary": summary},
                                                    part))
    return part


def _relevant(entry: Subject, relevance: torch.Tensor, index: int) -> str:
    """Where the relevance of one sample lies, in words with numbers."""
    r = relevance.detach().float()
    if entry.modality == "tabular" and entry.features:
        v = r.reshape(-1)
        top = v.abs().argsort(descending=True)[:3].tolist()
        return ("the features " + ", ".join(f"{entry.features[i]} ({float(v[i]):+.3g})" for i in top)
                + f" carry most of sample {index}'s relevance")
    if entry.modality == "tokens" and entry.vocab is not None:
        words = entry.token_texts(entry.inputs[index])
        v = _per_position(entry, r, index)
        top = v.abs().argsort(descending=True)[:3].tolist()
        return ("the words " + ", ".join(f"“{words[i]}” ({float(v[i]):+.3g})" for i in top if i < len(words))
                + f" carry most of sample {index}'s relevance")
    v = r.abs().reshape(r.shape[0], -1).sum(0) if r.ndim == 3 else r.abs().reshape(-1)
    total = float(v.sum())
    if total <= 0:
        return f"sample {index} receives no relevance"
    k = max(1, len(v) // 10)
    share = float(v.sort(descending=True).values[:k].sum()) / total
    return f"the 10% most relevant input positions hold {share:.0%} of sample {index}'s relevance magnitude"


def _lrp_section(entry) -> Part:
    """Relevance beside saliency for the saliency section's samples, how the relevance of
    the first one flows layer by layer (and, for convolutions, where it lies in each
    layer), the rule plan and the numbers."""
    indices = overview.showcase_samples(entry)
    if entry.task == "generation":
        indices = indices[:3]
    c = lrp.comparison(entry, indices)
    obj = lrp.objective(entry, None)
    gaps = (c.result.total - c.result.score).abs()
    warning = lrp.gap_note(c.result)
    note = (f"Layer-wise relevance propagation with the composite <b>{html.escape(c.result.composite)}</b> "
            f"({html.escape(lrp.composites()[c.result.composite])}), explaining the {html.escape(obj.label)}"
            + (" of the predicted class" if obj.key == "class" else "")
            + f", beside {', '.join(html.escape(a.label) for a in c.attributions[1:])} for the same samples. "
            f"Largest gap |Σ relevance − score|: {float(gaps.max()):.3g}; biases and epsilon absorb relevance, "
            "the flow figure shows where."
            + (f" <b class=\"warn\">{html.escape(warning)} (sample {indices[0]}).</b>" if warning else "")
            + (" The reconstruction error is not explained with LRP: it squares its terms, which no LRP rule "
               "covers." if entry.task == "reconstruction" else ""))
    figs = {"lrp-grid": c.grid, "lrp-flow": c.flow, "lrp-plan": c.plan}
    if c.has_layer_maps:
        figs["lrp-layer-maps"] = c.layer_maps
    figs["lrp-summary"] = c.summary
    score, total = float(c.result.score[0]), float(c.result.total[0])
    part = Part("lrp", "", options={"LRP composite": c.result.composite, "LRP objective": obj.label})
    part.facts.update(composite=c.result.composite, relevant=_relevant(entry, c.result.relevance[0], indices[0]),
                      gap=(score, total, warning, indices[0]))
    part.html = _section("lrp", note, _figures(entry, figs, part))
    part.thumbs["lrp"] = (f"LRP relevance of sample {indices[0]}",
                          thumbnails.relevance(_per_position(entry, c.result.relevance[0], indices[0]),
                                               image=entry.modality == "image"))
    return part


def _per_position(entry: Subject, relevance: torch.Tensor, index: int):
    """One sample's relevance per input position: per token for a token model (summed over
    the embedding), else as the input is shaped."""
    r = relevance.detach().float()
    if entry.modality == "tokens":
        n = int(entry.inputs[index].numel())
        return r.reshape(n, -1).sum(1) if n and r.numel() % n == 0 else r.reshape(-1)
    return r


def _sensitivity_section(entry) -> Part:
    """How the default objective responds to input noise over the test set, the occlusion
    maps of the showcased samples (tabular: the ICE curves of the strongest feature), the
    layer profile and the robustness of the explanations; the same figures as the
    dashboard's Sensitivity view, from the same on-disk cache."""
    indices = overview.showcase_samples(entry)[:3]
    figs = sensitivity.report_figures(entry, indices)
    base = sensitivity.settings(entry)
    obj = sensitivity.objective_of(entry, base)
    n = len(entry.inputs)
    note = (f"Explaining the {html.escape(obj)}. Noise is Gaussian, scaled to the test set's spread "
            f"({sensitivity.data_std(entry, base.objective):.3g}"
            + (" in the embedding space" if entry.modality == "tokens" else "")
            + f"), over the {n} test samples. "
            + ("Occlusion maps: the first showcased samples. " if entry.modality != "tabular" else
               "ICE curves: the feature whose sweep moves the score most; the first showcased sample in colour. ")
            + f"Layer profile: noise {base.noise:g} × std. Explanation robustness: Captum's sensitivity_max and "
            f"infidelity on the first {min(n, sensitivity.EXPLANATION_SAMPLES)} test samples"
            + ("; token models are perturbed, and explained, in their embedding space, where LRP does not start, "
               "so LRP is not rated" if entry.modality == "tokens" else "") + ".")
    part = Part("sensitivity", "", options={f"sensitivity {k}": str(v) for k, v in dataclasses.asdict(base).items()
                                            if v is not None})
    layer = sensitivity.dataset_result(entry, dataclasses.replace(base, kind="layer"))
    if getattr(layer, "layers", None):
        loss = [abs(float(a) - float(layer.baseline)) for a in layer.ablation]
        ablated = [i for i, v in enumerate(loss) if math.isfinite(v)]  # NaN: a layer not ablated on its own
        if ablated:
            worst = max(ablated, key=loss.__getitem__)
            part.facts["layer"] = (layer.layers[worst], float(layer.baseline), float(layer.ablation[worst]),
                                   layer.measured_against, layer.ablated_by)
        part.options["sensitivity layer seed"] = str(layer.seed)
    maps = {f"sensitivity-{k}": v for k, v in figs.items() if k.startswith("occlusion-")}
    rows = {f"sensitivity-{k}": v for k, v in figs.items() if not k.startswith("occlusion-")}
    first = dict(list(rows.items())[:1])
    rest = dict(list(rows.items())[1:])
    body = _figures(entry, first, part) + (_figures(entry, maps, part, grid=True) if maps else "") \
        + _figures(entry, rest, part)
    part.html = _section("sensitivity", note, body)
    return part


def _evaluation_section(entry) -> Part:
    """How far to trust each explanation: the leaderboard (sortable), the mean deletion
    curves with the random order, the randomisation check with example maps, the agreement
    between methods; the same figures as the dashboard's Evaluation view, from the same
    on-disk cache."""
    result = trust.result(entry)
    figs = trust.dataset_figures(entry, result)
    n = len(result.per_sample[(result.methods[0], result.metrics[0])])
    baseline = dict(trust.baselines(entry))[trust.check_baseline(entry, None)]
    truth = (" Ground truth: relevance mass accuracy, rank accuracy and the pointing game against the true "
             "regions." if entry.truth is not None else "")
    note = (f"Every method that applies, explaining the {html.escape(trust.objective(entry).label)}, scored on "
            f"the first {n} test samples. Deletion and insertion: the target's "
            f"{'probability' if entry.is_classifier else 'score'} as the most relevant units are removed "
            f"(replaced by the baseline: {html.escape(baseline)}) or added, in {trust.STEPS} steps, with random "
            f"orders as the reference; AOPC is the mean drop.{truth} Randomisation on the first "
            f"{min(n, trust.RANDOMISED_SAMPLES)} samples.")
    part = Part("evaluation", "", options={"evaluation seed": str(trust.SEED), "evaluation steps": str(trust.STEPS),
                                           "evaluation samples": str(n), "evaluation baseline": baseline})
    board = [(m, v) for m, v in result.leaderboard("deletion") if m != "random"]
    random = dict(result.leaderboard("deletion")).get("random")
    part.facts["faithful"] = (board[0], random, len(board)) if board else None
    if "mass_accuracy" in result.metrics:
        part.facts["mass"] = next(((m, v) for m, v in result.leaderboard("mass_accuracy") if m != "random"), None)
    part.facts["boards"] = {metric: [[m, v] for m, v in result.leaderboard(metric)]
                            for metric in ("deletion", "mass_accuracy") if metric in result.metrics}
    part.html = _section("evaluation", note, _figures(entry, figs, part, prefix="evaluation-"))
    return part


def _latent_section(entry) -> Part:
    """The map of the deepest hidden layer (UMAP) coloured by label, and PCA maps layer by
    layer: how the classes separate with depth."""
    layer = latent.default_layer(entry)
    result = latent.projection(entry, layer, "umap")
    figs = {"latent-map": latent.map_figure(entry, result),
            "latent-layers": latent.layer_by_layer(entry, "pca")}
    sample = overview.showcase_samples(entry)[0]
    figs.update({f"latent-{key}": fig for key, fig in latent.generative_figures(entry, sample).items()})
    q = result.quality
    note = (f"UMAP of <b>{html.escape(layer)}</b> (the deepest hidden layer) over the {len(result.coordinates)} "
            f"test samples: trustworthiness {q.trustworthiness:.3f}"
            + (f"; {q.agreement_map:.0%} of each sample's {q.k} nearest neighbours share its label in the map, "
               f"{q.agreement_original:.0%} in the layer itself" if q.agreement_map is not None else "")
            + ". Below, PCA of several layers from the input side to that one"
            + _generative_note(entry, sample)
            + ".")
    part = Part("latent", "", options={"latent layer": layer, "latent map": "UMAP, 2-D, seeded"})
    part.facts["latent"] = (layer, q.trustworthiness, q.agreement_map, q.k)
    part.html = _section("latent", note, _figures(entry, figs, part))
    values, names = latent.colour_values(entry, next(iter(latent.colourings(entry))), layer, 0)
    labels = None if values is None else np.asarray(values)
    if labels is not None and names is not None:
        labels = labels.astype(int)
    part.thumbs["latent"] = (f"UMAP of {layer}", thumbnails.scatter(result.coordinates, labels))
    return part


def _showcase_note(subject: Subject) -> str:
    if overview.class_labels(subject) is None:
        return "Chosen deterministically: the first samples."
    if subject.is_classifier:
        return ("Chosen deterministically: the first correctly handled samples of distinct classes, then the first "
                "misclassified ones.")
    return "Chosen deterministically: the first samples of distinct labels."


def _generative_note(subject: Subject, sample: int) -> str:
    if {"encoder", "decoder"} <= set(subject.parts):
        if subject.latent_is_distribution:
            return (f"; then a traversal decoding around sample {sample}'s code along its two most informative "
                    "units, and the KL divergence per unit (grey: collapsed units)")
        return f"; then a traversal decoding around sample {sample}'s code along two latent units"
    if subject.task == "generation":
        return "; then the generator between two latent vectors, scored by the discriminator"
    return ""


_SECTIONS: dict[str, Callable[[Subject], Part]] = {
    "overview": _overview_section, "samples": _samples_section, "activations": _activations_section,
    "saliency": _saliency_section, "lrp": _lrp_section, "sensitivity": _sensitivity_section,
    "evaluation": _evaluation_section, "latent": _latent_section}


# ---------------------------------------------------------------------------- summary and record

def _summary(entry: Subject, parts: dict[str, Part]) -> str:
    """The task, data and metrics, then a sentence per finding, with its numbers."""
    facts = {k: v for p in parts.values() for k, v in p.facts.items()}
    what = (f"A {html.escape(entry.task)} model on {html.escape(entry.modality)} inputs shaped "
            f"{tuple(entry.inputs.shape[1:])}, inspected on {len(entry.inputs)} test samples"
            + (f"; {html.escape(overview.headline(entry))}" if overview.headline(entry) else "") + ".")
    items = []
    if "relevant" in facts:
        items.append(f"<b>Where the relevance lies</b> (LRP, {html.escape(facts['composite'])}): "
                     f"{html.escape(facts['relevant'])}.")
    if facts.get("gap"):
        score, total, warning, index = facts["gap"]
        if warning:
            items.append(f"<b class=\"warn\">Conservation</b>: {html.escape(warning.lstrip('⚠ '))} "
                         f"(sample {index}).")
        else:
            share = abs(total - score) / abs(score) if score else 0.0
            items.append(f"<b>Conservation</b>: the relevance of sample {index} sums to {total:.4g} for a score of "
                         f"{score:.4g} ({share:.1%} apart): the map accounts for the whole score.")
    if facts.get("layer"):
        name, base, ablated, against, by = facts["layer"]
        what = (f"changes the score by {ablated:.1%} (relative, over the test set)" if against == "score" else
                f"moves the agreement with the {html.escape(str(against))} from {base:.3g} to {ablated:.3g}")
        items.append(f"<b>Most sensitive layer</b>: replacing <b>{html.escape(str(name))}</b>'s output by its "
                     f"{html.escape(str(by))} {what}, more than any other layer.")
    if facts.get("faithful"):
        (method, value), random, count = facts["faithful"]
        items.append(f"<b>Most faithful explanation</b> (deletion, lower is better): "
                     f"<b>{html.escape(method)}</b> at {value:.3f} among {count} methods"
                     + (f", against {random:.3f} for a random order" if random is not None else "") + ".")
    if facts.get("mass"):
        method, value = facts["mass"]
        items.append(f"<b>On the true regions</b>: {html.escape(method)} puts {value:.0%} of its relevance on them, "
                     "the most of any method.")
    if facts.get("latent"):
        layer, trust_, agree, k = facts["latent"]
        items.append(f"<b>Representation</b>: in the map of {html.escape(layer)} (trustworthiness {trust_:.3f})"
                     + (f", {agree:.0%} of each sample's {k} nearest neighbours share its label" if agree is not None
                        else "") + ".")
    if facts.get("dead"):
        output, dead, units = facts["dead"]
        if dead:
            items.append(f"<b>Dead units</b>: {dead} of {units} units of {html.escape(output)} are zero on at least "
                         f"{DEAD_SHARE:.0%} of the test set (drawn red in Activations).")
    body = f"<p>{what}</p>" + (f"<ul>{''.join(f'<li>{i}</li>' for i in items)}</ul>" if items else "")
    return f"<section id=\"summary\" class=\"summary\"><h2>{TITLES['summary']}</h2>{body}</section>"


def _sha256_of(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    h = hashlib.sha256()
    for name, t in tensors:
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(tensor_bytes(t))
    return h.hexdigest()


def weights_sha256(subject: Subject) -> str:
    """The sha256 of every weight and buffer of the model and of its parts, by name."""
    items = [(f"model.{k}", v) for k, v in subject.model.state_dict().items()]
    for part, module in sorted(subject.parts.items()):
        items += [(f"{part}.{k}", v) for k, v in module.state_dict().items()]
    return _sha256_of(items)


def data_sha256(subject: Subject) -> str:
    """The sha256 of the inspected inputs and their labels."""
    return _sha256_of((name, t) for name, t in (("inputs", subject.inputs), ("labels", subject.labels))
                      if t is not None)


def versions() -> list[tuple[str, str]]:
    from importlib import metadata

    out = [("interp", interp.__version__), ("Python", platform.python_version())]
    for dist in VERSIONS:
        try:
            out.append((dist, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            out.append((dist, "not installed"))
    return out


def git_commit() -> str:
    """The commit of the interp checkout these reports were made with, if it is one."""
    root = Path(interp.__file__).resolve().parent.parent
    if not (root / ".git").exists() or shutil.which("git") is None:
        return "none (not a git checkout)"
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown (git did not answer)"
    if head.returncode:
        return "unknown (git did not answer)"
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def _record(entry: Subject, parts: dict[str, Part], command: str) -> str:
    rows = [*versions(), ("weights sha256", weights_sha256(entry)), ("data sha256", data_sha256(entry))]
    options = {k: v for p in parts.values() for k, v in p.options.items()}
    rows += sorted(options.items())
    rows += [("sections", ", ".join(parts)), ("command", command), ("commit", git_commit()),
             ("timings", f"in {MANIFEST} beside this page (so that two runs of this page compare byte for byte)")]
    return (f"<section id=\"record\"><h2>{TITLES['record']}</h2><p class=\"muted\">What this page was made with: "
            f"the same versions, weights, data and options give the same page.</p>{_card_table(rows)}</section>")


def _toc(keys: Iterable[str]) -> str:
    links = "".join(f"<a href=\"#{k}\">{TITLES[k]}</a>" for k in keys)
    return f"<nav class=\"toc\" aria-label=\"contents\"><b>Contents</b>{links}</nav>"


def _file_name(subject: Subject) -> str:
    """A file name for the subject's page: its name, with anything but letters, digits,
    dots, dashes and underscores replaced."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", subject.name).strip("._") or "subject"
    return name + "_" if name.lower() in ("index", "reports", PLOTLY_FILE.split(".")[0]) else name


def check_sections(sections) -> tuple[str, ...]:
    """``sections`` (names, or None for all) in the page's order; unknown names refused."""
    if sections is None:
        return SECTIONS
    chosen = [sections] if isinstance(sections, str) else list(sections)
    if not chosen:
        raise InputError(f"no section chosen; give one or more of {', '.join(SECTIONS)} (or leave --sections out)")
    for name in chosen:
        if name not in SECTIONS:
            raise UnknownNameError("section", name, SECTIONS)
    return tuple(s for s in SECTIONS if s in chosen)


def _report(subject: Subject, sections: tuple[str, ...], progress=None) -> tuple[dict[str, Part], dict]:
    parts, seconds = {}, {}
    for key in sections:
        if progress is not None:
            progress(key)
        start = time.perf_counter()
        parts[key] = _SECTIONS[key](subject)
        seconds[key] = round(time.perf_counter() - start, 3)
    return parts, seconds


def model_page(subject: Subject, plotly: str | None, progress=None, *, sections=None, shared: bool = False,
               command: str = "reports.build (Python)") -> str:
    """The HTML of one subject's report; ``progress(section)`` is called as each section starts."""
    return _model_page(subject, plotly, _report(subject, check_sections(sections), progress)[0], shared, command)


def _model_page(subject: Subject, plotly: str | None, parts: dict[str, Part], shared: bool, command: str) -> str:
    name = subject.name
    keys = ["summary", "card", *parts, "record"]
    body = [f"<header><h1>{html.escape(name)}</h1><div class=\"muted\" style=\"color:#cfd8e3\">"
            f"{html.escape(subject.task)} · {html.escape(subject.modality)} · "
            f"<a href=\"index.html\">all reports</a></div></header><div class=\"layout\">{_toc(keys)}<main>",
            _summary(subject, parts),
            f"<section id=\"card\"><h2>{TITLES['card']}</h2>{_card_table(overview.card_rows(subject))}</section>",
            *(p.html for p in parts.values()),
            _record(subject, parts, command),
            f"<p class=\"muted\">interp {interp.__version__}</p></main></div>"]
    return _page(f"interp report: {name}", "".join(body), plotly, shared)


def view_page(title: str, lines: Iterable[str], figures: Iterable, plotly_js: str | None = None) -> str:
    """One page of ``figures`` (plotly figures, or their dicts as a browser holds them) under
    ``title`` and ``lines`` of text (captions, the link back): a dashboard view exported,
    self-contained (plotly.js inline: opens offline) and drawn by the same figure code as a report."""
    from plotly.offline import get_plotlyjs

    body = [f"<header><h1>{html.escape(title)}</h1></header><main><section>"]
    body += [f"<p class=\"caption\">{html.escape(line)}</p>" for line in lines if line]
    body.append("<div class=\"grid\">")
    for k, fig in enumerate(figures):
        figure = fig if isinstance(fig, go.Figure) else go.Figure(fig, skip_invalid=True)
        body.append(_figure(figure, f"figure-{k}"))
    body.append(f"</div></section><p class=\"muted\">interp {interp.__version__}</p></main>")
    return _page(title, "".join(body), plotly_js or get_plotlyjs())


# ---------------------------------------------------------------------------- the index

def _entry(subject: Subject, file: str, parts: dict[str, Part], seconds: dict) -> dict:
    facts = {k: v for p in parts.values() for k, v in p.facts.items()}
    return {"name": subject.name, "file": f"{file}.html", "task": subject.task, "modality": subject.modality,
            "headline": overview.headline(subject), "description": subject.description,
            "sections": list(parts), "faithful": facts["faithful"][0][0] if facts.get("faithful") else "",
            "boards": facts.get("boards", {}),
            "thumbs": [[anchor, title, uri] for p in parts.values() for anchor, (title, uri) in p.thumbs.items()],
            "timings": {"seconds": seconds, "tables": {k: p.timings for k, p in parts.items() if p.timings}}}


def index_page(entries: list[dict], plotly: str | None = None, shared: bool = False) -> str:
    """The reports in a folder compared: metric, what was inspected, the most faithful
    method, links to each page's sections; with ``plotly``, the leaderboard across them."""
    rows = []
    for e in entries:
        page = html.escape(e["file"])
        links = " · ".join(f"<a href=\"{page}#{k}\">{TITLES[k]}</a>" for k in ["summary", *e["sections"]])
        rows.append(f"<tr><td><a href=\"{page}\"><b>{html.escape(e['name'])}</b></a><br>"
                    f"<span class=\"muted\">{html.escape(e['description'])}</span></td>"
                    f"<td>{html.escape(e['task'])}</td><td>{html.escape(e['modality'])}</td>"
                    f"<td>{html.escape(e['headline'])}</td><td>{html.escape(e['faithful'])}</td>"
                    f"<td class=\"thumbs\">{_thumbs(page, e.get('thumbs', []))}</td><td>{links}</td></tr>")
    table = ("<table class=\"card index\"><tr><td>model</td><td>task</td><td>input</td><td>headline metric</td>"
             f"<td>most faithful (deletion)</td><td>key figures</td><td>sections</td></tr>{''.join(rows)}</table>")
    boards = _leaderboards(entries) if plotly else ""
    body = (f"<header><h1>interp reports</h1></header><div class=\"layout\">"
            f"{_toc(['models'] + (['leaderboards'] if boards else []))}<main>"
            f"<section id=\"models\"><h2>Models</h2>{table}</section>{boards}</main></div>")
    return _page("interp reports", body, plotly, shared)


def _thumbs(page: str, thumbs: list) -> str:
    """The key figures' thumbnails, each a link to its section of the page."""
    return "".join(f"<a class=\"thumb\" href=\"{page}#{html.escape(anchor)}\" title=\"{html.escape(title)}\">"
                   f"<img src=\"{html.escape(uri)}\" alt=\"{html.escape(title)}\">"
                   f"{html.escape(TITLES.get(anchor, anchor))}</a>"
                   for anchor, title, uri in thumbs if str(uri).startswith("data:image/png;base64,"))


TITLES.update(models="Models", leaderboards="Across models")


def _leaderboards(entries: list[dict]) -> str:
    """Which explanation to trust, across the models (from their reports' evaluations)."""
    boards = {e["name"]: {m: [tuple(r) for r in rows] for m, rows in e.get("boards", {}).items()} for e in entries}
    boards = {k: v for k, v in boards.items() if v}
    if not boards:
        return ""
    figs = [trust.zoo_figure(boards, "deletion")]
    if any("mass_accuracy" in b for b in boards.values()):
        figs.append(trust.zoo_figure(boards, "mass_accuracy"))
    body = "".join(_figure(fig, f"index-leaderboard-{i}") for i, fig in enumerate(figs))
    return ("<section id=\"leaderboards\"><h2>Which explanation to trust, across models</h2><p class=\"muted\">Each "
            "method's place within each model (green: best of that model), the value in the cell: deletion area "
            "(lower is more faithful) and, where the data has true regions, the share of relevance on them. Each "
            f"model's page has its full leaderboard.</p>{body}</section>")


# ---------------------------------------------------------------------------- folders, PDF, build

def check_out(out) -> Path:
    """The output folder, made and checked writable before any work: a file in its place,
    an empty name or a folder that cannot be written is refused in words."""
    if out is None or not str(out).strip():
        raise InputError("--out is empty: give the folder to write the reports into (e.g. --out reports-out)")
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"cannot write reports into {folder}: it is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".interp-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write reports into {folder}: {exc.strerror or exc}") from None
    return folder


def read_manifest(folder: Path) -> dict[str, dict]:
    """The reports already in ``folder`` (``reports.json``), by file name; empty if none or unreadable."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text())
        entries = data["entries"]
        if not isinstance(entries, dict):
            return {}
        return {k: v for k, v in entries.items() if _whole_entry(v) and (folder / k).is_file()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


ENTRY_KEYS = {"name": str, "file": str, "task": str, "modality": str, "headline": str, "description": str,
              "sections": list, "faithful": str}


def _whole_entry(entry) -> bool:
    """Whether ``entry`` (from a reports.json, perhaps of another version or edited) has what
    the index shows, of the right kinds: an entry that has not is left out of the index."""
    return (isinstance(entry, dict) and all(isinstance(entry.get(k), t) for k, t in ENTRY_KEYS.items())
            and all(k in TITLES for k in entry["sections"]))


def chromium() -> str | None:
    """The system's Chromium (or Chrome): $INTERP_CHROMIUM, else the first on the PATH."""
    for name in (os.environ.get("INTERP_CHROMIUM"), "chromium", "chromium-browser", "google-chrome",
                 "google-chrome-stable"):
        if name and (found := shutil.which(name)):
            return found
    return None


def check_formats(formats) -> tuple[str, ...]:
    chosen = [formats] if isinstance(formats, str) else list(formats or ("html",))
    for f in chosen:
        if f not in FORMATS:
            raise UnknownNameError("format", f, FORMATS)
    for f in dict.fromkeys(chosen):
        if f != "html" and chromium() is None:
            what = "prints through" if f == "pdf" else "draws figures through"
            raise InterpError(f"--format {f} {what} Chromium, and none was found (install Debian's chromium, or "
                              f"set INTERP_CHROMIUM); the HTML reports need no browser: drop --format {f}")
        if f in IMAGE_FORMATS and importlib.util.find_spec("kaleido") is None:
            raise InterpError(f"--format {f} draws each figure with Kaleido, which is not installed: "
                              f"pip install 'interp[images]' (or drop --format {f})")
    return tuple(dict.fromkeys(["html", *chosen]))


def figure_images(figures: dict[str, go.Figure], folder: str | Path, formats=IMAGE_FORMATS,
                  progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Each of ``figures`` (``{name: figure}``) as ``folder/NAME.png`` and/or ``.svg``, drawn
    by Kaleido through the system's Chromium, at the figure's own size (or ``IMAGE_SIZE``
    where its container sets it); each file written atomically. Returns the paths."""
    import asyncio
    import threading

    formats = [f for f in check_formats(formats) if f in IMAGE_FORMATS]
    jobs = [(name, fig, f) for name, fig in figures.items() for f in formats]
    drawn: dict = {}

    async def draw():
        import kaleido

        async with kaleido.Kaleido(n=1, mathjax=False, path=chromium(), timeout=120) as k:
            for i, (name, fig, f) in enumerate(jobs):
                size = {"width": fig.layout.width or IMAGE_SIZE[0], "height": fig.layout.height or IMAGE_SIZE[1]}
                drawn[name, f] = await k.calc_fig(fig, opts={"format": f, "scale": IMAGE_SCALE if f == "png" else 1,
                                                             **size})
                if progress:
                    progress(i + 1, len(jobs))

    failed: list[BaseException] = []

    def run():  # a thread of its own: its own event loop, also where one runs already (a notebook)
        try:
            asyncio.run(draw())
        except BaseException as exc:  # noqa: BLE001 - told below, in the caller's thread
            failed.append(exc)

    if jobs:
        worker = threading.Thread(target=run, name="interp-kaleido", daemon=True)  # Ctrl-C does not wait for it
        worker.start()
        while worker.is_alive():  # joined in steps: Ctrl-C reaches this thread between them
            worker.join(0.2)
    if failed:
        raise InterpError(f"Kaleido could not draw the figures through {chromium()}: "
                          f"{str(failed[0]).splitlines()[0] if str(failed[0]) else type(failed[0]).__name__}")
    paths = []
    for (name, f), data in drawn.items():
        with atomic_path(Path(folder) / f"{name}.{f}") as tmp:
            tmp.write_bytes(data)
        paths.append(Path(folder) / f"{name}.{f}")
    return paths


def to_pdf(page: Path, pdf: Path | None = None) -> Path:
    """``page`` printed to PDF (A4) by the system's Chromium, laid out at the printed width."""
    exe = chromium()
    if exe is None:
        raise InterpError("no Chromium found to print PDF (install chromium, or set INTERP_CHROMIUM)")
    pdf = pdf or page.with_suffix(".pdf")
    with tempfile.TemporaryDirectory(prefix="interp-chromium-") as profile:
        tmp = Path(profile) / "out.pdf"
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
               "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}/user",
               f"--window-size={PRINT_WIDTH_PX},1000", "--virtual-time-budget=30000", "--no-pdf-header-footer",
               f"--print-to-pdf={tmp}", page.resolve().as_uri()]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            raise InterpError(f"Chromium could not print {page.name}: {exc}") from None
        if not tmp.is_file() or tmp.stat().st_size == 0:
            last = (run.stderr.strip().splitlines() or ["no output"])[-1]
            raise InterpError(f"Chromium did not print {page.name} (exit {run.returncode}: {last})")
        staged = pdf.with_name(f".{pdf.name}.{os.getpid()}.tmp")
        shutil.copyfile(tmp, staged)
        os.replace(staged, pdf)
    return pdf


def _write_index(folder: Path, entries: dict[str, dict], plotly: str, shared: bool) -> list[Path]:
    ordered = [entries[k] for k in sorted(entries, key=lambda k: entries[k]["name"].lower())]
    manifest = {"about": "the reports in this folder (interp reports); timings are here, not in the pages",
                "entries": {e["file"]: e for e in ordered}}
    return [write_text(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n"),
            write_text(folder / "index.html", index_page(ordered, plotly, shared))]


def build(subjects, out: str | Path, progress: bool = True, *, sections=None, plotly: str = "inline",
          formats=("html",), command: str = "reports.build (Python)") -> list[Path]:
    """Write one page per subject (``NAME.html``, and ``NAME.pdf`` with ``formats=("pdf",)``,
    each figure as ``NAME-figures/ID.png`` / ``.svg`` with ``"png"`` / ``"svg"``),
    ``index.html`` and ``reports.json`` into ``out``; returns the paths written.

    ``subjects``: one :class:`interp.Subject` or several (the same object twice is one);
    ``sections``: which of :data:`SECTIONS` (default all; the summary, the card and the
    record always); ``plotly``: ``"inline"`` (each page opens alone) or ``"shared"``
    (``plotly.min.js`` written once beside the pages); ``command``: what the record says
    made the page. Reports already in ``out`` stay in its index."""
    from plotly.offline import get_plotlyjs

    if plotly not in PLOTLY_MODES:
        raise UnknownNameError("plotly mode", plotly, PLOTLY_MODES)
    chosen = check_sections(sections)
    formats = check_formats(formats)
    unique = list({id(s): s for s in ([subjects] if isinstance(subjects, Subject) else subjects or [])}.values())
    items = checked(unique if unique else subjects)
    files = [_file_name(s) for s in items]
    clash = sorted({f for f in files if files.count(f) > 1})
    if clash:
        raise InputError(f"subject names {', '.join(clash)} give the same file name; rename them")
    folder = check_out(out)
    shared = plotly == "shared"
    source = get_plotlyjs()
    paths = []
    if shared:
        target = folder / PLOTLY_FILE
        if not target.is_file() or target.read_text() != source:
            paths.append(write_text(target, source))
    script = PLOTLY_FILE if shared else source
    entries = read_manifest(folder)
    hits = {"read": 0, "computed": 0}
    with tqdm(total=len(items) * len(chosen), desc="reports", unit="section", disable=not progress) as bar:
        for subject, file in zip(items, files):
            def step(section, subject=subject):
                cached = _cached(subject, section)
                if cached is not None:
                    hits["read" if cached else "computed"] += 1
                bar.set_postfix_str(f"{subject.name}: {TITLES[section]}"
                                    + ("" if cached is None else " (from the store)" if cached else " (computing)"))
                bar.update(1)

            parts, seconds = _report(subject, chosen, step)
            page = write_text(folder / f"{file}.html", _model_page(subject, script, parts, shared, command))
            paths.append(page)
            entries[page.name] = _entry(subject, file, parts, seconds)
            _write_index(folder, entries, script, shared)  # after each page: an interruption leaves a true index
            if "pdf" in formats:
                if progress:
                    bar.set_postfix_str(f"{subject.name}: printing the PDF")
                paths.append(to_pdf(page))
            images = [f for f in formats if f in IMAGE_FORMATS]
            if images:
                figures = {k: v for part in parts.values() for k, v in part.figures.items()}

                def drawn(done, total, subject=subject, images=images):
                    if progress:
                        bar.set_postfix_str(f"{subject.name}: figure {done} of {total} as {'/'.join(images)}")

                paths += figure_images(figures, folder / f"{file}-figures", images, drawn)
    if progress and (hits["read"] or hits["computed"]):
        bar.write(f"reports: {hits['read']} dataset-wide results read from the store, {hits['computed']} computed")
    paths += _write_index(folder, entries, script, shared)
    return paths


def _cached(subject: Subject, section: str) -> bool | None:
    """Whether ``section``'s dataset-wide result is in the store already (None: it has none)."""
    try:
        if section == "evaluation":
            return trust.cached(subject) is not None
        if section == "sensitivity":
            base = sensitivity.settings(subject)
            return sensitivity.dataset_cached(subject, dataclasses.replace(base, kind="layer")) is not None
    except InterpError:
        return None
    return None


__all__ = ["build", "model_page", "index_page", "view_page", "SECTIONS", "READ", "check_out", "check_sections",
           "to_pdf", "figure_images", "chromium", "weights_sha256", "data_sha256", "versions"]
