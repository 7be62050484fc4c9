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
  out-of-distribution effect), a tensor, or for token ids a token id or ``mask`` (their
  attention_mask set to 0, the ids kept: the model reads a shorter text, not pad tokens in
  places it never saw them). Every curve comes with the curve of random orders under the
  same seed. Models of several inputs (a tuple, or a dict as Hugging Face models take) are
  read through the units of every explained input side by side, ranked together, each input
  perturbed in its own way and the unexplained ones (masks) passed as they are.
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
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import results
from ._checks import check_batch, refuse_batch_statistics, resolve_target, scores_of
from .errors import InputError, UnknownNameError
from .inputs import Inputs, as_inputs, per_input

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
    return values.reshape(len(values), -1)


def _is_image(x: torch.Tensor) -> bool:
    return x.is_floating_point() and x.ndim == 4


def _unit_count(x: torch.Tensor) -> int:
    """Units per sample of an input: its pixels for an image, its elements otherwise."""
    return math.prod(x.shape[2:] if _is_image(x) else x.shape[1:])


def _like_inputs(values, inputs: Inputs, what: str) -> list:
    """``values`` given in the structure of ``inputs`` (a tensor for one input; for several a
    tuple, or a dict by name, None or left out where an input is not explained) as one entry
    per input, or an InputError naming what was given and what was expected."""
    if inputs.single:
        given = [values] if isinstance(values, torch.Tensor) else None
        expected = "a tensor"
    elif inputs.keys is not None:
        fits = isinstance(values, dict) and set(values) <= set(inputs.keys)
        given = [values.get(k) for k in inputs.keys] if fits else None
        expected = f"a dict by input name ({', '.join(inputs.keys)}), a tensor or None each"
    else:
        fits = isinstance(values, (tuple, list)) and len(values) == len(inputs.tensors)
        given = list(values) if fits else None
        expected = f"a tuple of {len(inputs.tensors)}, a tensor or None per input"
    if given is None or not all(v is None or isinstance(v, torch.Tensor) for v in given):
        got = (f"a dict with keys {', '.join(map(str, values))}" if isinstance(values, dict) else
               f"a {type(values).__name__} of {len(values)}" if isinstance(values, (tuple, list)) else
               type(values).__name__)
        raise InputError(f"{what} must come like the inputs ({inputs.describe()}): {expected}; got {got}")
    return given


def _explained(attribution, inputs: Inputs, what: str = "the attribution") -> list:
    """The attribution per input (None where an input is not explained), in the structure of
    ``inputs`` and explaining at least one of them."""
    parts = _like_inputs(attribution, inputs, what)
    if all(a is None for a in parts):
        raise InputError(f"{what} explains none of the inputs ({', '.join(inputs.names)}: all None); expected "
                         "a tensor for at least one")
    return parts


def _check_units(parts: list, inputs: Inputs) -> None:
    """InputError unless every explained part has a row and as many units as its input per sample."""
    for name, a, x in zip(inputs.names, parts, inputs.tensors):
        if a is None:
            continue
        where = "the input" if inputs.single else name
        if a.ndim == 0 or a.shape[0] != x.shape[0]:
            raise InputError(f"the attribution must be a tensor with one row per sample of {where} "
                             f"{tuple(x.shape)}; got {tuple(a.shape)}")
        n = units(a[:1].float(), _is_image(x) and a.ndim == 4).shape[1]
        if n != _unit_count(x):
            raise InputError(f"an attribution shaped {tuple(a.shape)} gives {n} units; {where} {tuple(x.shape)} "
                             f"has {_unit_count(x)}")


def _joined(parts: Sequence, images: Sequence[bool]) -> torch.Tensor:
    """Per sample, the units of every explained part (None: not explained) side by side,
    (batch, units); ``images``: per part, whether its input is an image (read per pixel)."""
    return torch.cat([units(a.detach().float(), image and a.ndim == 4)
                      for a, image in zip(parts, images) if a is not None], 1)


def _unit_mask(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A ground-truth mask (shaped like ``x``, or like its units) as (batch, units) bool."""
    if not isinstance(mask, torch.Tensor):
        raise InputError(f"the ground truth must be a tensor of masks; got {type(mask).__name__}")
    m = mask.bool()
    if _is_image(x) and m.shape == x.shape:
        return m.any(1).flatten(1)
    if _is_image(x) and m.shape == (x.shape[0],) + tuple(x.shape[2:]):
        return m.flatten(1)
    if m.shape[0] == x.shape[0] and m[0].numel() == _unit_count(x):
        return m.reshape(len(m), -1)
    raise InputError(f"ground-truth masks shaped {tuple(mask.shape)} do not fit the input {tuple(x.shape)}; expected "
                     "one mask per sample, shaped like the input or like one channel of it")


# ---------------------------------------------------------------------------- ground truth
# ``x``: the inputs the attribution explains (for several, the attribution and the masks come
# in their structure, and the units of every explained input are read together).

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
    """(relevance, region) per sample and unit, over every explained input."""
    if x is None and not isinstance(attribution, torch.Tensor):
        raise InputError("the attribution of several inputs is read by the inputs: give them as x")
    inputs = as_inputs(attribution if x is None else x)
    parts, masks = _explained(attribution, inputs), _like_inputs(mask, inputs, "the ground truth")
    _check_units(parts, inputs)
    images = [_is_image(v) for v in inputs.tensors]
    region = [_unit_mask(m, v if image and a.ndim == 4 else a)
              for a, m, v, image in zip(parts, masks, inputs.tensors, images) if a is not None]
    return _joined(parts, images), torch.cat(region, 1)


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
        raise InputError(f"token ids are removed by a token id (an int, e.g. the pad token) or by 'mask' (their "
                         f"attention_mask set to 0); got {baseline!r}")
    if baseline == "zero":
        return torch.zeros_like(x)
    data = (reference if reference is not None else x).to(x.device)
    if baseline == "mean":
        return data.float().mean(0).to(x.dtype).expand_as(x)
    if baseline == "noise":
        mean, std = data.float().mean(0), data.float().std(0) if len(data) > 1 else data.float().std()
        return (mean + std * torch.randn(x.shape, generator=generator).to(x.device)).to(x.dtype)
    if baseline == "blur":
        if x.ndim != 4:
            raise InputError(f"the blur baseline is for images (batch, C, H, W); the input is {tuple(x.shape)}")
        return _blur(x)
    if baseline == "road":
        return x  # imputed per step, from the units kept (see _road)
    raise UnknownNameError("baseline", baseline, BASELINES + ("mask",),
                           hint="or a tensor shaped like the input ('mask': for token ids beside an attention_mask)")


def _blur(x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    sigma = sigma or max(x.shape[-1], x.shape[-2]) / 8
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
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
    ring = torch.ones(1, 1, 3, 3, dtype=x.dtype, device=x.device)
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
    noisy = filled + noise * spread * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    return torch.where(kept > 0, x, noisy)


@dataclass(frozen=True)
class _Removal:
    """How one explained input (``index`` in the inputs, ``units`` per sample, ``image``: read
    per pixel) loses units: they take ``filler``'s values, or ROAD's imputed per step
    (``road``), or keep theirs while the attention mask (at index ``mask``) is set to 0 there."""

    index: int
    units: int
    image: bool
    filler: torch.Tensor | None = None
    road: bool = False
    mask: int | None = None


def _removals(inputs: Inputs, attributions: list, baseline, reference, g: torch.Generator) -> list[_Removal]:
    """A :class:`_Removal` per explained input, in order (``baseline`` and ``reference`` given
    once, or per input)."""
    out = []
    given = zip(inputs.names, inputs.tensors, attributions, per_input(baseline, inputs, "baseline"),
                per_input(reference, inputs, "reference"))
    for i, (name, x, a, b, ref) in enumerate(given):
        if a is None:
            continue
        if isinstance(b, str) and b == "mask":
            out.append(_Removal(i, _unit_count(x), _is_image(x), mask=_attention_mask(inputs, name, x)))
        else:
            out.append(_Removal(i, _unit_count(x), _is_image(x), _baseline(x, b, ref, g),
                                road=isinstance(b, str) and b == "road"))
    return out


def _attention_mask(inputs: Inputs, name: str, x: torch.Tensor) -> int:
    """The index of the attention mask the ``"mask"`` baseline sets to 0 where ``name`` loses units."""
    if "attention_mask" not in (inputs.keys or ()):
        raise InputError(f"the 'mask' baseline removes tokens by setting their attention_mask to 0, and the model "
                         f"is given {inputs.describe()}, with no attention_mask; expected a dict of inputs with "
                         "'attention_mask' beside the token ids ({'input_ids': ids, 'attention_mask': mask}), or "
                         "another baseline (for token ids, a token id such as the pad token)")
    i = inputs.keys.index("attention_mask")
    per_unit = (len(x), *x.shape[2:]) if _is_image(x) else tuple(x.shape)
    if tuple(inputs.tensors[i].shape) != per_unit:
        raise InputError(f"the 'mask' baseline sets attention_mask to 0 where {name} loses units, so it needs one "
                         f"entry per unit of {name} {tuple(x.shape)}: shaped {per_unit}; it is "
                         f"{tuple(inputs.tensors[i].shape)}")
    return i


def _label(baseline) -> str:
    """The baseline in words (per input where given per input)."""
    if isinstance(baseline, dict):
        return ", ".join(f"{k}: {_label(v)}" for k, v in baseline.items())
    if isinstance(baseline, (tuple, list)):
        return ", ".join(map(_label, baseline))
    if isinstance(baseline, str):
        return baseline
    return "given" if isinstance(baseline, torch.Tensor) else f"token {baseline}"


def perturbation_curve(model: nn.Module, x, attribution, target="predicted", *,
                       mode: str = "deletion", steps: int = 10, baseline="zero", reference=None,
                       seed: int = 0, measure: str = "probability", random: torch.Tensor | None = None) -> Curve:
    """The deletion (or insertion) curve of ``model`` at ``x``, removing (adding) units in order
    of ``attribution`` (shaped like ``x``; for token ids, one value per token), most relevant
    first, in ``steps`` equal fractions; with the curve of random orders beside it. One forward
    per step for the whole batch. ``measure``: ``"probability"`` (softmax of the outputs) or
    ``"score"`` (the output itself). ``random``: the random orders' curve when already known
    (it depends on the seed, the baseline and the data, not on the attribution).

    ``x`` may be several inputs, a tuple or a dict (see :mod:`interp.inputs`); ``attribution``
    then comes in the same structure, None (or left out of a dict) for inputs not explained,
    and the units of the explained ones are ranked together; ``baseline`` and ``reference``
    may be given per input (a dict by name, or one per input)."""
    if mode not in ("deletion", "insertion"):
        raise UnknownNameError("curve mode", mode, ("deletion", "insertion"))
    if measure not in ("probability", "score"):
        raise UnknownNameError("measure", measure, ("probability", "score"))
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise InputError(f"steps={steps!r}: a curve needs at least 2 steps")
    inputs = check_batch(model, x, "the perturbation curve")
    refuse_batch_statistics(model, "perturbation curve", random=True)
    attributions = _explained(attribution, inputs)
    _check_units(attributions, inputs)
    # orders on the CPU (seeded there, whatever the device); each step's mask moves to its input
    r = _joined(attributions, [_is_image(v) for v in inputs.tensors]).cpu()
    g = torch.Generator().manual_seed(seed)
    removals = _removals(inputs, attributions, baseline, reference, g)
    with torch.no_grad():
        clean = scores_of(inputs.call(model))
    t = resolve_target(target, clean)
    random_order = torch.stack([torch.randperm(r.shape[1], generator=g) for _ in range(inputs.batch)])
    order = r.argsort(1, descending=True)
    values = _curve(model, inputs, removals, order, t, mode, steps, g, measure)
    rand = random if random is not None else _curve(model, inputs, removals, random_order, t, mode, steps, g,
                                                    measure)
    return Curve(mode=mode, baseline=_label(baseline), fractions=torch.linspace(0, 1, steps + 1), values=values,
                 random=rand, target=t, measure=measure)


def _curve(model, inputs: Inputs, removals: list[_Removal], order, t, mode, steps, g, measure) -> torch.Tensor:
    b, n = order.shape
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n).expand(b, n))  # position of each unit in the order
    out = torch.empty(b, steps + 1)
    for k in range(steps + 1):
        count = round(k * n / steps)
        chosen = rank < count  # (b, n): the units removed (deletion) or kept (insertion) so far
        removed = chosen if mode == "deletion" else ~chosen
        tensors = list(inputs.tensors)
        for part, gone in zip(removals, removed.to(inputs.tensors[0].device).split([p.units for p in removals], 1)):
            if part.mask is not None:
                tensors[part.mask] = tensors[part.mask].masked_fill(gone.reshape(tensors[part.mask].shape), 0)
                continue
            x = inputs.tensors[part.index]
            gone = gone.reshape(b, *x.shape[2:]) if part.image else gone.reshape(x.shape)
            filler = _road(x, gone, g) if part.road else part.filler
            tensors[part.index] = torch.where(gone[:, None].expand_as(x) if part.image else gone, filler,
                                              tensors[part.index])
        with torch.no_grad():
            s = torch.cat([scores_of(inputs.call(model, [v[i:i + ROWS_PER_EVAL] for v in tensors]))
                           for i in range(0, b, ROWS_PER_EVAL)])
        if measure == "probability" and s.shape[1] > 1:
            s = s.softmax(1)
        out[:, k] = s.gather(1, t[:, None])[:, 0].float().cpu()
    return out


# ---------------------------------------------------------------------------- sanity checks

@results.register
@dataclass(frozen=True)
class Randomisation:
    """Cascading model randomisation (Adebayo et al. 2018). ``layers``: the layers
    re-initialised, from the top, in order; ``similarity``: (layers, batch) between the
    original explanation and the one after re-initialising the layers up to each;
    ``measure``: ``"spearman"`` (of absolute values) or ``"ssim"``; ``examples``: the first
    sample's explanation, originally and after each step, ``(layers + 1, *sample shape)``,
    to see what the numbers say."""

    method: str
    layers: tuple[str, ...]
    similarity: torch.Tensor
    measure: str = "spearman"
    examples: torch.Tensor | None = None

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


def randomisation(model: nn.Module, x, target, method, *, measure: str | None = None,
                  seed: int = 0, layers: Sequence[str] | None = None) -> Randomisation:
    """Cascading randomisation: the layers with parameters re-initialised one after another from
    the top (on copies: the model is never touched), the explanation recomputed after each,
    compared with the original per sample (Spearman of absolute values; ``"ssim"`` for images).
    Several inputs (a tuple or a dict): Spearman over the units of every explained input."""
    explain = explainer(method)
    inputs = check_batch(model, x, "randomisation")
    refuse_batch_statistics(model, "randomisation check", random=True)
    images = [_is_image(v) for v in inputs.tensors]
    image = inputs.single and images[0]
    measure = measure or ("ssim" if image else "spearman")
    if measure not in ("spearman", "ssim") or (measure == "ssim" and not image):
        raise InputError(f"measure {measure!r}: 'spearman', or 'ssim' for images (one input)")
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
        t = resolve_target(target, scores_of(inputs.call(model)))
    original = _explanation(explain, model, x, t, inputs)
    copy_ = copy.deepcopy(model)
    modules = dict(copy_.named_modules())
    g = torch.Generator().manual_seed(seed)
    sims, examples = [], [_first_sample(original, images)]
    for name in names:
        _reinitialise(modules[name], g)
        again = _explanation(explain, copy_, x, t, inputs)
        sims.append(_similarity(original, again, measure, images))
        examples.append(_first_sample(again, images))
    label = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    return Randomisation(method=label, layers=tuple(names), similarity=torch.stack(sims), measure=measure,
                         examples=torch.stack(examples).float())


def label_randomisation(model: nn.Module, x, method, retrain: Callable[[torch.Tensor], nn.Module],
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
    inputs = check_batch(model, x, "label randomisation")
    refuse_batch_statistics(model, "label randomisation", random=True)
    images = [_is_image(v) for v in inputs.tensors]
    with torch.no_grad():
        t = scores_of(inputs.call(model)).argmax(1)
    a, b = (_explanation(explain, m, x, t, inputs) for m in (model, noise_model.eval()))
    return _similarity(a, b, measure if inputs.single and images[0] else "spearman", images)


def _reinitialise(module: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            std = float(p.std()) if p.numel() > 1 else 1.0
            p.copy_(torch.randn(p.shape, generator=g).to(p.dtype) * (std or 0.1))


def _explanation(explain: Explainer, model: nn.Module, x, t: torch.Tensor, inputs: Inputs) -> list:
    """``explain``'s attribution at ``x``, one detached tensor (None: not explained) per input."""
    return [None if a is None else a.detach() for a in _explained(explain(model, x, t), inputs, "the explanation")]


def _first_sample(explanation: list, images: list[bool]) -> torch.Tensor:
    """The first sample's explanation: shaped like its input for one input, else the units of
    every explained input side by side."""
    if len(explanation) == 1:
        return explanation[0][0]
    return _joined(explanation, images)[0]


def _similarity(a: list, b: list, measure: str, images: list[bool]) -> torch.Tensor:
    """Per sample, the similarity of two explanations (one tensor or None per input) by magnitude."""
    if measure == "ssim":  # one input, an image
        return ssim(a[0].abs().sum(1), b[0].abs().sum(1))
    return spearman(*(_joined([None if v is None else v.abs() for v in e], images) for e in (a, b)))


# ---------------------------------------------------------------------------- agreement

def agreement(attributions: dict, image: bool = False) -> torch.Tensor:
    """The methods × methods mean Spearman rank correlation over the samples (of the signed
    values: methods that disagree on sign disagree). Each attribution a tensor, or for several
    inputs a tuple or dict of them (None: not explained), read as the units of every explained
    input side by side; ``image``: 4-D attributions are images, read per pixel."""
    def read(v) -> torch.Tensor:
        parts = [v] if isinstance(v, torch.Tensor) else list(v.values() if isinstance(v, dict) else v)
        return _joined(parts, [image] * len(parts))

    names = list(attributions)
    flat = {k: read(v) for k, v in attributions.items()}
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


def _names(given, what: str) -> list:
    """Method or metric names as a list (one name alone is a list of one); an InputError when none."""
    names = [given] if isinstance(given, str) or callable(given) else list(given or ())
    if not names:
        raise InputError(f"no {what} given; expected at least one (e.g. {what}=[...])")
    return names


def evaluate(model, data=None, *, methods: Sequence = ("saliency", "integrated_gradients"),
             metrics: Sequence[str] = ("deletion", "insertion", "aopc"), truth=None,
             target="predicted", seed: int = 0, steps: int = 10, baseline="zero", reference=None,
             measure: str = "probability", progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Every method × every metric on ``data`` (a batch: a tensor, or several inputs as a tuple
    or a dict, see :func:`perturbation_curve`; or ``model`` an :class:`interp.Subject`, whose
    model copy, inputs and ground truth are used). ``methods``: attribution method names,
    ``"lrp:<composite>"``, or callables (model, x, target) -> attribution. ``truth``: masks for
    the ground-truth metrics (per input for several). ``measure``: what the curves follow, the
    target's ``"probability"`` (a classifier) or ``"score"`` (a regression output, a single
    logit). Reproducible under ``seed``; ``progress(done, total)`` is called after each step (an explanation, a curve, a
    randomisation check), as every analysis with progress calls it."""
    from .subject import Subject

    if isinstance(model, Subject):
        subject = model
        model = subject.copy()[0]
        data = subject.inputs if data is None else data
        truth = subject.truth if truth is None else truth
    inputs = check_batch(model, data, "evaluate")
    refuse_batch_statistics(model, "evaluation", random=True)  # before any forward: the model stays as it was
    methods, metrics = _names(methods, "methods"), _names(metrics, "metrics")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"seed must be an int; got {seed!r}")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UnknownNameError("metric", unknown[0], METRICS)
    if truth is None and any(m in TRUTH_METRICS for m in metrics):
        needs = ", ".join(m for m in metrics if m in TRUTH_METRICS)
        raise InputError(f"{needs} {'needs' if ',' not in needs else 'need'} ground truth (truth= masks per "
                         "sample); this data has none")
    if truth is not None:  # shapes checked before anything runs
        for mask, x in zip(_like_inputs(truth, inputs, "the ground truth"), inputs.tensors):
            if mask is not None:
                _unit_mask(mask, x)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise InputError(f"steps={steps!r}: a curve needs at least 2 steps")
    explainers = {(m if isinstance(m, str) else getattr(m, "__name__", "custom")): explainer(m) for m in methods}
    per_method = (1 + ("deletion" in metrics or "aopc" in metrics) + ("insertion" in metrics)
                  + ("randomisation" in metrics))
    total, done = per_method * len(explainers), [0]

    def tell() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    with torch.no_grad():
        t = resolve_target(target, scores_of(inputs.call(model)))
    attributions, per_sample, curves, randomised, random = {}, {}, {}, {}, {}
    for name, explain in explainers.items():
        a = inputs.pack(_explanation(explain, model, data, t, inputs))
        attributions[name] = a
        tell()
        for mode in ("deletion", "insertion"):
            if mode in metrics or (mode == "deletion" and "aopc" in metrics):
                # the random orders' curve: the same for every method explaining the same inputs
                shared = (mode, tuple(None if p is None else tuple(p.shape) for p in _explained(a, inputs)))
                c = perturbation_curve(model, data, a, t, mode=mode, steps=steps, baseline=baseline,
                                       reference=reference, seed=seed, measure=measure, random=random.get(shared))
                random.setdefault(shared, c.random)
                curves[(name, mode)] = c
                if mode in metrics:
                    per_sample[(name, mode)] = c.area
                if mode == "deletion" and "aopc" in metrics:
                    per_sample[(name, "aopc")] = c.aopc
                tell()
        for metric, fn in (("mass_accuracy", mass_accuracy), ("rank_accuracy", rank_accuracy),
                           ("pointing_game", pointing_game)):
            if metric in metrics:
                per_sample[(name, metric)] = fn(a, truth, data)
        if "randomisation" in metrics:
            r = randomisation(model, data, t, explain, seed=seed, measure="spearman")
            randomised[name] = r
            per_sample[(name, "randomisation")] = r.final
            tell()
    for name in explainers:  # the random order's curve, as a method of its own
        if (name, "deletion") in curves and ("random", "deletion") not in per_sample and "deletion" in metrics:
            per_sample[("random", "deletion")] = curves[(name, "deletion")].random_area
        if (name, "insertion") in curves and ("random", "insertion") not in per_sample and "insertion" in metrics:
            per_sample[("random", "insertion")] = curves[(name, "insertion")].random_area
    names = tuple(explainers) + (("random",) if any(k[0] == "random" for k in per_sample) else ())
    image = any(map(_is_image, inputs.tensors))
    return Evaluation(methods=names, metrics=tuple(metrics), per_sample=per_sample,
                      agreement=agreement(attributions, image) if len(attributions) > 1 else None,
                      curves=curves, randomisations=randomised, seed=seed)


__all__ = ["evaluate", "Evaluation", "Curve", "Randomisation", "perturbation_curve", "randomisation",
           "label_randomisation",
           "mass_accuracy", "rank_accuracy", "pointing_game", "agreement", "spearman", "ssim", "units", "METRICS",
           "BASELINES"]
