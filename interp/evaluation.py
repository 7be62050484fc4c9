"""How far to trust an explanation: faithfulness, sanity checks, ground truth, agreement.

    interp.evaluate(model, x, methods=["saliency", "lrp:epsilon_plus_flat"], truth=masks, seed=0)
    interp.evaluation.perturbation_curve(model, x, attribution, target, mode="deletion", baseline="blur")
    interp.evaluation.randomisation(model, x, target, "saliency")            # cascading, from the top
    interp.evaluation.mass_accuracy(attribution, mask)                        # Arras et al. 2022

The experiments the field trusts, each on a batch at once (one forward per step for the
whole set, never one per sample):

- **deletion / insertion** (Samek et al. 2017, pixel flipping; Petsiuk et al. 2018): the
  input's units (pixels across channels, features, tokens) removed, or added to a baseline,
  most relevant first, in ``steps`` equal fractions; the target's probability (or score)
  along the way, its area, and the AOPC (the mean drop from the clean score). The removal
  baseline is selectable: ``zero``, ``mean`` (of ``reference`` data, else the batch),
  ``blur``, ``noise``, ``road`` (ROAD's noisy linear imputation, Rong et al. 2022: each
  removed pixel the mean of its kept neighbours, plus a little noise, which keeps the
  perturbed image closer to the data than a constant does: Hooker et al. 2019's
  out-of-distribution effect), a tensor, or for token ids a token id. Every curve comes with
  the curve of random orders under the same seed.
- **cascading randomisation** (Adebayo et al. 2018): the layers re-initialised one by one
  from the top, on copies; per layer, the rank correlation (Spearman, of absolute values) or
  SSIM between the original and the randomised explanation. An explanation that does not
  change is not explaining the model.
- **ground truth** (Arras et al. 2022, CLEVR-XAI): relevance mass accuracy (the share of
  positive relevance on the true region), relevance rank accuracy (the share of the K most
  relevant units inside the region of K units), the pointing game (the most relevant unit
  inside the region).
- **agreement**: the method × method mean rank correlation over the samples.

Ours, not Quantus's (Hedström et al. 2023, the reference collection of metrics): Quantus
works on numpy arrays one sample at a time, leaves every setting to the caller and has no
token inputs or LRP composites; here the metrics run batched on the model's device, on any
input the attribution methods take, with seeded generators of their own (the global RNG is
left alone), and the formulas are the papers' (the tests write them out).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import results
from ._checks import check_batch, resolve_target, scores_of
from .errors import InputError, UnknownNameError

ROWS_PER_EVAL = 1024  # perturbed samples per forward
BASELINES = ("zero", "mean", "blur", "noise", "road")
METRICS = {
    "deletion": "area under the deletion curve (lower: the most relevant units matter most)",
    "insertion": "area under the insertion curve (higher: the most relevant units suffice)",
    "aopc": "mean drop of the score as the most relevant units are deleted (higher is more faithful)",
    "mass_accuracy": "share of positive relevance on the ground-truth region (Arras et al. 2022)",
    "rank_accuracy": "share of the K most relevant units inside the ground-truth region of K units",
    "pointing_game": "whether the most relevant unit lies in the ground-truth region",
    "randomisation": "rank correlation with the explanation of the fully randomised model (lower passes)",
}
TRUTH_METRICS = ("mass_accuracy", "rank_accuracy", "pointing_game")


# ---------------------------------------------------------------------------- units

def units(values: torch.Tensor, image: bool) -> torch.Tensor:
    """Per sample, one value per unit of the input: (batch, units). Images (batch, C, H, W)
    are read per pixel (summed over channels), everything else per element."""
    if image:
        return values.sum(1).flatten(1)
    return values.flatten(1)


def _is_image(x: torch.Tensor) -> bool:
    return x.is_floating_point() and x.ndim == 4


def _unit_mask(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A ground-truth mask (shaped like ``x``, or like its units) as (batch, units) bool."""
    if not isinstance(mask, torch.Tensor):
        raise InputError(f"the ground truth must be a tensor of masks; got {type(mask).__name__}")
    m = mask.bool()
    if _is_image(x) and m.shape == x.shape:
        return m.any(1).flatten(1)
    if _is_image(x) and m.shape == (x.shape[0],) + tuple(x.shape[2:]):
        return m.flatten(1)
    per_sample = units(torch.zeros(1, *x.shape[1:]), _is_image(x)).shape[1]
    if m.shape[0] == x.shape[0] and m[0].numel() == per_sample:
        return m.flatten(1)
    raise InputError(f"ground-truth masks shaped {tuple(mask.shape)} do not fit the input {tuple(x.shape)}; expected "
                     "one mask per sample, shaped like the input or like one channel of it")


# ---------------------------------------------------------------------------- ground truth

def mass_accuracy(attribution: torch.Tensor, mask: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
    """Relevance mass accuracy per sample (Arras et al. 2022): Σ of positive relevance inside the
    region / Σ of positive relevance (0 where there is none)."""
    r, m = _pair(attribution, mask, x)
    pos = r.clamp(min=0)
    total = pos.sum(1)
    return torch.where(total > 0, (pos * m).sum(1) / total.clamp(min=1e-30), torch.zeros_like(total))


def rank_accuracy(attribution: torch.Tensor, mask: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
    """Relevance rank accuracy per sample (Arras et al. 2022): with K the region's size, the share
    of the K most relevant units that lie inside it."""
    r, m = _pair(attribution, mask, x)
    out = torch.zeros(len(r))
    for i in range(len(r)):  # K differs per sample
        k = int(m[i].sum())
        if k:
            out[i] = m[i][r[i].topk(k).indices].float().mean()
    return out


def pointing_game(attribution: torch.Tensor, mask: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
    """1 where the most relevant unit lies inside the region, else 0 (Zhang et al. 2018)."""
    r, m = _pair(attribution, mask, x)
    return m.gather(1, r.argmax(1, keepdim=True))[:, 0].float()


def _pair(attribution, mask, x):
    x = attribution if x is None else x
    image = _is_image(x) and attribution.ndim == 4
    return units(attribution.float(), image), _unit_mask(mask, x if image else attribution)


# ---------------------------------------------------------------------------- rank correlation, SSIM

def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks per row, ties given their average rank (scipy's ``rankdata``): a map that is 0 on
    most of the image must not correlate with another through the order of its zeros."""
    from scipy.stats import rankdata

    return torch.from_numpy(rankdata(v.detach().cpu().double().numpy(), axis=1)).float()


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation per row of two (batch, n) tensors (ties at their average rank)."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp(min=1e-12)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Structural similarity per sample of two (batch, H, W) maps, each scaled to [0, 1] first
    (Wang et al. 2004, with a uniform window), as Adebayo et al. compare heatmaps."""
    def scaled(m):
        flat = m.flatten(1)
        lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
        return ((m - lo) / (hi - lo).clamp(min=1e-12))[:, None]
    a, b = scaled(a.float()), scaled(b.float())
    w = min(window, a.shape[-1], a.shape[-2])
    mu_a, mu_b = F.avg_pool2d(a, w, 1), F.avg_pool2d(b, w, 1)
    var_a = F.avg_pool2d(a * a, w, 1) - mu_a ** 2
    var_b = F.avg_pool2d(b * b, w, 1) - mu_b ** 2
    cov = F.avg_pool2d(a * b, w, 1) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


# ---------------------------------------------------------------------------- perturbation curves

@results.register
@dataclass(frozen=True)
class Curve:
    """A deletion or insertion curve per sample. ``fractions``: (steps + 1,) share of units
    removed (deletion) or added (insertion); ``values``: (batch, steps + 1) the target's
    probability (or score) there; ``random``: the same for random orders (the reference
    every curve is read against)."""

    mode: str
    baseline: str
    fractions: torch.Tensor
    values: torch.Tensor
    random: torch.Tensor
    target: torch.Tensor
    measure: str = "probability"

    @property
    def area(self) -> torch.Tensor:
        """Per sample, the mean of the curve (the area under it, the fraction axis being [0, 1])."""
        return _area(self.values)

    @property
    def random_area(self) -> torch.Tensor:
        return _area(self.random)

    @property
    def aopc(self) -> torch.Tensor:
        """Per sample, the mean drop from the clean value over the steps (Samek et al. 2017)."""
        return (self.values[:, :1] - self.values).mean(1)


def _area(v: torch.Tensor) -> torch.Tensor:
    return ((v[:, 1:] + v[:, :-1]) / 2).mean(1)  # trapezoids on equal steps


def _baseline(x: torch.Tensor, baseline, reference: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """The values removed units take, shaped like ``x``."""
    if isinstance(baseline, torch.Tensor):
        b = baseline.to(x.dtype)
        if b.shape == x.shape:
            return b
        if b.shape == x.shape[1:]:
            return b.expand_as(x)
        raise InputError(f"a baseline shaped {tuple(baseline.shape)} does not fit the input {tuple(x.shape)}; "
                         f"expected {tuple(x.shape)} or one sample's shape {tuple(x.shape[1:])}")
    if not x.is_floating_point():  # token ids: a token
        if isinstance(baseline, int) and not isinstance(baseline, bool):
            return torch.full_like(x, baseline)
        if baseline == "zero":
            return torch.zeros_like(x)
        raise InputError(f"token ids are removed by a token id (an int, e.g. the pad token); got {baseline!r}")
    if baseline == "zero":
        return torch.zeros_like(x)
    data = reference if reference is not None else x
    if baseline == "mean":
        return data.float().mean(0).to(x.dtype).expand_as(x)
    if baseline == "noise":
        mean, std = data.float().mean(0), data.float().std(0) if len(data) > 1 else data.float().std()
        return (mean + std * torch.randn(x.shape, generator=generator)).to(x.dtype)
    if baseline == "blur":
        if x.ndim != 4:
            raise InputError(f"the blur baseline is for images (batch, C, H, W); the input is {tuple(x.shape)}")
        return _blur(x)
    if baseline == "road":
        return x  # imputed per step, from the units kept (see _road)
    raise UnknownNameError("baseline", baseline, BASELINES, hint="or a tensor shaped like the input")


def _blur(x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    sigma = sigma or max(x.shape[-1], x.shape[-2]) / 8
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    pad = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(pad, k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)


def _road(x: torch.Tensor, removed: torch.Tensor, generator: torch.Generator, noise: float = 0.01) -> torch.Tensor:
    """ROAD's noisy linear imputation (Rong et al. 2022), for images: each removed pixel the
    mean of its kept 8-neighbours (repeated, so that removed regions fill in from their
    edges), plus Gaussian noise of ``noise`` times the data's spread. ``removed``: (batch, H, W).
    Other inputs: removed units take the batch mean."""
    if x.ndim != 4:
        return torch.where(removed.view_as(x), x.mean(0, keepdim=True).expand_as(x), x)
    kept = (~removed)[:, None].to(x.dtype)
    filled, weight = x * kept, kept
    c = x.shape[1]
    ring = torch.ones(1, 1, 3, 3, dtype=x.dtype)
    ring[0, 0, 1, 1] = 0
    for _ in range(max(x.shape[-2:])):
        if bool((weight > 0).all()):
            break
        total = F.conv2d(F.pad(filled, (1, 1, 1, 1)), ring.expand(c, 1, 3, 3).contiguous(), groups=c)
        count = F.conv2d(F.pad(weight, (1, 1, 1, 1)), ring)
        newly = (weight == 0) & (count > 0)
        filled = torch.where(newly, total / count.clamp(min=1e-12), filled)
        weight = torch.where(newly, torch.ones_like(weight), weight)
    spread = float(x.float().std()) or 1.0
    noisy = filled + noise * spread * torch.randn(x.shape, generator=generator).to(x.dtype)
    return torch.where(kept > 0, x, noisy)


def perturbation_curve(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor, target="predicted", *,
                       mode: str = "deletion", steps: int = 10, baseline="zero", reference: torch.Tensor | None = None,
                       seed: int = 0, measure: str = "probability", random: torch.Tensor | None = None) -> Curve:
    """The deletion (or insertion) curve of ``model`` at ``x``, removing (adding) units in order
    of ``attribution`` (shaped like ``x``; for token ids, one value per token), most relevant
    first, in ``steps`` equal fractions; with the curve of random orders beside it. One forward
    per step for the whole batch. ``measure``: ``"probability"`` (softmax of the outputs) or
    ``"score"`` (the output itself). ``random``: the random orders' curve when already known
    (it depends on the seed, the baseline and the data, not on the attribution)."""
    if mode not in ("deletion", "insertion"):
        raise UnknownNameError("curve mode", mode, ("deletion", "insertion"))
    if measure not in ("probability", "score"):
        raise UnknownNameError("measure", measure, ("probability", "score"))
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise InputError(f"steps={steps!r}: a curve needs at least 2 steps")
    check_batch(model, x, "the perturbation curve")
    if not isinstance(attribution, torch.Tensor) or attribution.shape[0] != x.shape[0]:
        raise InputError(f"the attribution must be a tensor with one row per sample of the input {tuple(x.shape)}")
    image = _is_image(x)
    r = units(attribution.detach().float(), image and attribution.ndim == 4)
    n = r.shape[1]
    expected = units(torch.zeros(1, *x.shape[1:]), image).shape[1]
    if n != expected:
        raise InputError(f"an attribution shaped {tuple(attribution.shape)} gives {n} units; the input "
                         f"{tuple(x.shape)} has {expected}")
    g = torch.Generator().manual_seed(seed)
    base = _baseline(x, baseline, reference, g)
    with torch.no_grad():
        clean = scores_of(model(x))
    t = resolve_target(target, clean)
    random_order = torch.stack([torch.randperm(n, generator=g) for _ in range(len(x))])
    order = r.argsort(1, descending=True)
    label = (baseline if isinstance(baseline, str) else "given" if isinstance(baseline, torch.Tensor)
             else f"token {baseline}")
    values = _curve(model, x, base, order, t, mode, steps, baseline, g, measure)
    rand = random if random is not None else _curve(model, x, base, random_order, t, mode, steps, baseline, g,
                                                    measure)
    return Curve(mode=mode, baseline=label, fractions=torch.linspace(0, 1, steps + 1), values=values, random=rand,
                 target=t, measure=measure)


def _curve(model, x, base, order, t, mode, steps, baseline, g, measure) -> torch.Tensor:
    b, n = order.shape
    image = _is_image(x)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n).expand(b, n))  # position of each unit in the order
    out = torch.empty(b, steps + 1)
    for k in range(steps + 1):
        count = round(k * n / steps)
        chosen = rank < count  # (b, n): the units removed (deletion) or kept (insertion) so far
        removed = chosen if mode == "deletion" else ~chosen
        if image:
            where = removed.view(b, 1, *x.shape[2:]).expand_as(x)
        else:
            where = removed.view_as(x)
        filler = _road(x, removed.view(b, *x.shape[2:]) if image else removed.view_as(x), g) \
            if baseline == "road" else base
        perturbed = torch.where(where, filler, x)
        with torch.no_grad():
            s = torch.cat([scores_of(model(perturbed[i:i + ROWS_PER_EVAL]))
                           for i in range(0, b, ROWS_PER_EVAL)])
        if measure == "probability" and s.shape[1] > 1:
            s = s.softmax(1)
        out[:, k] = s.gather(1, t[:, None])[:, 0].float()
    return out


# ---------------------------------------------------------------------------- sanity checks

@results.register
@dataclass(frozen=True)
class Randomisation:
    """Cascading model randomisation (Adebayo et al. 2018). ``layers``: the layers
    re-initialised, from the top, in order; ``similarity``: (layers, batch) between the
    original explanation and the one after re-initialising the layers up to each;
    ``measure``: ``"spearman"`` (of absolute values) or ``"ssim"``."""

    method: str
    layers: tuple[str, ...]
    similarity: torch.Tensor
    measure: str = "spearman"

    @property
    def final(self) -> torch.Tensor:
        """Per sample, the similarity once every layer is randomised."""
        return self.similarity[-1]


Explainer = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def explainer(method) -> Explainer:
    """A function (model, x, target) -> attribution for a method name (an attribution method,
    or ``"lrp:<composite>"``), or the callable given."""
    if callable(method):
        return method
    from .attribution import attribute
    from .attribution import methods as attribution_methods

    if isinstance(method, str) and method.startswith("lrp:"):
        from .lrp import composites
        from .lrp import lrp as run_lrp

        name = method[4:]
        composites.get(name)  # unknown composites named at once

        def by_lrp(model, x, target):
            return run_lrp(model, x, target, composite=name).relevance
        return by_lrp
    if not isinstance(method, str) or method not in attribution_methods():
        raise UnknownNameError("explanation method", method, list(attribution_methods()) + ["lrp:<composite>"])

    def by_attribution(model, x, target):
        return attribute(model, x, target, method=method)
    return by_attribution


def _weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules()
            if next(m.children(), None) is None and any(True for _ in m.parameters(recurse=False))]


def randomisation(model: nn.Module, x: torch.Tensor, target, method, *, measure: str | None = None,
                  seed: int = 0, layers: Sequence[str] | None = None) -> Randomisation:
    """Cascading randomisation: the layers with parameters re-initialised one after another from
    the top (on copies: the model is never touched), the explanation recomputed after each,
    compared with the original per sample (Spearman of absolute values; ``"ssim"`` for images)."""
    explain = explainer(method)
    image = _is_image(x)
    measure = measure or ("ssim" if image else "spearman")
    if measure not in ("spearman", "ssim") or (measure == "ssim" and not image):
        raise InputError(f"measure {measure!r}: 'spearman', or 'ssim' for images")
    found = _weighted_layers(model)
    if layers is None:
        names = [n for n, _ in reversed(found)]
    else:
        known = {n for n, _ in found}
        unknown = [n for n in layers if n not in known]
        if unknown:
            raise UnknownNameError("layer with parameters", unknown[0], sorted(known))
        names = list(layers)
    with torch.no_grad():
        t = resolve_target(target, scores_of(model(x)))
    original = explain(model, x, t).detach()
    copy_ = copy.deepcopy(model)
    modules = dict(copy_.named_modules())
    g = torch.Generator().manual_seed(seed)
    sims = []
    for name in names:
        _reinitialise(modules[name], g)
        again = explain(copy_, x, t).detach()
        sims.append(_similarity(original, again, measure, image))
    label = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    return Randomisation(method=label, layers=tuple(names), similarity=torch.stack(sims), measure=measure)


def label_randomisation(model: nn.Module, x: torch.Tensor, method, retrain: Callable[[torch.Tensor], nn.Module],
                        labels: torch.Tensor, *, seed: int = 0, measure: str = "spearman") -> torch.Tensor:
    """Data-label randomisation (Adebayo et al. 2018), where a retrain is cheap: the model
    ``retrain(shuffled)`` returns, trained on ``labels`` permuted under ``seed``, explained at
    ``x`` for the same targets as ``model``; per sample, the similarity of the two
    explanations. A method that passes gives a low similarity: its explanation depends on
    what the model learned, and a model trained on noise has learned nothing of the task."""
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        raise InputError("labels must be a 1-d tensor of the training labels")
    explain = explainer(method)
    g = torch.Generator().manual_seed(seed)
    shuffled = labels[torch.randperm(len(labels), generator=g)]
    noise_model = retrain(shuffled)
    if not isinstance(noise_model, nn.Module):
        raise InputError(f"retrain must return the retrained nn.Module; got {type(noise_model).__name__}")
    with torch.no_grad():
        t = scores_of(model(x)).argmax(1)
    image = _is_image(x)
    return _similarity(explain(model, x, t).detach(), explain(noise_model.eval(), x, t).detach(),
                       measure if image else "spearman", image)


def _reinitialise(module: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            std = float(p.std()) if p.numel() > 1 else 1.0
            p.copy_(torch.randn(p.shape, generator=g).to(p.dtype) * (std or 0.1))


def _similarity(a: torch.Tensor, b: torch.Tensor, measure: str, image: bool) -> torch.Tensor:
    if measure == "ssim":
        return ssim(a.abs().sum(1), b.abs().sum(1))
    return spearman(units(a.abs().float(), image), units(b.abs().float(), image))


# ---------------------------------------------------------------------------- agreement

def agreement(attributions: dict[str, torch.Tensor], image: bool = False) -> torch.Tensor:
    """The methods × methods mean Spearman rank correlation over the samples (of the signed
    values: methods that disagree on sign disagree)."""
    names = list(attributions)
    flat = {k: units(v.detach().float(), image and v.ndim == 4) for k, v in attributions.items()}
    out = torch.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            out[i, j] = out[j, i] = spearman(flat[a], flat[names[j]]).mean()
    return out


# ---------------------------------------------------------------------------- evaluate

@results.register
@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` returns: ``per_sample[(method, metric)]`` (batch,) values, the
    ``curves`` (per method and mode), ``agreement`` (methods × methods) and
    ``randomisations`` per method. :meth:`table` gives method × metric with the mean and
    the standard deviation over samples; :meth:`leaderboard` sorts by one metric."""

    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    per_sample: dict = field(default_factory=dict)
    agreement: torch.Tensor | None = None
    curves: dict = field(default_factory=dict)
    randomisations: dict = field(default_factory=dict)
    seed: int = 0

    def table(self) -> list[dict]:
        rows = []
        for m in self.methods:
            for k in self.metrics:
                v = self.per_sample.get((m, k))
                if v is not None:
                    rows.append({"method": m, "metric": k, "mean": float(v.float().mean()),
                                 "std": float(v.float().std()) if len(v) > 1 else 0.0, "n": len(v)})
        return rows

    def leaderboard(self, metric: str) -> list[tuple[str, float]]:
        if metric not in self.metrics:
            raise UnknownNameError("metric", metric, self.metrics)
        lower = metric in ("deletion", "randomisation")
        rows = [(m, float(self.per_sample[(m, metric)].float().mean())) for m in self.methods
                if (m, metric) in self.per_sample]
        return sorted(rows, key=lambda r: r[1] if lower else -r[1])


def evaluate(model, data=None, *, methods: Sequence = ("saliency", "integrated_gradients"),
             metrics: Sequence[str] = ("deletion", "insertion", "aopc"), truth: torch.Tensor | None = None,
             target="predicted", seed: int = 0, steps: int = 10, baseline="zero",
             reference: torch.Tensor | None = None, progress: Callable[[str], None] | None = None) -> Evaluation:
    """Every method × every metric on ``data`` (a batch; or ``model`` an :class:`interp.Subject`,
    whose model copy, inputs and ground truth are used). ``methods``: attribution method names,
    ``"lrp:<composite>"``, or callables (model, x, target) -> attribution. ``truth``: masks for
    the ground-truth metrics. Reproducible under ``seed``; ``progress`` is told each step."""
    from .subject import Subject

    if isinstance(model, Subject):
        subject = model
        model = subject.copy()[0]
        data = subject.inputs if data is None else data
        truth = subject.truth if truth is None else truth
    if not isinstance(data, torch.Tensor):
        raise InputError("evaluate takes one batch of inputs as a tensor (or a Subject)")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UnknownNameError("metric", unknown[0], METRICS)
    if truth is None and any(m in TRUTH_METRICS for m in metrics):
        needs = ", ".join(m for m in metrics if m in TRUTH_METRICS)
        raise InputError(f"{needs} need ground truth (truth= masks per sample); this data has none")
    if truth is not None:
        _unit_mask(truth, data)  # shapes checked before anything runs
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise InputError(f"steps={steps!r}: a curve needs at least 2 steps")
    explainers = {(m if isinstance(m, str) else getattr(m, "__name__", "custom")): explainer(m) for m in methods}
    tell = progress or (lambda _msg: None)
    with torch.no_grad():
        t = resolve_target(target, scores_of(model(data)))
    attributions, per_sample, curves, randomised = {}, {}, {}, {}
    for name, explain in explainers.items():
        tell(f"{name}: explaining")
        a = explain(model, data, t).detach()
        attributions[name] = a
        for mode in ("deletion", "insertion"):
            if mode in metrics or (mode == "deletion" and "aopc" in metrics):
                tell(f"{name}: {mode}")
                known = next((c.random for (_, k), c in curves.items() if k == mode), None)  # the same for all
                c = perturbation_curve(model, data, a, t, mode=mode, steps=steps, baseline=baseline,
                                       reference=reference, seed=seed, random=known)
                curves[(name, mode)] = c
                if mode in metrics:
                    per_sample[(name, mode)] = c.area
                if mode == "deletion" and "aopc" in metrics:
                    per_sample[(name, "aopc")] = c.aopc
        for metric, fn in (("mass_accuracy", mass_accuracy), ("rank_accuracy", rank_accuracy),
                           ("pointing_game", pointing_game)):
            if metric in metrics:
                per_sample[(name, metric)] = fn(a, truth, data)
        if "randomisation" in metrics:
            tell(f"{name}: randomisation")
            r = randomisation(model, data, t, explain, seed=seed, measure="spearman")
            randomised[name] = r
            per_sample[(name, "randomisation")] = r.final
    for name in explainers:  # the random order's curve, as a method of its own
        if (name, "deletion") in curves and ("random", "deletion") not in per_sample and "deletion" in metrics:
            per_sample[("random", "deletion")] = curves[(name, "deletion")].random_area
        if (name, "insertion") in curves and ("random", "insertion") not in per_sample and "insertion" in metrics:
            per_sample[("random", "insertion")] = curves[(name, "insertion")].random_area
    names = tuple(explainers) + (("random",) if any(k[0] == "random" for k in per_sample) else ())
    return Evaluation(methods=names, metrics=tuple(metrics), per_sample=per_sample,
                      agreement=agreement(attributions, _is_image(data)) if len(attributions) > 1 else None,
                      curves=curves, randomisations=randomised, seed=seed)


__all__ = ["evaluate", "Evaluation", "Curve", "Randomisation", "perturbation_curve", "randomisation",
           "label_randomisation",
           "mass_accuracy", "rank_accuracy", "pointing_game", "agreement", "spearman", "ssim", "units", "METRICS",
           "BASELINES"]
