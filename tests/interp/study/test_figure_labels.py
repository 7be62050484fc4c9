"""Every figure the faces build for the zoo's models labels things in words: no Python repr
(``window=(1,)``, ``[3, 3]``, ``None``) in a title, an axis, a tick, a trace's name or an
annotation; and no figure says what only the dashboard can do (a report shows the same)."""

from __future__ import annotations

import pytest

import zoo
from interp.study import activations, latent, lrp, overview, saliency, sensitivity
from interp.study import evaluation as trust
from tests.interp.figure_checks import labels, python_reprs


def zoo_figures(name: str) -> dict:
    """What a report shows of the zoo model ``name``, and the dashboard's Sensitivity view of
    one sample (the report's test-set parts take minutes; their labels are the same); PCA
    for the map, as cheaper than UMAP."""
    subject = zoo.subject(name)
    shown = overview.showcase_samples(subject)[:2]
    figs = dict(overview.overview_figures(subject))
    figs.update({f"sample-{k}": f for k, f in overview.sample_figures(subject, shown[0]).items()})
    output = activations.default_output(subject)
    unit = activations.most_active_unit(subject, output)
    figs.update({"stats-table": activations.stats_table_figure(subject),
                 "activations": activations.sample_figure(subject, output, shown[0], unit),
                 "unit-stats": activations.stats_figure(subject, output, unit),
                 "top": activations.top_figure(subject, output, unit),
                 "heatmap": activations.heatmap_figure(subject, output)})
    figs["saliency"], figs["saliency-summary"], _ = saliency.comparison(subject, shown)
    c = lrp.comparison(subject, shown)
    figs.update({"lrp-grid": c.grid, "lrp-flow": c.flow, "lrp-plan": c.plan, "lrp-summary": c.summary})
    for kind, _ in sensitivity.kinds(subject):  # the selected sample's: the test set's take minutes
        s = sensitivity.settings(subject, kind=kind)
        figs[f"sensitivity-{kind}"] = sensitivity.sample_figure(subject, shown[0], s)
    figs.update({f"evaluation-{k}": f for k, f in trust.dataset_figures(subject, trust.result(subject)).items()})
    figs["latent-map"] = latent.map_figure(subject, latent.projection(subject, latent.default_layer(subject), "pca"))
    figs.update({f"latent-{k}": f for k, f in latent.generative_figures(subject, shown[0]).items()})
    return figs


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.names())
def test_zoo_figures_label_in_words(name):
    figs = zoo_figures(name)
    assert {k: python_reprs(f) for k, f in figs.items() if python_reprs(f)} == {}
    assert {k: t for k, f in figs.items() for t in labels(f) if "click" in t} == {}  # the dashboard's captions say it
