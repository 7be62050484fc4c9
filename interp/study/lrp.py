"""LRP of subjects: what each kind of model explains with relevance, and the views of it.

Classifiers explain a class score (the logit) of their prediction or of any class;
regression models an output; autoencoders a latent unit of the encoder (a VAE's mean);
GANs the discriminator's "real" logit, on a real sample and a generated one side by side
(the objectives and samples are :mod:`interp.study.saliency`'s). The reconstruction error that
saliency offers is not offered here: it squares the error, and no LRP rule covers a
product of two signals (the engine refuses it rather than explain it unconserved).

Both faces (dashboard and reports) call :func:`comparison`, which runs
:func:`interp.lrp` and the chosen saliency methods on the same samples and draws with
:mod:`interp.figures`. LRP runs on a fresh copy of the model built for each call
(a deep copy of the subject's, made before any analysis ran), not on the working model nor on
saliency's shared copy: canonizers rewrite modules and rules hook them for the length
of the run, and the dashboard runs other views on other threads at the same time.
Nothing is cached, so no result can go stale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import plotly.graph_objects as go
import torch
from torch import nn

from .. import figures
from .. import lrp as lrp_engine
from ..attribution import Attribution
from ..errors import UnknownNameError
from ..lrp import LRPResult, Plan
from ..lrp import composites as lrp_composites
from ..lrp import rules as lrp_rules
from ..subject import Subject
from . import saliency as sal
from .overview import memo
from .overview import model as working_model
from .saliency import Objective

DEFAULT_COMPOSITE = "epsilon_plus_flat"
DENSE_COMPOSITE = "epsilon_plus"  # the default where the first layer is dense: see default_composite
TOKEN_COMPOSITE = "epsilon"       # the default of the token models: see default_composite
DEFAULT_SALIENCY = ("gradient", "input_x_gradient", "integrated_gradients")
NOT_FOR_LRP = ("error",)  # saliency objectives LRP cannot explain (the squared reconstruction error)


def objectives(subject: Subject) -> list[Objective]:
    """What LRP can explain for ``subject``, the default first: saliency's objectives less the
    reconstruction error."""
    return [o for o in sal.objectives(subject) if o.key not in NOT_FOR_LRP]


def objective(subject: Subject, key: str | None) -> Objective:
    found = {o.key: o for o in objectives(subject)}
    if key is None:
        return next(iter(found.values()))
    if key not in found:
        raise UnknownNameError(f"LRP objective of {subject.name}", key, found,
                               hint="the reconstruction error squares its terms, which LRP rules do not cover"
                               if key in NOT_FOR_LRP else "")
    return found[key]


def default_composite(subject: Subject) -> str:
    """The composite a view starts with: ``epsilon_plus_flat`` (Zennit's recommended default)
    where the first weighted layer is a convolution (it reads part of the input);
    ``epsilon_plus`` where it is dense over the whole input (the MLP, the autoencoders'
    encoders, the GAN's discriminator): there the flat rule gives every input the same
    relevance, by its definition, and the map would say nothing; ``epsilon`` for the token
    models, which have no convolutions for z+ and where it puts the most relevance on
    the deciding words (share on the ground truth, 200 samples: LSTM 0.69 against
    0.53 for epsilon_plus_flat, transformer 0.75 against 0.64)."""
    if subject.modality == "tokens":
        return TOKEN_COMPOSITE
    model = sal.fresh_model(subject, objective(subject, None).key)
    first = next((m for m in model.modules() if isinstance(m, lrp_composites.WEIGHTED)), None)
    return DEFAULT_COMPOSITE if isinstance(first, lrp_composites.CONVOLUTIONS) else DENSE_COMPOSITE


def composites() -> dict[str, str]:
    """The named composites, each with a one-line description."""
    return lrp_composites.names()


CONVOLUTION_COMPOSITES = ("epsilon_plus_flat", "epsilon_plus", "epsilon_gamma_box", "alpha2_beta1", "alpha1_beta0")
ATTENTION_COMPOSITES = ("attnlrp", "cp_lrp")


def fitting_composites(subject: Subject) -> list[str]:
    """The composites that mean something for ``subject``'s layers, its default first:
    epsilon and LRP-0 everywhere; the composites with convolution rules (z+, flat, z^B,
    alpha-beta) where it has convolutions (on a dense model they repeat epsilon, or, for
    flat and z^B, give every input the same relevance); AttnLRP and CP-LRP where it attends."""
    def compute():
        modules = list(working_model(subject).modules())  # only read: the shared working copy
        found = [default_composite(subject), "epsilon", "lrp0"]
        if any(isinstance(m, lrp_composites.CONVOLUTIONS) for m in modules):
            found += CONVOLUTION_COMPOSITES
        if any(isinstance(m, (nn.Softmax, nn.MultiheadAttention)) or "Attention" in type(m).__name__
               for m in modules):
            found += ATTENTION_COMPOSITES
        return tuple(dict.fromkeys(found))

    return list(memo(subject, "lrp-fitting-composites", compute))


def rules() -> dict[str, str]:
    """The rules a weighted layer can be given instead of its composite's, with the rule's
    label (its parameters), e.g. ``{"epsilon": "epsilon (0.25)"}``."""
    return {name: lrp_rules.named(name).label for name in lrp_rules.WEIGHTED_RULES}


def _first_sample(subject: Subject) -> torch.Tensor:
    return subject.inputs[:1]


_WEIGHTED_KINDS = frozenset(c.__name__ for c in vars(nn).values()
                            if isinstance(c, type) and issubclass(c, lrp_composites.WEIGHTED))


def _renamed_plan(plan: Plan, names: dict[str, str]) -> Plan:
    if not names:
        return plan
    rows = tuple(dataclasses.replace(r, name=names.get(r.name, r.name)) for r in plan.rows)
    return dataclasses.replace(plan, rows=rows, first_layers=tuple(names.get(n, n) for n in plan.first_layers),
                               canonizers=tuple((c, tuple(names.get(n, n) for n in paths))
                                                for c, paths in plan.canonizers))


class _RenamedFlow:
    """An LRP run's per-layer relevance read with the subject's module names."""

    def __init__(self, flow, names: dict[str, str]):
        self._flow, self._names, self._layers = flow, names, None

    def layers(self) -> dict:
        if self._layers is None:
            names = self._names
            self._layers = {names.get(k, k): dataclasses.replace(v, name=names.get(v.name, v.name))
                            for k, v in self._flow.layers().items()}
        return self._layers


def named(result: LRPResult, subject: Subject, key: str) -> LRPResult:
    """``result`` (an LRP result of objective ``key``) with the subject's module names in its
    plan and its layers."""
    names = sal.own_names(subject, key)
    if not names:
        return result
    return dataclasses.replace(result, plan=_renamed_plan(result.plan, names),
                               flow=None if result.flow is None else _RenamedFlow(result.flow, names))


def overridable_layers(subject: Subject, key: str | None = None) -> list[tuple[str, str]]:
    """The weighted layers (Linear, Conv) a user can give another rule, as (path, kind), in
    module order, named as in the subject's model (as every view names them); for the LSTM
    its unrolled input and hidden projections."""
    obj = objective(subject, key)
    rows = lrp_engine.plan(sal.fresh_model(subject, obj.key), DEFAULT_COMPOSITE, _first_sample(subject)).rows
    names = sal.own_names(subject, obj.key)
    return [(names.get(r.name, r.name), r.kind) for r in rows if r.role == "rule" and r.kind in _WEIGHTED_KINDS]


def _composite(subject: Subject, composite: str | None, overrides: dict | None, key: str):
    """The composite ``composite`` (default: the subject's) with ``overrides`` ({layer path:
    rule name}) applied; unknown names raise :class:`~interp.errors.UnknownNameError`."""
    name = default_composite(subject) if composite is None else composite
    if name == "epsilon_gamma_box" and subject.inputs.is_floating_point():
        # the box of z^B is the data's range (pixels in [0, 1]), not each sample's
        x = subject.reference
        comp = lrp_composites.get(name, low=float(x.min()), high=float(x.max()))
    else:
        comp = lrp_composites.get(name)
    if not overrides:
        return comp
    layers = [path for path, _ in overridable_layers(subject, key)]
    back = {own: path for path, own in sal.own_names(subject, key).items()}  # the views' names -> the model's
    chosen = {}
    for layer, rule in overrides.items():
        if layer not in layers:
            raise UnknownNameError(f"layer of {subject.name} for a rule override", layer, layers)
        chosen[back.get(layer, layer)] = lrp_rules.named(rule)
    return comp.with_rules(chosen)


def plan(subject: Subject, composite: str | None = None, overrides: dict | None = None, key: str | None = None) -> Plan:
    """The rule every module of the explained model gets under ``composite`` with
    ``overrides`` ({layer path: rule name}), decided on the subject's first sample;
    nothing is computed."""
    obj = objective(subject, key)
    return _renamed_plan(lrp_engine.plan(sal.fresh_model(subject, obj.key),
                                         _composite(subject, composite, overrides, obj.key), _first_sample(subject)),
                         sal.own_names(subject, obj.key))


@dataclass(frozen=True)
class Comparison:
    """What :func:`comparison` returns: the figures, and the results they draw."""

    grid: go.Figure        # relevance beside the saliency methods, per sample
    flow: go.Figure        # total relevance layer by layer (the first sample)
    layer_maps: go.Figure  # per-layer relevance maps of convolution and sequence layers (the first sample)
    plan: go.Figure        # the rule plan of the run
    summary: go.Figure     # numbers per sample
    result: LRPResult
    attributions: tuple[Attribution, ...]  # the LRP relevance first, then the saliency methods
    titles: tuple[str, ...]

    @property
    def has_layer_maps(self) -> bool:
        """Whether :attr:`layer_maps` shows something the grid does not: a layer (a convolution,
        a sequence layer) whose relevance is a map, not all zero, and not the input's relevance
        itself (as a dense model's Flatten of the input has it)."""
        r = self.result
        for layer in r.layers.values():
            v = layer.relevance
            if v is None or v.ndim not in (3, 4) or not bool(v[0].any()):
                continue
            if not (v.shape == r.relevance.shape and torch.allclose(v, r.relevance)):
                return True
        return False


def _what(subject: Subject, obj: Objective, target) -> str:
    if obj.key == "class":
        return "predicted class score" if target == "predicted" else f"score of class {subject.classes[target]}"
    if obj.key == "output":
        return f"output {target}"
    if obj.key == "latent":
        return f"latent unit {target}" + (" (mean)" if subject.latent_is_distribution else "")
    return "discriminator's real score (logit)"


GAP_WARNING = 0.05  # a conservation gap above this share of the score is flagged


def gap_note(result, sample: int = 0, threshold: float = GAP_WARNING) -> str:
    """A warning when the relevance of ``sample`` misses its score by more than ``threshold``
    of it, naming what absorbed (or created) the difference: the layers (biases, epsilon)
    that took most, and what was taken outside every layer (constants added in a forward);
    empty when relevance is conserved within the threshold. Under the defaults the zoo's
    LSTM and transformer lose a third or more, which a reader must not take for a map of the
    whole score."""
    score, total = float(result.score[sample]), float(result.total[sample])
    gap = score - total
    scale = abs(score) if abs(score) > 1e-12 else None  # a score of 0: amounts, not shares of it
    if abs(gap) <= (threshold * scale if scale else 1e-6):
        return ""

    def amount(v: float) -> str:
        return f"{abs(v) / scale:.0%}" if scale else f"{abs(v):.3g}"

    floor = 0.01 * (scale or abs(gap))
    takers = sorted(((float(layer.absorbed[sample]), name) for name, layer in result.layers.items()),
                    key=lambda t: -abs(t[0]))
    outside = float(result.outside_layers[sample])
    parts = [f"{name} {'absorbed' if v > 0 else 'created'} {amount(v)}" for v, name in takers[:3] if abs(v) > floor]
    if abs(outside) > floor:
        parts.append(f"outside the layers {'absorbed' if outside > 0 else 'created'} {amount(outside)}")
    if scale is None:
        head = f"⚠ relevance is not conserved: the score is 0 and Σ relevance is {total:.3g}"
    else:
        side = "falls short of" if gap * score > 0 else "exceeds"
        head = f"⚠ relevance is not conserved: Σ relevance {side} the score by {abs(gap / score):.0%} of it"
    return (head
            + (f" ({'; '.join(parts)})" if parts else "") + "; the flow figure shows every layer")


def comparison(subject: Subject, indices, composite: str | None = None, key: str | None = None, target=None,
               overrides: dict | None = None, saliency=DEFAULT_SALIENCY) -> Comparison:
    """LRP of samples ``indices`` (one index or a list; for the GAN each real sample with
    a generated one beside it) under ``composite`` with ``overrides`` ({layer path: rule
    name}), next to the ``saliency`` methods (any of :func:`interp.study.saliency.available_methods`;
    empty: LRP alone) for the same samples and target. ``target``: one of the objective's
    targets (default: its first, e.g. the predicted class)."""
    indices = [indices] if isinstance(indices, int) else list(indices)
    obj = objective(subject, key)
    target = sal.check_target(subject, obj, target)
    comp = _composite(subject, composite, overrides, obj.key)
    x, titles, truth = sal.samples_of(subject, indices)
    result = named(lrp_engine(sal.fresh_model(subject, obj.key), x, target, comp), subject, obj.key)
    others = sal.explain_batch(subject, x, saliency, obj.key, target) if saliency else []
    attrs = (result.as_attribution(), *others)
    grid = figures.attribution_grid(
        x, list(attrs), subject.modality, sample_titles=titles, feature_names=subject.features,
        vocab=subject.vocab, truth=truth,
        title=f"Relevance for the {_what(subject, obj, target)}" + (", beside saliency" if others else ""))
    return Comparison(
        grid=grid,
        flow=figures.relevance_flow(result, sample=0, title=f"Relevance layer by layer: {titles[0]}"),
        layer_maps=figures.layer_relevance_maps(result, sample=0, title=f"Relevance per layer: {titles[0]}"),
        plan=figures.lrp_plan_table(result.plan),
        summary=figures.lrp_summary(result, sample_titles=titles),
        result=result, attributions=attrs, titles=tuple(titles))


__all__ = ["objectives", "objective", "default_composite", "composites", "rules", "overridable_layers", "plan",
           "gap_note", "comparison", "Comparison", "DEFAULT_COMPOSITE", "DENSE_COMPOSITE", "DEFAULT_SALIENCY"]
