"""Static reports: one self-contained HTML file per subject, plus an index.

    import reports, interp
    reports.build([interp.Subject(model, (x, y))], out="reports-out")

Each page embeds plotly.js once, inline, and every figure as a div that calls it, so
the file opens offline, by itself, anywhere (no CDN, no external URL). The figures are
the dashboard's: both come from :mod:`interp.study`, which draws with
:mod:`interp.figures`; a report reads only :class:`interp.Subject` objects, whoever
made them (a user's model, the zoo's). Every file is written atomically.
"""

from __future__ import annotations

import datetime
import html
import re
from collections.abc import Iterable
from pathlib import Path

import plotly.graph_objects as go
from tqdm.auto import tqdm

import interp
from interp._io import write_text
from interp.errors import InputError
from interp.study import activations, latent, lrp, overview, saliency, sensitivity
from interp.study import evaluation as trust
from interp.subject import Subject
from interp.subject import subjects as checked

# no control that sends data off the machine (plotly.js offers none of them unless asked; said anyway)
FIGURE_CONFIG = {"displaylogo": False, "responsive": True, "showSendToCloud": False,
                 "modeBarButtonsToRemove": ["sendDataToCloud", "editInChartStudio"]}

CSS = """
body { font-family: Inter, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #1d2530;
       background: #f6f8fb; }
header { background: #1d2b3a; color: white; padding: 14px 28px; }
header a { color: #bcd3ff; }
main { max-width: 1180px; margin: 0 auto; padding: 18px 28px 60px; }
section { background: white; border: 1px solid #e1e6ee; border-radius: 8px; padding: 14px 18px;
          margin: 16px 0; }
h1 { font-size: 22px; margin: 0; } h2 { font-size: 17px; margin: 4px 0 10px; }
table.card { border-collapse: collapse; font-size: 13px; width: 100%; }
table.card td { border-bottom: 1px solid #eef1f5; padding: 5px 8px; vertical-align: top; }
table.card td:first-child { font-weight: 600; white-space: nowrap; width: 140px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.grid > div { flex: 1 1 380px; min-width: 0; }
.caption { font-size: 13px; color: #4a5665; margin: 6px 0; }
.muted { color: #6b7685; font-size: 12px; }
"""


def _page(title: str, body: str, plotly_js: str | None) -> str:
    script = f"<script type=\"text/javascript\">{plotly_js}</script>" if plotly_js else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style>{script}</head>"
            f"<body>{body}</body></html>\n")


def _figure(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False,
                       div_id=div_id, config=FIGURE_CONFIG)


def _card_table(subject: Subject) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                   for k, v in overview.card_rows(subject))
    return f"<table class=\"card\">{rows}</table>"


def _activations_section(entry) -> str:
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
    body = "".join(f"<div>{_figure(fig, f'{_file_name(entry)}-{key}')}</div>" for key, fig in figs.items())
    return (f"<section><h2>Activations</h2><p class=\"muted\">Every leaf module recorded over the "
            f"{len(entry.inputs)} samples. Figures show <b>{html.escape(output)}</b>; unit "
            f"{unit} is its most active unit.</p><div class=\"grid\">{body}</div></section>")


def _saliency_section(entry) -> str:
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
            + "Each map is "
            "scaled to its own largest magnitude (red: evidence for the target, blue: against)"
            + (f"; largest completeness gap |Σ attribution − (f(x) − f(baseline))|: {max(gaps):.3g}" if gaps else "")
            + ".")
    return (f"<section><h2>Saliency</h2><p class=\"muted\">{note}</p>"
            f"<div>{_figure(grid, f'{_file_name(entry)}-saliency-grid')}</div>"
            f"<div>{_figure(summary, f'{_file_name(entry)}-saliency-summary')}</div></section>")


def _lrp_section(entry) -> str:
    """Relevance beside saliency for the saliency section's samples, how the relevance of
    the first one flows layer by layer (and, for convolutions, where it lies in each
    layer), the rule plan and the numbers."""
    indices = overview.showcase_samples(entry)
    if entry.task == "generation":
        indices = indices[:3]
    c = lrp.comparison(entry, indices)
    obj = lrp.objective(entry, None)
    gaps = (c.result.total - c.result.score).abs()
    note = (f"Layer-wise relevance propagation with the composite <b>{html.escape(c.result.composite)}</b> "
            f"({html.escape(lrp.composites()[c.result.composite])}), explaining the {html.escape(obj.label)}"
            + (" of the predicted class" if obj.key == "class" else "")
            + f", beside {', '.join(html.escape(a.label) for a in c.attributions[1:])} for the same samples. "
            "Each map is scaled to its own largest magnitude (red: evidence for the target, blue: against). "
            f"Largest gap |Σ relevance − score|: {float(gaps.max()):.3g}; biases and epsilon absorb relevance, "
            "the flow figure shows where."
            + (f" <b style=\"color:#b3261e\">{html.escape(warning)} (sample {indices[0]}).</b>"
               if (warning := lrp.gap_note(c.result)) else "")
            + (" The reconstruction error is not explained with LRP: it squares its terms, which no LRP rule "
               "covers." if entry.task == "reconstruction" else ""))
    figs = {"lrp-grid": c.grid, "lrp-flow": c.flow, "lrp-plan": c.plan}
    if c.has_layer_maps:
        figs["lrp-layer-maps"] = c.layer_maps
    figs["lrp-summary"] = c.summary
    body = "".join(f"<div>{_figure(fig, f'{_file_name(entry)}-{key}')}</div>" for key, fig in figs.items())
    return f"<section><h2>LRP</h2><p class=\"muted\">{note}</p>{body}</section>"


def _sensitivity_section(entry) -> str:
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
            + ("Occlusion maps: the score's drop when a window is set to zero, for the first showcased samples. "
               if entry.modality != "tabular" else
               "ICE curves: the feature whose sweep moves the score most; the first showcased sample in colour. ")
            + f"Layer profile: each layer's relative change under noise {base.noise:g} × std, and what the output "
            "loses when the layer's output is replaced by its batch mean. "
            + f"Explanation robustness: Captum's sensitivity_max and infidelity on the first "
            f"{min(n, sensitivity.EXPLANATION_SAMPLES)} test samples (lower is better)"
            + ("; token models are perturbed, and explained, in their embedding space, where LRP does not start, "
               "so LRP is not rated" if entry.modality == "tokens" else "") + ".")
    maps = "".join(f"<div>{_figure(fig, f'{_file_name(entry)}-sensitivity-{key}')}</div>" for key, fig in figs.items()
                   if key.startswith("occlusion-"))  # side by side; the wider figures one per row
    rows = [f"<div>{_figure(fig, f'{_file_name(entry)}-sensitivity-{key}')}</div>" for key, fig in figs.items()
            if not key.startswith("occlusion-")]
    body = rows[0] + (f"<div class=\"grid\">{maps}</div>" if maps else "") + "".join(rows[1:])
    return f"<section><h2>Sensitivity</h2><p class=\"muted\">{note}</p>{body}</section>"


def _evaluation_section(entry) -> str:
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
            f"orders as the reference; AOPC is the mean drop.{truth} Randomisation: the rank correlation with "
            f"the explanation once every layer is re-initialised from the top, on the first "
            f"{min(n, trust.RANDOMISED_SAMPLES)} samples (lower passes; a method near 1 ignores the model). "
            "Sort the table with the menu above it; bars are means, whiskers the spread over samples.")
    body = "".join(f"<div>{_figure(fig, f'{_file_name(entry)}-evaluation-{key}')}</div>" for key, fig in figs.items())
    return f"<section><h2>Evaluation</h2><p class=\"muted\">{note}</p>{body}</section>"


def _latent_section(entry) -> str:
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
    body = "".join(f"<div>{_figure(fig, f'{_file_name(entry)}-{key}')}</div>" for key, fig in figs.items())
    return f"<section><h2>Latent space</h2><p class=\"muted\">{note}</p>{body}</section>"


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


SECTIONS = ("activations", "saliency", "lrp", "sensitivity", "evaluation", "latent")


def _file_name(subject: Subject) -> str:
    """A file name for the subject's page: its name, with anything but letters, digits,
    dots, dashes and underscores replaced."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", subject.name).strip("._") or "subject"
    return name + "_" if name.lower() == "index" else name  # index.html is the index


def model_page(subject: Subject, plotly_js: str, progress=None) -> str:
    """The HTML of one subject's report; ``progress(section)`` is called as each section starts."""
    entry = subject
    name = subject.name
    figs = overview.overview_figures(entry)
    parts = [f"<header><h1>{html.escape(name)}</h1><div class=\"muted\" style=\"color:#cfd8e3\">"
             f"{html.escape(entry.task)} · {html.escape(entry.modality)} · "
             f"<a href=\"index.html\">all models</a></div></header><main>"]
    parts.append(f"<section><h2>Model card</h2>{_card_table(entry)}</section>")
    parts.append("<section><h2>Overview</h2><div class=\"grid\">")
    for key, fig in figs.items():
        parts.append(f"<div>{_figure(fig, f'{_file_name(entry)}-{key}')}</div>")
    parts.append("</div></section>")
    parts.append(f"<section><h2>Samples</h2><p class=\"muted\">{_showcase_note(entry)}</p>")
    for index in overview.showcase_samples(entry):
        sample_figs = overview.sample_figures(entry, index)
        parts.append(f"<p class=\"caption\">{html.escape(overview.sample_caption(entry, index))}</p>"
                     "<div class=\"grid\">")
        for key, fig in sample_figs.items():
            parts.append(f"<div>{_figure(fig, f'{_file_name(entry)}-sample{index}-{key}')}</div>")
        parts.append("</div>")
    parts.append("</section>")
    for section in SECTIONS:
        if progress is not None:
            progress(section)
        parts.append(_SECTIONS[section](entry))
    parts.append(f"<p class=\"muted\">interp {interp.__version__} · generated "
                 f"{datetime.datetime.now().isoformat(timespec='seconds')}</p></main>")
    return _page(f"interp report: {name}", "".join(parts), plotly_js)


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
        body.append(f"<div>{_figure(figure, f'figure-{k}')}</div>")
    body.append(f"</div></section><p class=\"muted\">interp {interp.__version__}</p></main>")
    return _page(title, "".join(body), plotly_js or get_plotlyjs())


_SECTIONS = {"activations": _activations_section, "saliency": _saliency_section, "lrp": _lrp_section,
             "sensitivity": _sensitivity_section, "evaluation": _evaluation_section, "latent": _latent_section}


def index_page(subjects: Iterable[Subject], plotly_js: str | None = None) -> str:
    """The list of models and, with ``plotly_js``, the leaderboard across them: each method's
    place by deletion (and by relevance mass where models have ground truth) per model."""
    subjects = list(subjects)
    rows = []
    for subject in subjects:
        page = f"{_file_name(subject)}.html"
        rows.append(f"<tr><td><a href=\"{html.escape(page)}\">{html.escape(subject.name)}</a></td>"
                    f"<td>{html.escape(subject.task)}</td><td>{html.escape(subject.modality)}</td>"
                    f"<td>{html.escape(overview.headline(subject))}</td>"
                    f"<td>{html.escape(subject.description)}</td></tr>")
    body = ("<header><h1>interp reports</h1></header><main><section><h2>Models</h2>"
            "<table class=\"card\"><tr><td>model</td><td>task</td><td>input</td><td>headline metric</td>"
            f"<td>description</td></tr>{''.join(rows)}</table></section>"
            f"{_leaderboards(subjects) if plotly_js else ''}</main>")
    return _page("interp reports", body, plotly_js)


def _leaderboards(subjects: list[Subject]) -> str:
    """Which explanation to trust, across the models (their evaluations are cached already)."""
    evaluations = {s.name: trust.result(s) for s in subjects}
    figs = [trust.zoo_figure(evaluations, "deletion")]
    if any("mass_accuracy" in e.metrics for e in evaluations.values()):
        figs.append(trust.zoo_figure(evaluations, "mass_accuracy"))
    body = "".join(f"<div>{_figure(fig, f'index-leaderboard-{i}')}</div>" for i, fig in enumerate(figs))
    return ("<section><h2>Which explanation to trust, across models</h2><p class=\"muted\">Each method's place "
            "within each model (green: best of that model), the value in the cell: deletion area (lower is "
            "more faithful) and, where the data has true regions, the share of relevance on them. Each model's "
            f"page has its full leaderboard.</p>{body}</section>")


def build(subjects, out: str | Path, progress: bool = True) -> list[Path]:
    """Write one page per subject (``NAME.html``) and ``index.html`` into ``out``; returns
    the paths. ``subjects``: one :class:`interp.Subject` or several."""
    from plotly.offline import get_plotlyjs

    items = checked(subjects)
    files = [_file_name(s) for s in items]
    clash = sorted({f for f in files if files.count(f) > 1})
    if clash:
        raise InputError(f"subject names {', '.join(clash)} give the same file name; rename them")
    folder = Path(out)
    plotly_js = get_plotlyjs()
    paths = []
    with tqdm(total=len(items) * (len(SECTIONS) + 1), desc="reports", unit="section", disable=not progress) as bar:
        for subject, file in zip(items, files):
            def step(section, subject=subject):
                bar.set_postfix_str(f"{subject.name}: {section}")
                bar.update(1)

            step("overview")
            paths.append(write_text(folder / f"{file}.html", model_page(subject, plotly_js, step)))
    paths.append(write_text(folder / "index.html", index_page(items, plotly_js)))
    return paths
