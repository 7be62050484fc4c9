"""Figures of sensitivity: how the score, the prediction and the layers respond when the input moves.

Noise curves put the score's change and the share of unchanged predictions against the
noise scale, so one sees where a model starts to flip; occlusion maps reuse the
attribution views (an occlusion map is an attribution whose unit is the score drop);
ICE curves show one feature's effect per sample under the partial dependence; the layer
profile sets each layer's response to noise beside what the output loses without it;
the robustness table gives Captum's explanation metrics per method. Builders take the
frozen results of :func:`interp.sensitivity`, never models, and compute nothing beyond
means and spreads over samples.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..attribution import option_text
from ..errors import InputError
from ..sensitivity import (
    ExplanationSensitivity,
    FeatureSweep,
    LayerSensitivity,
    NoiseSensitivity,
    OcclusionSensitivity,
)
from ._style import ACCENT, NEGATIVE, POSITIVE, TABLE_ROW, error_bars, finish, table_columns, table_height, table_width
from .arrays import as_array
from .attribution import attribution_view

ICE_COLOR = "rgba(120,120,120,0.35)"
BAND_FILL = "rgba(31,119,180,0.18)"  # ACCENT, light
ABLATED = "#ff7f0e"  # apart from the blue of the change under noise


def _check(result, kind: type, what: str) -> None:
    if not isinstance(result, kind):
        raise InputError(f"expected a {kind.__name__} (what interp.sensitivity(..., {what!r}) returns); "
                         f"got {type(result).__name__}")


def _sample_index(sample, n: int) -> int:
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or not 0 <= sample < n:
        raise InputError(f"sample must be an index in [0, {n - 1}] for a batch of {n}; got {sample!r}")
    return int(sample)


def _floats(t) -> np.ndarray:
    return as_array(t).astype(float)


def _listed(values) -> list:
    """Plotly values with NaN as None, so a missing number is a gap, not a bar or point."""
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, float).reshape(-1)]


# ---------------------------------------------------------------------------- noise

def _band(fig: go.Figure, x, centre, spread, name: str, row: int, col: int) -> None:
    """``centre`` ± ``spread`` as a filled band (lower edge clipped at 0: a size is never
    negative), drawn as an upper and a lower edge, then the centre line."""
    upper, lower = centre + spread, np.maximum(centre - spread, 0.0)
    fig.add_trace(go.Scatter(x=x, y=upper, mode="lines", line=dict(width=0), name=f"{name} + spread",
                             showlegend=False, hoverinfo="skip"), row=row, col=col)
    fig.add_trace(go.Scatter(x=x, y=lower, mode="lines", line=dict(width=0), name=f"{name} − spread",
                             fill="tonexty", fillcolor=BAND_FILL, showlegend=False, hoverinfo="skip"),
                  row=row, col=col)
    fig.add_trace(go.Scatter(x=x, y=centre, mode="lines+markers", name=name, line=dict(color=ACCENT, width=2),
                             customdata=spread, hovertemplate="noise %{x:.3g} × std<br>" + name
                             + " %{y:.4g} ± %{customdata:.3g}<extra></extra>"), row=row, col=col)


def noise_curves(result: NoiseSensitivity, sample: int | None = None, title: str | None = None,
                 predictions: bool = True) -> go.Figure:
    """Left: the root-mean-square change of the target score against the noise scale
    (a fraction of the data's std): the mean over samples with a band of ± the spread
    across samples, or with ``sample`` that sample's curve with its spread over the noisy
    copies (``score_change_std``). Right: the share of noisy copies predicting what the
    clean input predicts, the accuracy when labels were given, and the RMS change of the
    target's softmax probability (mean over samples, or the sample's), all in [0, 1].
    ``predictions=False`` leaves the right panel out: for a model with one output (a
    discriminator's real score, a reconstruction error) the argmax never changes, so the
    share unchanged would be a flat 100% line that says nothing about robustness."""
    _check(result, NoiseSensitivity, "noise")
    x = _floats(result.scales)
    change = _floats(result.score_change)  # (scales, batch)
    if sample is None:
        centre, spread = change.mean(1), change.std(1)
        name, left = "mean RMS score change", f"score change (mean ± spread over {change.shape[1]} samples)"
    else:
        i = _sample_index(sample, change.shape[1])
        centre, spread = change[:, i], _floats(result.score_change_std)[:, i]
        name = f"RMS score change, sample {i}"
        left = f"score change of sample {i} (target {int(result.target[i])}, score {float(result.score[i]):.4g})"
    fig = make_subplots(rows=1, cols=2 if predictions else 1,
                        subplot_titles=[left, "predictions under noise"][:2 if predictions else 1],
                        horizontal_spacing=0.1)
    fig.update_annotations(font_size=12)
    _band(fig, x, centre, spread, name, 1, 1)
    fig.update_yaxes(title="RMS change of the target score", rangemode="tozero", row=1, col=1)
    if predictions:
        _predictions_panel(fig, result, x, None if sample is None else i)
    for col in range(1, 3 if predictions else 2):
        fig.update_xaxes(title="noise scale (× the data's std)", row=1, col=col)
    where = f" in the embedding space ({result.embedding})" if result.embedding else ""
    sub = (f"Gaussian noise{where}, std {result.std:.4g}, {result.draws} draws per sample and scale, "
           f"seed {result.seed}")
    head = title or "Sensitivity to input noise"
    return finish(fig, f"{head}<br><sup>{sub}</sup>", height=460, margin=dict(l=60, r=20, t=90, b=50),
                  legend=dict(orientation="h", yanchor="top", y=-0.2, x=0, xanchor="left"))


def _predictions_panel(fig: go.Figure, result: NoiseSensitivity, x, sample: int | None) -> None:
    """The right panel of :func:`noise_curves`: agreement, accuracy, probability change."""
    fig.add_trace(go.Scatter(x=x, y=_floats(result.agreement), mode="lines+markers",
                             name="agrees with clean prediction",
                             line=dict(color=POSITIVE, width=2),
                             hovertemplate="noise %{x:.3g} × std<br>agreement %{y:.1%}<extra></extra>"), row=1, col=2)
    if result.accuracy is not None:
        fig.add_trace(go.Scatter(x=x, y=_floats(result.accuracy), mode="lines+markers", name="accuracy",
                                 line=dict(color=NEGATIVE, width=2, dash="dash"),
                                 hovertemplate="noise %{x:.3g} × std<br>accuracy %{y:.1%}<extra></extra>"),
                      row=1, col=2)
    if result.probability_change is not None:
        p = _floats(result.probability_change)
        fig.add_trace(go.Scatter(x=x, y=p.mean(1) if sample is None else p[:, sample], mode="lines+markers",
                                 name="RMS probability change" + ("" if sample is None else f", sample {sample}"),
                                 line=dict(color=ACCENT, width=2, dash="dot"),
                                 hovertemplate="noise %{x:.3g} × std<br>probability change %{y:.3f}<extra></extra>"),
                      row=1, col=2)
    fig.update_yaxes(title="share of noisy copies" + (" / probability change" if result.probability_change
                                                      is not None else ""),
                     range=[0, 1.02], tickformat=".0%", row=1, col=2)


# ---------------------------------------------------------------------------- occlusion

def occlusion_view(x, result: OcclusionSensitivity, modality: str, sample: int = 0, title: str | None = None,
                   feature_names=None, vocab=None) -> go.Figure:
    """One sample's occlusion map (how much the target score drops when a window around
    each position is set to the baseline) in the attribution view of its modality: an
    overlay on the image, a strip of tokens. ``x``: the batch the result was computed on."""
    _check(result, OcclusionSensitivity, "occlusion")
    inputs = as_array(x)
    n = len(result.maps)
    if len(inputs) != n:
        raise InputError(f"x holds {len(inputs)} samples but the occlusion result {n}; give the batch it was "
                         "computed on")
    i = _sample_index(sample, n)
    head = title or (f"Occlusion, sample {i}: target {int(result.target[i])}, score {float(result.score[i]):.4g}")
    head += (f"<br><sup>score drop with a window set to the baseline ({result.baseline})<br>"
             f"window {option_text(result.window)}, stride {option_text(result.stride)}</sup>")
    fig = attribution_view(inputs[i], result.maps[i], modality, title=head, feature_names=feature_names,
                           vocab=vocab, label="score drop")
    fig.update_layout(margin=dict(t=max(fig.layout.margin.t or 50, 100)))
    if fig.layout.height is not None:  # room for the two lines under the title
        fig.update_layout(height=fig.layout.height + 50)
    return fig


# ---------------------------------------------------------------------------- feature sweep

def ice_curves(result: FeatureSweep, feature_name: str | None = None, title: str | None = None,
               max_curves: int = 50, highlight: int | None = None, feature_value: float | None = None) -> go.Figure:
    """The target score as one feature moves over ``result.grid``: one thin grey
    individual conditional expectation (ICE) line per sample (the first ``max_curves``)
    and the bold partial dependence (their mean over every sample, not only those drawn).
    ``customdata`` of each grey line is its sample index. ``highlight``: a sample whose
    curve is drawn in colour (drawn or not among the first), with ``feature_value`` (its
    own value of the feature) marked on it."""
    _check(result, FeatureSweep, "occlusion")
    if isinstance(max_curves, bool) or not isinstance(max_curves, (int, np.integer)) or max_curves < 0:
        raise InputError(f"max_curves must be an integer >= 0; got {max_curves!r}")
    grid, curves = _floats(result.grid), _floats(result.curves)
    n = len(curves)
    if highlight is not None:
        highlight = _sample_index(highlight, n)
    shown = min(n, int(max_curves))
    name = feature_name if feature_name is not None else f"feature {result.feature}"
    fig = go.Figure()
    for i in range(shown):
        fig.add_trace(go.Scatter(x=grid, y=curves[i], mode="lines", line=dict(color=ICE_COLOR, width=1),
                                 name=f"sample {i}", legendgroup="ice", showlegend=i == 0,
                                 customdata=[i] * len(grid),
                                 hovertemplate=(f"sample {i} (target {int(result.target[i])})<br>{name} %{{x:.4g}}"
                                                "<br>score %{y:.4g}<extra></extra>")))
    if shown:
        fig.data[0].name = "one sample (ICE)"
    fig.add_trace(go.Scatter(x=grid, y=_floats(result.mean), mode="lines+markers", name="mean (partial dependence)",
                             line=dict(color=ACCENT, width=4), marker=dict(size=6),
                             hovertemplate=f"{name} %{{x:.4g}}<br>mean score %{{y:.4g}}<extra></extra>"))
    if highlight is not None:
        i = highlight
        fig.add_trace(go.Scatter(x=grid, y=curves[i], mode="lines", line=dict(color=POSITIVE, width=3),
                                 name=f"sample {i}", customdata=[i] * len(grid),
                                 hovertemplate=(f"sample {i} (target {int(result.target[i])})<br>{name} %{{x:.4g}}"
                                                "<br>score %{y:.4g}<extra></extra>")))
        if feature_value is not None:
            at = float(np.interp(float(feature_value), grid, curves[i]))
            fig.add_trace(go.Scatter(x=[float(feature_value)], y=[at], mode="markers", name=f"sample {i}'s value",
                                     marker=dict(color=POSITIVE, size=12, symbol="diamond",
                                                 line=dict(color="white", width=1.5)),
                                     hovertemplate=f"sample {i}: {name} %{{x:.4g}}<extra></extra>"))
    fig.update_xaxes(title=name)
    fig.update_yaxes(title="target score")
    drawn = f"{shown} of {n} samples drawn" if shown < n else f"{n} sample{'s' if n != 1 else ''}"
    head = title or f"Individual conditional expectation of {name}"
    return finish(fig, f"{head}<br><sup>{drawn}; the other features held at each sample's values</sup>",
                  height=420, margin=dict(l=60, r=20, t=80, b=50))


# ---------------------------------------------------------------------------- layers

def layer_profile(result: LayerSensitivity, title: str | None = None) -> go.Figure:
    """Per layer output, in model order from the top: left, the mean relative change of
    the output under input noise with error bars of its spread over samples (a size: the
    lower whisker stops at 0); right, the
    share of samples still right when the layer's output is replaced by its batch mean
    or perturbed (``result.ablated_by``; a NaN (no ablation measured) draws no bar and reads "not ablated"),
    with a dotted line at the share with nothing replaced."""
    _check(result, LayerSensitivity, "layer")
    names = list(result.layers)
    change, spread, ablation = _floats(result.change), _floats(result.change_std), _floats(result.ablation)
    missing = [name for name, a in zip(names, ablation) if not np.isfinite(a)]
    by_score = result.measured_against == "score"
    right = ("predicted right" if result.measured_against == "labels" else "predicted as before")
    what = "relative change of the target score" if by_score else f"share {right}"
    how = ("set to its batch mean" if result.ablated_by == "batch mean" else f"perturbed by {result.ablated_by}")
    dotted = "" if by_score else f"<br>(dotted: nothing replaced, {result.baseline:.1%})"
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[f"relative change<br>under noise {result.noise:g} × std",
                                        f"{what}<br>with the layer's output {how}{dotted}"])
    fig.update_annotations(font_size=12)
    fig.add_trace(go.Bar(x=change, y=names, orientation="h", name="relative change", marker_color=ACCENT,
                         error_x=error_bars(change, spread, True, color="#555", thickness=1.2),
                         customdata=spread, showlegend=False,
                         hovertemplate="%{y}<br>‖Δa‖ / ‖a‖ %{x:.4g} ± %{customdata:.3g}<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Bar(x=_listed(ablation), y=names, orientation="h", name="ablated", marker_color=ABLATED,
                         showlegend=False, hovertemplate="%{y}<br>" + (
                             "‖Δscore‖ / ‖score‖ %{x:.4g}" if by_score else "%{x:.1%} " + right) + "<extra></extra>"),
                  row=1, col=2)
    if missing:
        fig.add_trace(go.Scatter(x=[0.01] * len(missing), y=missing, mode="text", text=["not ablated"] * len(missing),
                                 textposition="middle right", textfont=dict(color="#888", size=11),
                                 name="not ablated", showlegend=False, hoverinfo="skip"), row=1, col=2)
    if not by_score:
        fig.add_vline(x=result.baseline, line=dict(color="#444", width=1.5, dash="dot"), row=1, col=2)
    fig.update_yaxes(type="category", autorange="reversed", row=1, col=1)
    fig.update_xaxes(title="‖a(x + noise) − a(x)‖ / ‖a(x)‖", rangemode="tozero", row=1, col=1)
    if by_score:
        fig.update_xaxes(title="‖score(ablated) − score‖ / ‖score‖", rangemode="tozero", row=1, col=2)
    else:
        fig.update_xaxes(title=f"share {right}", range=[0, 1.02], tickformat=".0%", row=1, col=2)
    sub = (f"noise {result.noise:g} × the data's std, {result.draws} draws, seed {result.seed}; "
           f"measured against {result.measured_against}")
    head = title or "Layer sensitivity"
    longest = max((len(s) for s in names), default=0)
    return finish(fig, f"{head}<br><sup>{sub}</sup>", height=190 + 28 * len(names),
                  margin=dict(l=max(60, 7 * longest + 20), r=20, t=140, b=60))


# ---------------------------------------------------------------------------- explanations

def explanation_robustness(result: ExplanationSensitivity, title: str | None = None) -> go.Figure:
    """One row per explanation method: the mean and largest ``sensitivity_max`` over
    samples (how far the explanation moves, relative to its norm, under small uniform
    noise: lower is steadier) and the mean ``infidelity`` (how badly the explanation
    predicts the score's change under noise: lower is more faithful)."""
    _check(result, ExplanationSensitivity, "explanation")
    sens, infid = _floats(result.sensitivity_max), _floats(result.infidelity)
    header = ["method", "mean sensitivity_max", "max sensitivity_max", "mean infidelity"]
    cells = [list(result.methods),
             [f"{v:.4g}" for v in sens.mean(1)], [f"{v:.4g}" for v in sens.max(1)],
             [f"{v:.4g}" for v in infid.mean(1)]]
    header = [f"<b>{h}</b>" for h in header]
    widths, content = table_columns(header, cells)
    fig = go.Figure(go.Table(
        columnwidth=widths,
        header=dict(values=header, fill_color="#eef2f7", align="left"),
        cells=dict(values=cells, align=["left", "right", "right", "right"], height=TABLE_ROW - 4)))
    head = title or "Robustness of explanations"
    sub = (f"over {sens.shape[1]} samples; noise radius {result.radius:g} × the data's std, "
           f"{result.draws} draws, seed {result.seed}; lower is better")
    margin = dict(l=20, r=20, t=80, b=20)
    return finish(fig, f"{head}<br><sup>{sub}</sup>", height=table_height(len(result.methods)) + 30,
                  width=table_width(content, margin), margin=margin)


__all__ = ["noise_curves", "occlusion_view", "ice_curves", "layer_profile", "explanation_robustness"]
