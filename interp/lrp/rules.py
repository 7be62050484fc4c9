"""LRP rules: how one module passes relevance from its output to its input.

A rule is a small, printable object (``Epsilon(0.25)``, ``Gamma(0.25)``, ``ZPlus()``)
that the engine applies to every call of the modules a composite gives it to. The
formulas are those of the literature as Zennit writes them (Bach et al. 2015;
Montavon et al. 2017, 2019; Kohlbrenner et al. 2020), including Zennit's handling
of negative inputs, its stabiliser (``z + eps * sign(z)``, sign(0) = 1) and which
biases each modified layer keeps, so results agree with Zennit's rule of the same
name.

How they run (the reason this is our code, not a port): relevance travels as a
*modified gradient* ``c`` with ``R = a * c`` at every tensor ``a``, as in AttnLRP's
implementation (Achtibat et al. 2024). The seed is the one-hot target, so the output
relevance is the target score; a plain gradient through a linear operation is then
LRP-0 on it, which is what makes residual adds, means, reshapes, slicing and
attention's ``weights @ values`` correct without a rule of their own (relevance
splits in proportion to each input's contribution). A rule replaces a module's
output by a tensor of the same value whose gradient is the rule's:

- ratio rules (LRP-0, epsilon, gamma, z+, alpha-beta, norm) keep ``R_in = x * (...)``,
  so they are one extra autograd node, plus one pass of the layer with modified
  weights for the sign-splitting ones (the parts of an input of one sign are
  skipped when there are none: ReLU outputs are never negative);
- input-layer rules (flat, w^2, z^B) give relevance that is not proportional to the
  input (a black pixel can be relevant), so they hand their relevance to the engine
  directly and need to read the analysed input itself.

Element-wise activations pass relevance through unchanged (``R_in = R_out``); for
ReLU and LeakyReLU that is their gradient already, so they cost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InterpError, UnknownNameError

STABILIZER = 1e-6  # Zennit's default, for every rule that divides by a modified output


def stabilize(z: torch.Tensor, epsilon: float = STABILIZER) -> torch.Tensor:
    """``z + epsilon * sign(z)`` with sign(0) = +1: safe to divide by, the epsilon rule's denominator."""
    # z + 0.0 turns -0.0 into +0.0, so that zero gets +epsilon as in Zennit (and copysign is
    # several times faster than torch.where with scalars)
    return z + torch.copysign(torch.full_like(z, epsilon), z + 0.0)


# ---------------------------------------------------------------------------- autograd pieces

class _Scaled(torch.autograd.Function):
    """The value of ``z``; the gradient times ``k`` (a constant)."""

    @staticmethod
    def forward(ctx, z, k):
        ctx.save_for_backward(k)
        return z.clone()  # a tensor of its own: the forward may write into it in place (out += identity)

    @staticmethod
    def backward(ctx, grad):
        k, = ctx.saved_tensors
        return grad * k, None


class _Redirected(torch.autograd.Function):
    """The value of ``z`` (no gradient of its own); the gradient, times ``k``, sent to
    ``carrier`` instead."""

    @staticmethod
    def forward(ctx, z, carrier, k):
        ctx.save_for_backward(k)
        return z.clone()  # a tensor of its own: the forward may write into it in place

    @staticmethod
    def backward(ctx, grad):
        k, = ctx.saved_tensors
        return None, grad * k, None


def with_gradient_of(value: torch.Tensor, carrier: torch.Tensor) -> torch.Tensor:
    """A tensor equal to ``value`` (exactly) whose gradient flows into ``carrier``."""
    return value.detach() + (carrier - carrier.detach())


def redirected(z: torch.Tensor, carrier: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """A tensor equal to ``z`` whose gradient, times ``k`` (a constant), flows into
    ``carrier``: the ratio rules' ``R_in = x * J_carrier^T (R / carrier)`` with ``k = z / carrier``."""
    return _Redirected.apply(z.detach(), carrier, k.detach())


def pass_through(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``a`` (an element-wise function of ``x``) with relevance passed through to ``x``:
    ``x * c_in = a * c_out``, so the gradient is scaled by ``a / x`` (0 where x is 0,
    whose relevance ``x * c`` is 0 whichever the scale)."""
    k = torch.nan_to_num(a.detach() / x.detach(), nan=0.0, posinf=0.0, neginf=0.0)
    return _Redirected.apply(a.detach(), x, k)


# ---------------------------------------------------------------------------- the layer a rule sees

@dataclass
class Layer:
    """A weighted layer as a rule sees it: its parameters (canonizers may give merged
    ones, e.g. a batch-norm folded in) and ``op(x, weight, bias)``, the layer's function
    with other parameters."""

    module: nn.Module
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    op: Callable | None

    def __call__(self, x, weight, bias=None):
        if self.op is None:
            raise InterpError(f"this rule needs a layer with weights (Linear, Conv or ConvTranspose); "
                              f"{type(self.module).__name__} has none")
        return self.op(x, weight, bias)


_TRANSPOSED = {nn.ConvTranspose1d: F.conv_transpose1d, nn.ConvTranspose2d: F.conv_transpose2d,
               nn.ConvTranspose3d: F.conv_transpose3d}


def layer_of(module: nn.Module, weight=None, bias=None) -> Layer:
    """The :class:`Layer` of a module (Linear, Conv, ConvTranspose), with its own
    parameters unless ``weight``/``bias`` are given."""
    w = (module.weight if weight is None else weight).detach()  # rules use weights as constants
    b = getattr(module, "bias", None) if bias is None else bias
    b = None if b is None else b.detach()
    if isinstance(module, nn.Linear):
        op = F.linear
    elif type(module) in _TRANSPOSED or isinstance(module, tuple(_TRANSPOSED)):
        fn = next(f for t, f in _TRANSPOSED.items() if isinstance(module, t))

        def op(x, weight, bias=None, m=module, fn=fn):
            return fn(x, weight, bias, m.stride, m.padding, m.output_padding, m.groups, m.dilation)
    elif isinstance(module, nn.modules.conv._ConvNd):
        def op(x, weight, bias=None, m=module):
            return m._conv_forward(x, weight, bias)
    else:
        op = None
    return Layer(module, w, b, op)


def _pos(t):
    return None if t is None else t.clamp(min=0)


def _neg(t):
    return None if t is None else t.clamp(max=0)


def _has_negative(x: torch.Tensor) -> bool:
    return x.numel() > 0 and bool(x.amin() < 0)  # a reduction, 15x faster than (x < 0).any() (measured)


# ---------------------------------------------------------------------------- rules

class Rule:
    """Base of every rule. ``apply(layer, x, z)`` returns the module's output ``z`` with
    the rule's gradient, or ``None`` where the plain gradient already is the rule.
    ``direct`` rules instead give ``relevance(layer, x, r_out)``, the relevance of the
    layer's input itself (see the module docstring)."""

    name = "rule"
    direct = False
    needs_weights = False  # only for Linear / Conv / ConvTranspose layers

    def apply(self, layer: Layer, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor | None:
        raise NotImplementedError

    def relevance(self, layer: Layer, x: torch.Tensor, r_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def label(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._params().items())})"

    def _params(self) -> dict:
        return {}

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self._params() == other._params()

    def __hash__(self) -> int:
        return hash((type(self), tuple(self._params().items())))


def _number(name: str, value, rule: str, *, minimum: float = 0.0) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum:
        raise InterpError(f"{rule}: {name}={value!r} is invalid; expected a finite number >= {minimum:g}")
    return float(value)


class Epsilon(Rule):
    """LRP-epsilon (Bach et al. 2015): ``R_i = sum_j x_i w_ij R_j / (z_j + eps sign z_j)``.
    Relevance is absorbed by the bias and by epsilon, which damps weak, contradictory
    evidence; ``Epsilon(0)`` is LRP-0 (the gradient times the input)."""

    name = "epsilon"

    def __init__(self, epsilon: float = 1e-6):
        self.epsilon = _number("epsilon", epsilon, "Epsilon")

    def _params(self):
        return {"epsilon": self.epsilon}

    @property
    def label(self) -> str:
        return "LRP-0" if self.epsilon == 0 else f"epsilon ({self.epsilon:g})"

    def apply(self, layer, x, z):
        if self.epsilon == 0:
            return None
        # z / (z + eps sign z) = |z| / (|z| + eps), 0 at z = 0 as in Zennit, in three kernels
        magnitude = z.detach().abs()
        return _Scaled.apply(z, magnitude / (magnitude + self.epsilon))


class Zero(Epsilon):
    """LRP-0 (Bach et al. 2015): relevance in proportion to each input's contribution
    ``x_i w_ij``; on ReLU networks it equals the gradient times the input."""

    name = "lrp0"

    def __init__(self):
        super().__init__(0.0)

    def _params(self):
        return {}


class Norm(Rule):
    """Sum-normalised: relevance in proportion to each input's share of the output, for
    layers without weights of their own (average pooling; Zennit's ``Norm``): epsilon
    with only the stabiliser."""

    name = "norm"

    def apply(self, layer, x, z):
        magnitude = z.detach().abs()
        return _Scaled.apply(z, magnitude / (magnitude + STABILIZER))


class Gamma(Rule):
    """LRP-gamma (Montavon et al. 2019), generalised to inputs of both signs as in
    Zennit: positive outputs favour the contributions of their own sign by
    ``w + gamma w+`` (and ``w + gamma w-`` for negative inputs), negative outputs the
    reverse. ``gamma`` -> infinity tends to z+."""

    name = "gamma"
    needs_weights = True

    def __init__(self, gamma: float = 0.25):
        self.gamma = _number("gamma", gamma, "Gamma")

    def _params(self):
        return {"gamma": self.gamma}

    @property
    def label(self) -> str:
        return f"gamma ({self.gamma:g})"

    def apply(self, layer, x, z):
        g, w, b = self.gamma, layer.weight, layer.bias
        w_up, w_down = w + g * w.clamp(min=0), w + g * w.clamp(max=0)
        b_up = None if b is None else b + g * b.clamp(min=0)
        b_down = None if b is None else b + g * b.clamp(max=0)
        xp = x.clamp(min=0)
        up, down = layer(xp, w_up, b_up), layer(xp, w_down, b_down)
        if _has_negative(x):
            xn = x.clamp(max=0)
            up, down = up + layer(xn, w_down), down + layer(xn, w_up)
        zd = z.detach()
        carrier = (up * ((zd > 0) * zd / stabilize(up.detach())) +
                   down * ((zd < 0) * zd / stabilize(down.detach())))
        return with_gradient_of(z, carrier)


class AlphaBeta(Rule):
    """LRP-alpha-beta (Bach et al. 2015): positive contributions ``(x w)+`` get ``alpha``
    times their share, negative ones ``beta`` times theirs, subtracted;
    ``alpha - beta = 1`` keeps the total. Common: ``AlphaBeta(2, 1)``,
    ``AlphaBeta(1, 0)`` (= z+)."""

    name = "alpha_beta"
    needs_weights = True

    def __init__(self, alpha: float = 2.0, beta: float = 1.0):
        self.alpha = _number("alpha", alpha, "AlphaBeta")
        self.beta = _number("beta", beta, "AlphaBeta")
        if abs(self.alpha - self.beta - 1.0) > 1e-12:
            raise InterpError(f"AlphaBeta: alpha - beta must be 1 (so relevance is conserved); got "
                              f"alpha={alpha!r}, beta={beta!r}")

    def _params(self):
        return {"alpha": self.alpha, "beta": self.beta}

    @property
    def label(self) -> str:
        return f"alpha{self.alpha:g}-beta{self.beta:g}"

    def _parts(self, layer, x):
        w, b = layer.weight, layer.bias
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        if _has_negative(x):
            xp, xn = x.clamp(min=0), x.clamp(max=0)
            pos = layer(xp, wp, _pos(b)) + layer(xn, wn)
            neg = layer(xp, wn, _neg(b)) + layer(xn, wp) if self.beta else None
        else:  # e.g. after a ReLU: the parts of negative inputs are zero
            pos = layer(x, wp, _pos(b))
            neg = layer(x, wn, _neg(b)) if self.beta else None
        return pos, neg

    def apply(self, layer, x, z):
        pos, neg = self._parts(layer, x)
        zd = z.detach()
        # pos >= 0 and neg <= 0 by construction, so the stabiliser's sign is known; where a
        # part is 0 every contribution to it is 0, so its (finite) ratio there is irrelevant
        k_pos = pos.detach() + STABILIZER
        torch.div(zd, k_pos, out=k_pos)  # into the same memory: one pass and one allocation fewer (measured 5%)
        if neg is None:
            return redirected(z, pos, k_pos if self.alpha == 1 else self.alpha * k_pos)
        carrier = self.alpha * pos * k_pos - self.beta * neg * (zd / (neg.detach() - STABILIZER))
        return with_gradient_of(z, carrier)


class ZPlus(AlphaBeta):
    """LRP-z+ (Montavon et al. 2017): relevance only along positive contributions,
    alpha-beta with alpha=1, beta=0."""

    name = "zplus"

    def __init__(self):
        super().__init__(1.0, 0.0)

    def _params(self):
        return {}

    @property
    def label(self) -> str:
        return "z+"


class _DirectRule(Rule):
    """An input-layer rule: relevance ``sum_k grad_k * input_k`` of modified inputs."""

    direct = True
    needs_weights = True

    def apply(self, layer, x, z):  # the engine handles direct rules itself
        raise RuntimeError("direct rules are applied by the engine")


class Flat(_DirectRule):
    """Flat (Lapuschkin et al. 2019): the output's relevance spread evenly over its
    receptive field, whatever the input and weights; for the first layer, where
    pixel values say little about relevance."""

    name = "flat"

    def relevance(self, layer, x, r_out):
        w = layer.weight
        if isinstance(layer.module, nn.Linear):  # every output sees all n inputs
            share = r_out.sum(-1, keepdim=True) / (w.shape[1] + STABILIZER)
            return share.expand_as(x).clone()
        m = layer.module
        if getattr(m, "groups", 1) == 1 and not isinstance(m, nn.modules.conv._ConvTransposeNd):
            # all output channels have the same all-ones kernel: one output channel does for all
            ones_w = torch.ones((1,) + tuple(w.shape[1:]), dtype=w.dtype, device=w.device)
            # the count is the same for every output channel: sum the channels first, divide once (batch, 1, ...)
            v = r_out.sum(1, keepdim=True).div_(self._count(layer, x, ones_w) + STABILIZER)
            transposed = _CONV_INPUT.get(type(m)) if m.padding_mode == "zeros" and not isinstance(m.padding, str) \
                else None
            kernel = tuple(w.shape[2:])
            if transposed is not None and set(m.stride) == {1} and set(m.dilation) == {1} \
                    and all(p <= k - 1 for p, k in zip(m.padding, kernel)):
                # stride 1: the transposed all-ones convolution is a plain one (a box sum) with the
                # complementary padding, many times faster than conv_transpose on one channel
                box = torch.ones((x.shape[1], 1) + kernel, dtype=w.dtype, device=w.device)
                conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(kernel)]
                return conv(v, box, None, 1, [k - 1 - p for p, k in zip(m.padding, kernel)])
            if transposed is not None:  # the convolution's input gradient, without the autograd engine
                return transposed(x.shape, ones_w, v, m.stride, m.padding, m.dilation, 1)
            with torch.enable_grad():
                u = torch.ones_like(x).requires_grad_(True)
                return torch.autograd.grad(layer(u, ones_w), u, v)[0]
        with torch.enable_grad():
            ones = torch.ones_like(x).requires_grad_(True)
            z = layer(ones, torch.ones_like(w))
            return torch.autograd.grad(z, ones, r_out / stabilize(z.detach()))[0]


    _counts: dict = {}  # receptive-field sizes by layer geometry and input shape (they depend on nothing else)

    @classmethod
    def _count(cls, layer, x, ones_w) -> torch.Tensor:
        """How many inputs each output position sees (padding excluded): (1, 1, positions...)."""
        m = layer.module
        key = (type(m), tuple(ones_w.shape), m.stride, m.padding, m.dilation, m.padding_mode, tuple(x.shape[1:]),
               x.dtype, x.device)
        if key not in cls._counts:
            if len(cls._counts) > 64:
                cls._counts.clear()
            with torch.no_grad():
                ones = torch.ones((1,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
                cls._counts[key] = layer(ones, ones_w)
        return cls._counts[key]


_CONV_INPUT = {nn.Conv1d: torch.nn.grad.conv1d_input, nn.Conv2d: torch.nn.grad.conv2d_input,
               nn.Conv3d: torch.nn.grad.conv3d_input}


class WSquare(_DirectRule):
    """w^2 (Montavon et al. 2017): relevance in proportion to the squared weights, for
    first layers whose inputs are unbounded (the bias squared joins the denominator, as
    in Zennit)."""

    name = "wsquare"

    @property
    def label(self) -> str:
        return "w²"

    def relevance(self, layer, x, r_out):
        with torch.enable_grad():
            ones = torch.ones_like(x).requires_grad_(True)
            b = None if layer.bias is None else layer.bias ** 2
            z = layer(ones, layer.weight ** 2, b)
            return torch.autograd.grad(z, ones, r_out / stabilize(z.detach()))[0]


class ZBox(_DirectRule):
    """z^B (Montavon et al. 2017): for a first layer whose inputs lie in a box
    ``[low, high]`` (e.g. pixels in [0, 1]). ``low``/``high``: numbers, or tensors that
    broadcast to one sample (``(C, 1, 1)``) or to the batch (``(1, C, 1, 1)``, as Zennit
    takes them); ``None`` takes each sample's own min and max (so a sample's relevance
    never depends on the others in the batch)."""

    name = "zbox"

    def __init__(self, low: float | torch.Tensor | None = None, high: float | torch.Tensor | None = None):
        for name, v in (("low", low), ("high", high)):
            if v is None:
                continue
            if isinstance(v, torch.Tensor):
                if not v.is_floating_point() or not bool(torch.isfinite(v).all()):
                    raise InterpError(f"ZBox: {name} must hold finite float values")
            else:
                _number(name, v, "ZBox", minimum=-math.inf)
        if low is not None and high is not None:
            try:
                above = bool((torch.as_tensor(low) > torch.as_tensor(high)).any())
            except RuntimeError:
                raise InterpError(f"ZBox: low of shape {tuple(torch.as_tensor(low).shape)} and high of shape "
                                  f"{tuple(torch.as_tensor(high).shape)} do not broadcast together") from None
            if above:
                raise InterpError(f"ZBox: low={_show(low)} is above high={_show(high)}; expected low <= high")
        self.low, self.high = low, high

    def _params(self):
        return {"low": _show(self.low), "high": _show(self.high)}

    @property
    def label(self) -> str:
        if self.low is None and self.high is None:
            return "z^B (each sample's min..max)"
        if isinstance(self.low, torch.Tensor) or isinstance(self.high, torch.Tensor):
            return "z^B (given bounds)"
        return f"z^B ({self._params()['low']}..{self._params()['high']})"

    def bounds(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``low`` and ``high`` expanded to ``x`` (batch, ...)."""
        def bound(v, fallback):
            if v is None:
                return fallback.reshape((-1,) + (1,) * (x.ndim - 1)).expand_as(x)
            t = torch.as_tensor(v, dtype=x.dtype, device=x.device)
            try:
                if t.ndim == x.ndim:  # batch-shaped, e.g. (1, C, 1, 1)
                    return torch.broadcast_to(t, x.shape)
                return torch.broadcast_to(t, x.shape[1:]).expand_as(x)
            except RuntimeError:
                raise InterpError(f"ZBox: bound of shape {tuple(t.shape)} does not broadcast to the layer "
                                  f"input {tuple(x.shape)}") from None
        flat = x.detach().reshape(len(x), -1)
        return bound(self.low, flat.min(1).values), bound(self.high, flat.max(1).values)

    def relevance(self, layer, x, r_out):
        low, high = self.bounds(x)
        w, b = layer.weight, layer.bias
        with torch.enable_grad():
            xs = [t.detach().clone().requires_grad_(True) for t in (x, low, high)]
            z0 = layer(xs[0], w, b)
            z1 = layer(xs[1], w.clamp(min=0), _pos(b))
            z2 = layer(xs[2], w.clamp(max=0), _neg(b))
            v = r_out / stabilize((z0 - z1 - z2).detach())
            g = torch.autograd.grad((z0, z1, z2), xs, (v, v, v))
        return xs[0].detach() * g[0] - xs[1].detach() * g[1] - xs[2].detach() * g[2]


def _show(v) -> str:
    return repr(v) if not isinstance(v, torch.Tensor) else f"tensor{tuple(v.shape)}"


class Pass(Rule):
    """Pass-through for element-wise activations: ``R_in = R_out`` (relevance is not
    changed by a monotone element-wise function; AttnLRP's identity rule). For ReLU and
    LeakyReLU the gradient does exactly this, at no cost."""

    name = "pass"

    def apply(self, layer, x, z):
        if isinstance(layer.module, GRADIENT_IS_PASS):
            return None
        if z.shape != x.shape:
            raise InterpError(f"{type(layer.module).__name__} changes the shape {tuple(x.shape)} to {tuple(z.shape)}, "
                              "so it is not an element-wise activation, and the pass-through rule does not apply; "
                              f"give it a rule (with_rules({{{type(layer.module).__name__}: ...}}))")
        return pass_through(x, z)


class HeldConstant(Rule):
    """The output is treated as a constant: no relevance flows into the module's input.
    For attention weights (softmax), whose values weigh the value vectors like weights
    of a linear layer (Ali et al. 2022, "CP-LRP")."""

    name = "constant"

    @property
    def label(self) -> str:
        return "held constant"

    def apply(self, layer, x, z):
        return z.detach()


class FrozenScale(Rule):
    """Normalisation with its scale held constant (LayerNorm, RMSNorm; Ali et al. 2022,
    Achtibat et al. 2024): ``(x - mean) / std`` with ``std`` a constant is linear, so
    relevance follows LRP-0 through centring and scaling, the bias absorbing its share.
    An RMS norm (no centring, no bias) is then an element-wise scaling, which passes
    relevance through unchanged. Norm classes of other libraries (``LlamaRMSNorm``,
    ``T5LayerNorm``, a ``(1 + weight)`` Gemma norm) are recognised by what they compute:
    their output is checked against the layer-norm and RMS-norm formulas on the call,
    and a norm that is neither is refused, named."""

    name = "frozen_scale"

    @property
    def label(self) -> str:
        return "scale held constant"

    def apply(self, layer, x, z):
        m = layer.module
        if type(m) is nn.LayerNorm:  # a subclass may normalise other axes (channels first): checked below
            return frozen_layer_norm(x, z, len(m.normalized_shape), m.weight, m.eps)
        if hasattr(nn, "RMSNorm") and type(m) is nn.RMSNorm:
            eps = m.eps if m.eps is not None else torch.finfo(x.dtype).eps
            y = x * (x.detach().pow(2).mean(tuple(range(-len(m.normalized_shape), 0)), keepdim=True) + eps).rsqrt()
            return with_gradient_of(z, y * m.weight.detach() if m.weight is not None else y)
        return _duck_norm(m, x, z)


def layer_norm_frozen(x: torch.Tensor, dims: int, weight, bias, eps: float) -> torch.Tensor:
    """A layer norm of ``x`` over its last ``dims`` axes, linear in ``x``: its scale held
    constant, its weight and bias constants."""
    axes = tuple(range(-dims, 0))
    centred = x - x.mean(axes, keepdim=True)
    y = centred * (centred.detach().pow(2).mean(axes, keepdim=True) + eps).rsqrt()
    if weight is not None:
        y = y * weight.detach()
    if bias is not None:
        y = y + bias.detach()
    return y


class _FrozenScaleNorm(torch.autograd.Function):
    """The value ``z`` of a layer norm of ``x``; the gradient of its linear twin, with the
    scale ``s * weight`` a constant: ``t - mean(t)`` over the normalised axes, ``t = g * s * weight``
    (one node in place of the eight of the twin written out)."""

    @staticmethod
    def forward(ctx, x, z, scale, axes):
        ctx.save_for_backward(scale)
        ctx.axes = axes
        return z.clone()  # a tensor of its own: the forward may write into it in place

    @staticmethod
    def backward(ctx, grad):
        scale, = ctx.saved_tensors
        t = grad * scale
        return t - t.mean(ctx.axes, keepdim=True), None, None, None


def frozen_layer_norm(x: torch.Tensor, z: torch.Tensor, dims: int, weight, eps: float) -> torch.Tensor:
    """``z`` (a layer norm of ``x`` over its last ``dims`` axes) with the gradient of the layer
    norm with its scale held constant: centring, then a constant scaling (the bias absorbs)."""
    axes = tuple(range(-dims, 0))
    xd = x.detach()
    with torch.no_grad():  # one kernel for 1 / std, where var() and rsqrt() take several times longer (measured)
        scale = torch.native_layer_norm(xd, xd.shape[-dims:], None, None, eps)[2]
    if weight is not None:
        scale = scale * weight.detach()
    return _FrozenScaleNorm.apply(x, z.detach(), scale.expand_as(xd), axes)


def _layer_norm(x, dims, weight, bias, eps):
    with torch.no_grad():
        return layer_norm_frozen(x, dims, weight, bias, eps)


def _duck_norm(m: nn.Module, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """A norm module of another library, by what it computes on this call."""
    eps = next((float(getattr(m, a)) for a in ("eps", "variance_epsilon", "epsilon")
                if isinstance(getattr(m, a, None), (int, float))), 1e-6)
    weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
    weight = weight if isinstance(weight, torch.Tensor) else None
    bias = bias if isinstance(bias, torch.Tensor) else None
    shape = getattr(m, "normalized_shape", None)
    dims = len(shape) if isinstance(shape, (tuple, list)) else weight.ndim if weight is not None else 1
    zd = z.detach()
    tol = 1e-4 * max(1.0, float(zd.abs().max())) if zd.numel() else 0.0

    def same(make):
        try:  # a norm over other axes than the last (channels first) does not even broadcast
            y = make()
        except RuntimeError:
            return False
        return y.shape == zd.shape and float((y.detach().float() - zd.float()).abs().max()) <= tol

    if z.shape == x.shape and bias is None:
        axes = tuple(range(-dims, 0))
        rms = x.detach() * (x.detach().float().pow(2).mean(axes, keepdim=True) + eps).rsqrt().to(x.dtype)
        scales = [None] if weight is None else [weight.detach(), 1 + weight.detach()]
        if any(same(lambda w=w: rms if w is None else rms * w) for w in scales):
            return pass_through(x, z)  # an element-wise scaling: relevance passes through
    if z.shape == x.shape and same(lambda: _layer_norm(x, dims, weight, bias, eps)):
        return frozen_layer_norm(x, z, dims, weight, eps)
    raise InterpError(f"{type(m).__name__} is taken for a normalisation layer by its name, but computes neither a "
                      "layer norm nor an RMS norm of its input on this call; give it a rule in the composite "
                      f"(with_rules({{{type(m).__name__}: ...}}))")


class SoftmaxRule(Rule):
    """AttnLRP's softmax rule (Achtibat et al. 2024, Proposition 3.1):
    ``R_i = x_i (R'_i - s_i Σ_j R'_j)``, which is the input times the softmax's own
    gradient, so it needs no hook; what it does not pass on (the bias-like term) is
    absorbed, and shows as the layer's ``absorbed``."""

    name = "attnlrp_softmax"

    @property
    def label(self) -> str:
        return "AttnLRP softmax"

    def apply(self, layer, x, z):
        return None


class Positions(Rule):
    """A module that turns positions into constants (a rotary embedding's ``cos``/``sin``):
    no signal passes through it, and attention multiplies its output in, which is linear."""

    name = "positions"

    @property
    def label(self) -> str:
        return "position constants"

    def apply(self, layer, x, z):
        return None


class WinnerTakeAll(Rule):
    """Max pooling: all relevance to the input that won (the gradient of max), the usual
    choice (Montavon et al. 2019 also discuss treating it as sum pooling; winner-take-all
    keeps relevance where the network looked)."""

    name = "winner_take_all"

    @property
    def label(self) -> str:
        return "winner-take-all"

    def apply(self, layer, x, z):
        return None


class Gradient(Rule):
    """The plain gradient, for layers where it already is LRP-0: reshapes, identity,
    dropout in eval mode, a batch-norm left as a diagonal affine map."""

    name = "gradient"

    @property
    def label(self) -> str:
        return "LRP-0 (gradient)"

    def apply(self, layer, x, z):
        return None


GRADIENT_IS_PASS = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.Identity)

# rules for weighted layers by name, with their usual parameters: what a user (or the
# dashboard's per-layer override) picks from
WEIGHTED_RULES: dict[str, Callable[[], Rule]] = {
    "lrp0": Zero,
    "epsilon": lambda: Epsilon(0.25),
    "gamma": lambda: Gamma(0.25),
    "zplus": ZPlus,
    "alpha2_beta1": lambda: AlphaBeta(2.0, 1.0),
    "flat": Flat,
    "wsquare": WSquare,
    "zbox": ZBox,
}


def named(name: str) -> Rule:
    """A rule for weighted layers from its name (see :data:`WEIGHTED_RULES`), with its usual
    parameters (epsilon 0.25, gamma 0.25, alpha 2 / beta 1, z^B over the input's range)."""
    if not isinstance(name, str) or name not in WEIGHTED_RULES:
        raise UnknownNameError("LRP rule", name, WEIGHTED_RULES)
    return WEIGHTED_RULES[name]()


__all__ = ["Rule", "Layer", "layer_of", "stabilize", "pass_through", "with_gradient_of", "Epsilon", "Zero",
           "Norm", "Gamma", "AlphaBeta", "ZPlus", "Flat", "WSquare", "ZBox", "Pass", "HeldConstant",
           "FrozenScale", "layer_norm_frozen", "frozen_layer_norm", "SoftmaxRule", "Positions", "WinnerTakeAll",
           "Gradient", "WEIGHTED_RULES", "named"]
