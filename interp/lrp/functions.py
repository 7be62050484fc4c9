"""Rules for operations a forward computes as functions, not modules: attention's
``softmax`` and ``matmul``, ``F.scaled_dot_product_attention``, gated MLPs' element-wise
products, ``F.gelu``/``F.silu``/``torch.tanh`` called as functions, normalisation written
out (``x * torch.rsqrt(var + eps)``, ``F.layer_norm``, ``F.rms_norm``), rotary position
embeddings.

    rules = FunctionRules(softmax="attnlrp")       # what a composite says (Composite.functions)
    with FunctionMode(rules, tap=...):             # for the calling thread, for one LRP run
        model(x)

The rules are AttnLRP's (Achtibat et al., ICML 2024), written for relevance carried as a
modified gradient (``R = a * c`` at every tensor, see :mod:`interp.lrp.rules`), as lxt's
"efficient" implementation writes them:

- **softmax**: AttnLRP's rule ``R_i = x_i (R_i' - s_i Σ_j R_j')`` is ``x * gradient`` of the
  softmax itself, so it needs nothing but to be let through (``softmax="attnlrp"``); CP-LRP
  (Ali et al. 2022) holds the attention weights constant instead (``softmax="constant"``,
  the output detached, so queries and keys get no relevance);
- **a product of n signals** (``a * b``, ``a @ b``, ``bmm``, ``einsum``; one of them held
  constant where a rule says so): the uniform rule, each factor getting ``1/n`` of the
  relevance, which for a product homogeneous of degree n is the gradient divided by n
  (Euler); a product with one signal is linear and needs nothing. CP-LRP (as lxt writes
  it) holds a gated MLP's gate constant instead (``gate="constant"``): the factor that
  comes out of an activation function;
- **element-wise non-linearities** (``F.gelu``, ``F.silu``, ``torch.tanh``, ...): the
  identity rule ``R_in = R_out``;
- **normalisation**: the scale held constant: ``torch.rsqrt`` of a signal and the divisor of
  a division of two signals are constants, ``F.layer_norm`` is its centring times a
  constant scale, ``F.rms_norm`` an element-wise scaling;
- **F.scaled_dot_product_attention**: as its parts (``q @ k^T * scale + mask``, softmax,
  ``weights @ v``) would pass relevance, each with its rule, through the fused kernel
  itself: the gradient divided at its inputs as lxt does (1/4 to queries and keys, 1/2
  to values under AttnLRP; queries and keys held constant under CP-LRP);
- **rotary position embeddings**: ``q * cos + rotate_half(q) * sin`` with ``cos``/``sin``
  computed from positions only, a product with constants: linear, nothing to do.

Why ours (a ``TorchFunctionMode``), not lxt's patches: lxt replaces the forward code of
each model family it knows (Llama's MLP, BERT's module), module-wide and for every
thread; a mode applies the rule to the operation wherever any model calls it, for the
calling thread only, and is gone when the call returns. Operations inside a module that
has a rule of its own are left to that rule (``depth``). Anything else non-linear that
relevance would cross is still refused by the engine's graph audit, named.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..errors import InterpError, UnknownNameError
from .rules import frozen_layer_norm, pass_through

SOFTMAX_RULES = {"attnlrp": "AttnLRP softmax (x · gradient)", "constant": "held constant (CP-LRP)"}
GATE_RULES = {"uniform": "uniform (half each)", "constant": "gate held constant (CP-LRP)"}


@dataclass(frozen=True)
class FunctionRules:
    """What a composite does with operations computed as functions (see the module
    docstring). ``softmax``: ``"attnlrp"`` or ``"constant"``; ``gate``: the rule of an
    element-wise product whose one factor comes out of an activation function,
    ``"uniform"`` or ``"constant"`` (the gate held constant)."""

    softmax: str = "constant"
    gate: str = "uniform"

    def __post_init__(self):
        if self.softmax not in SOFTMAX_RULES:
            raise UnknownNameError("softmax rule", self.softmax, SOFTMAX_RULES)
        if self.gate not in GATE_RULES:
            raise UnknownNameError("gate rule", self.gate, GATE_RULES)

    def label(self, kind: str) -> str:
        return {"softmax": SOFTMAX_RULES[self.softmax], "product": "uniform (1/n each)", "gate": GATE_RULES[self.gate],
                "activation": "identity", "normalization": "scale held constant", "scale": "held constant",
                "attention": f"as its parts: products uniform, softmax {SOFTMAX_RULES[self.softmax]}"}[kind]


class _Divide(torch.autograd.Function):
    """The value of ``x``; the gradient divided by ``n`` (the uniform rule of a product of n signals)."""

    @staticmethod
    def forward(ctx, x, n):
        ctx.n = n
        return x.clone()  # a tensor of its own: the forward may write into it in place (scores += bias)

    @staticmethod
    def backward(ctx, grad):
        return grad / ctx.n, None


def uniform(out: Tensor, n: int) -> Tensor:
    """``out`` (a product of ``n`` signals) with each factor's relevance ``1/n`` of the output's."""
    return _Divide.apply(out, n) if n > 1 else out


# our own autograd nodes: the engine's graph audit lets relevance cross them
OWN_NODES = frozenset({"_Divide", "_FrozenScaleNorm"})


def _through_views(t: Tensor) -> Tensor | None:
    """The parameter ``t`` is (or is a view, slice or transpose of), if any."""
    if isinstance(t, nn.Parameter):
        return t
    node = t.grad_fn
    while node is not None:
        name = type(node).__name__
        if name == "AccumulateGrad":
            v = node.variable
            return v if isinstance(v, nn.Parameter) else None
        if not name.startswith(_VIEW_NODES):
            return None
        node = node.next_functions[0][0] if node.next_functions else None
    return None


_VIEW_NODES = ("View", "UnsafeView", "Reshape", "Transpose", "Permute", "T", "Alias", "Unsqueeze", "Squeeze",
               "Slice", "Select", "Expand", "Split", "ToCopy", "Clone")


def depends_on_input(node, memo: dict) -> bool:
    """Whether the autograd node ``node`` reaches a leaf that is not a parameter (the analysed
    input): a tensor computed from parameters only (``1 + w``, ``w / 4``) is a constant of
    the model, not a signal. ``memo`` keeps the answer per node for one run."""
    if node is None:
        return False
    stack = [(node, False)]
    while stack:  # iterative post-order: graphs are deep
        n, expanded = stack.pop()
        if n in memo:
            continue
        if type(n).__name__ == "AccumulateGrad":
            memo[n] = not isinstance(n.variable, nn.Parameter)
            continue
        nexts = [f for f, _ in n.next_functions if f is not None]
        if expanded:
            memo[n] = any(memo.get(f, False) for f in nexts)
        else:
            stack.append((n, True))
            stack.extend((f, False) for f in nexts if f not in memo)
    return memo[node]


def _signal(t, memo: dict | None = None) -> bool:
    """A tensor relevance flows through: on the graph and computed from the input (not from
    parameters only)."""
    if not (isinstance(t, Tensor) and t.requires_grad) or isinstance(t, nn.Parameter):
        return False
    if t.grad_fn is None:
        return True  # a leaf that is not a parameter: the input itself
    return depends_on_input(t.grad_fn, {} if memo is None else memo)


def _functions(*names: str) -> set:
    out = set()
    for name in names:
        owner, _, attr = name.rpartition(".")
        obj = {"torch": torch, "F": F, "Tensor": Tensor}[owner]
        if hasattr(obj, attr):
            out.add(getattr(obj, attr))
    return out


_ACTIVATIONS = ("gelu", "silu", "tanh", "sigmoid", "elu", "selu", "celu", "softplus", "mish", "hardswish",
                "hardsigmoid", "hardtanh", "relu6", "softsign", "logsigmoid", "tanhshrink", "glu_none")
KINDS: dict[Callable, str] = {}
for _f in _functions("F.softmax", "torch.softmax", "Tensor.softmax", "torch._softmax"):
    KINDS[_f] = "softmax"
for _f in _functions("torch.matmul", "Tensor.matmul", "Tensor.__matmul__", "torch.bmm", "Tensor.bmm", "torch.mm",
                     "Tensor.mm"):
    KINDS[_f] = "matmul"
for _f in _functions("torch.mul", "Tensor.mul", "Tensor.__mul__", "Tensor.__rmul__", "torch.multiply",
                     "Tensor.multiply"):
    KINDS[_f] = "mul"
KINDS.update({f: "einsum" for f in _functions("torch.einsum")})
KINDS.update({f: "activation" for f in _functions(*(f"{o}.{a}" for o in ("F", "torch", "Tensor")
                                                  for a in _ACTIVATIONS))})
KINDS.update({f: "layer_norm" for f in _functions("F.layer_norm", "torch.layer_norm")})
KINDS.update({f: "rms_norm" for f in _functions("F.rms_norm", "torch.rms_norm")})
KINDS.update({f: "scale" for f in _functions("torch.rsqrt", "Tensor.rsqrt", "torch.sqrt", "Tensor.sqrt", "torch.std",
                                             "Tensor.std", "torch.var", "Tensor.var")})
KINDS.update({f: "div" for f in _functions("torch.div", "Tensor.div", "Tensor.__truediv__", "torch.true_divide",
                                           "Tensor.true_divide")})
KINDS.update({f: "sdpa" for f in _functions("F.scaled_dot_product_attention")})
KINDS.update({f: "add" for f in _functions("torch.add", "Tensor.add", "Tensor.__add__", "Tensor.__radd__")})
KINDS.update({f: "expand" for f in _functions("Tensor.expand", "Tensor.expand_as", "Tensor.repeat")})
del _f

Tap = Callable[[str, Tensor | None, Tensor, Tensor | None], None]
_ACTIVE = threading.local()


def current() -> FunctionMode | None:
    """The :class:`FunctionMode` of this thread's LRP run, if one is on (code of ours, such
    as the attention canonizer, applies its rules through it)."""
    return getattr(_ACTIVE, "mode", None)


class FunctionMode(TorchFunctionMode):
    """Applies :class:`FunctionRules` to the operations the forward computes as functions,
    outside modules with rules of their own (``depth`` counts those being inside: the
    engine's hooks raise and lower it). ``tap(kind, input, output, value)`` is told of
    calls the engine records as layers: a softmax under AttnLRP and a layer norm (they
    absorb relevance), and constants added outside modules (a parameter added in or
    expanded to the batch, ``value``: its part of ``output``). ``used``: per kind, the
    number of calls a rule was applied to."""

    def __init__(self, rules: FunctionRules, tap: Tap | None = None):
        super().__init__()
        self.rules, self.tap = rules, tap
        self.depth = 0
        self.used: dict[str, int] = {}
        self.where: Callable[[], str] | None = None  # where the forward is (a module path), for `calls`
        self.calls: dict[tuple[str, str], int] = {}  # (where, kind) -> calls given a rule
        self.internal: set = set()  # autograd nodes made by the rules: the engine's audit lets relevance cross them
        self._gates: dict[int, Tensor] = {}  # outputs of activation functions (kept alive: ids stay theirs)
        self._constants: dict[int, tuple[str, Tensor]] = {}  # constants shared by the batch, by id: (name, tensor)
        self._pending: list[Tensor] = []  # the attention inputs to tap, between attention_inputs and the call
        self._memo: dict = {}  # autograd node -> whether it depends on the input (for this run)
        self._scales: dict[int, Tensor] = {}  # 1/std, std of a signal: held constant where they scale one

    def _sig(self, t) -> bool:
        return _signal(t, self._memo)

    def constant(self, name: str, t: Tensor) -> None:
        """``t`` is a constant the batch shares (a position embedding of shape (1, T, D)): where
        it is added to a signal, its share of the sum is tapped per sample as ``name``."""
        self._constants[id(t)] = (name, t)

    def __enter__(self):
        self._outer = current()
        _ACTIVE.mode = self
        return super().__enter__()

    def __exit__(self, *exc):
        _ACTIVE.mode = self._outer
        return super().__exit__(*exc)

    def product(self, func, *operands: Tensor) -> Tensor:
        """``func(*operands)`` (a matmul) under the product rule."""
        return self._product(func, operands, {}, list(operands), False)

    def gate(self, t: Tensor) -> None:
        """``t`` is an activation's output (a gate, for ``gate="constant"``)."""
        if self.rules.gate == "constant":
            self._gates[id(t)] = t

    def _count(self, kind: str) -> None:
        self.used[kind] = self.used.get(kind, 0) + 1
        if self.where is not None:
            key = (self.where(), kind)
            self.calls[key] = self.calls.get(key, 0) + 1

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = KINDS.get(func)
        if kind is None or self.depth or not torch.is_grad_enabled():
            return func(*args, **kwargs)
        return getattr(self, "_" + kind)(func, args, kwargs)

    # -- the rules

    def _softmax(self, func, args, kwargs):
        x = args[0]
        if not self._sig(x):
            return func(*args, **kwargs)
        self._count("softmax")
        return self.softmax(lambda t: func(t, *args[1:], **kwargs), x)

    def softmax(self, fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        if self.rules.softmax == "constant":
            return fn(x).detach()
        alias = x[...]  # its own tensor: the gradient there is what the softmax passed back
        out = fn(alias)
        self._governed(out, [alias])
        if self.tap is not None:
            self.tap("softmax", alias, out, None)
        return out

    def _product(self, func, args, kwargs, operands: list, elementwise: bool):
        signals = [i for i, t in enumerate(operands) if self._sig(t)]
        if len(signals) < 2:
            return func(*args, **kwargs)
        scales = [i for i in signals if self._scales.get(id(operands[i])) is operands[i]]
        if elementwise and scales and len(scales) < len(signals):  # normalisation: its scale held constant
            self._count("scale")
            held = {id(operands[i]) for i in scales}
            args = tuple(a.detach() if isinstance(a, Tensor) and id(a) in held else a for a in args)
            return func(*args, **kwargs)
        if elementwise and self._gates:
            gates = [i for i in signals if id(operands[i]) in self._gates]
            if gates and len(gates) < len(signals):  # the gate held constant: the rest is linear in the signal
                self._count("gate")
                held = {id(operands[i]) for i in gates}
                args = tuple(a.detach() if isinstance(a, Tensor) and id(a) in held else a for a in args)
                return func(*args, **kwargs)
        self._count("product")
        out = func(*args, **kwargs)
        self._governed(out, [operands[i] for i in signals])
        return uniform(out, len(signals))

    def _governed(self, out: Tensor, operands: list) -> None:
        """The autograd nodes between ``operands`` and ``out``: a rule's, not a crossing."""
        stops = {t.grad_fn for t in operands if isinstance(t, Tensor)}
        stack = [out.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or node in stops or node in self.internal:
                continue
            self.internal.add(node)
            stack.extend(f for f, _ in node.next_functions if f is not None)

    def _matmul(self, func, args, kwargs):
        return self._product(func, args, kwargs, list(args[:2]), False)

    def _mul(self, func, args, kwargs):
        return self._product(func, args, kwargs, list(args[:2]), True)

    def _einsum(self, func, args, kwargs):
        operands = list(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) else list(args[1:])
        return self._product(func, args, kwargs, operands, False)

    def _activation(self, func, args, kwargs):
        x = args[0]
        if not self._sig(x):
            return func(*args, **kwargs)
        self._count("activation")
        out = pass_through(x, func(*args, **kwargs))
        self.gate(out)
        return out

    def _layer_norm(self, func, args, kwargs):
        x = args[0]
        if not self._sig(x):
            return func(*args, **kwargs)
        self._count("normalization")
        shape = args[1] if len(args) > 1 else kwargs["normalized_shape"]
        weight = args[2] if len(args) > 2 else kwargs.get("weight")
        eps = args[4] if len(args) > 4 else kwargs.get("eps", 1e-5)
        alias = x[...]
        z = func(alias, *args[1:], **kwargs)
        out = frozen_layer_norm(alias, z, len(shape) if not isinstance(shape, int) else 1, weight, eps)
        self._governed(out, [alias])
        if self.tap is not None:
            self.tap("layer_norm", alias, out, None)
        return out

    def _rms_norm(self, func, args, kwargs):
        x = args[0]
        if not self._sig(x):
            return func(*args, **kwargs)
        self._count("normalization")
        return pass_through(x, func(*args, **kwargs))

    def _scale(self, func, args, kwargs):
        """``rsqrt``, ``sqrt``, ``std``, ``var`` of a signal: a scale, held constant where it
        multiplies or divides a signal (normalisation written out); used otherwise, it is
        what it is, and the engine's audit refuses it."""
        out = func(*args, **kwargs)
        if isinstance(out, Tensor) and self._sig(args[0]):
            self._scales[id(out)] = out
        return out

    def _div(self, func, args, kwargs):
        if len(args) >= 2 and self._sig(args[0]) and self._sig(args[1]) \
                and self._scales.get(id(args[1])) is args[1]:
            self._count("scale")
            return func(args[0], args[1].detach(), *args[2:], **kwargs)
        return func(*args, **kwargs)

    def _sdpa(self, func, args, kwargs):
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        given = dict(zip(names, args), **kwargs)
        q, k, v = given["query"], given["key"], given["value"]
        if not any(self._sig(t) for t in (q, k, v)):
            return func(*args, **kwargs)
        if given.get("dropout_p", 0.0):
            raise InterpError(f"scaled_dot_product_attention runs with dropout_p={given['dropout_p']}: attention "
                              "dropout makes relevance random; call model.eval() first")
        self._count("attention")
        inputs = self.attention_inputs(q, k, v)
        given.update(inputs)
        out = func(**given)
        self._governed(out, list(inputs.values()))
        pending, self._pending = self._pending, []
        if self.tap is not None and pending:
            self.tap("attention", pending, out, None)
        return out

    def attention_inputs(self, q: Tensor, k: Tensor, v: Tensor) -> dict[str, Tensor]:
        """Queries, keys and values that make the fused ``scaled_dot_product_attention`` (its
        kernel kept: the values are the same) pass relevance as its parts would under these
        rules, as lxt does: ``softmax(q k^T) v`` is the uniform rule on both products around
        the softmax's rule, so values get 1/2 of the gradient and queries and keys 1/4
        (AttnLRP), or, with the weights held constant, values all of it and queries and keys
        none (CP-LRP). Tapped as one layer, whose ``absorbed`` is the softmax's."""
        signal = {name: self._sig(t) for name, t in (("query", q), ("key", k), ("value", v))}
        if self.rules.softmax == "constant":
            parts = {"query": q.detach(), "key": k.detach(), "value": v[...] if signal["value"] else v}
            shares = {"value": 1}
        else:
            parts = {name: t[...] if signal[name] else t for name, t in (("query", q), ("key", k), ("value", v))}
            # the uniform rule counts the signals of each product: q k^T, then weights v
            n_qk = signal["query"] + signal["key"]
            n_av = (n_qk > 0) + signal["value"]
            shares = {"query": n_av * n_qk, "key": n_av * n_qk, "value": n_av}
        taps = [parts[name] for name in ("query", "key", "value") if signal[name] and name in shares]
        if self.tap is not None:
            self._pending = taps
        return {name: uniform(t, shares[name]) if signal[name] and name in shares else t
                for name, t in parts.items()}

    # -- constants added outside modules (a position embedding, a class token): they absorb relevance

    def _add(self, func, args, kwargs):
        out = func(*args, **kwargs)
        if len(args) >= 1 and isinstance(out, Tensor) and any(
                isinstance(a, Tensor) and self._scales.get(id(a)) is a for a in args[:2]) \
                and not any(self._sig(a) and self._scales.get(id(a)) is not a for a in args[:2]):
            self._scales[id(out)] = out  # std + eps: still a scale
        if self.tap is not None and len(args) >= 2 and isinstance(out, Tensor) and out.requires_grad:
            a, b = args[:2]
            for t, other in ((a, b), (b, a)):
                if not (isinstance(t, Tensor) and t.requires_grad and self._sig(other)):
                    continue
                if id(t) in self._constants and self._constants[id(t)][1] is t:
                    self.tap(self._constants[id(t)][0], None, out, t.expand_as(out))
                elif _through_views(t) is not None:
                    self.tap("constant", None, out, t.expand_as(out))
        return out

    def _expand(self, func, args, kwargs):
        out = func(*args, **kwargs)
        if self.tap is not None and isinstance(args[0], nn.Parameter) and isinstance(out, Tensor) \
                and out.requires_grad:
            self.tap("constant", None, out, None)
        return out


__all__ = ["FunctionRules", "FunctionMode", "current", "uniform", "OWN_NODES", "KINDS",
           "SOFTMAX_RULES", "GATE_RULES"]
