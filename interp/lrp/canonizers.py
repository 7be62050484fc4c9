"""Canonizers: a model rewritten, for one call, into an equivalent that LRP rules fit.

- :class:`MergeBatchNorm`: a batch-norm (eval mode) folded into the Linear or Conv
  whose output it reads, so the layer's rule sees one affine map (Zennit's
  ``MergeBatchNorm``). Pairs are found by running the model once on one sample.
- :class:`UnrollRecurrent`: ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` replaced by an explicit
  step function whose signal projections (an LSTM's cell candidate, a GRU's new gate)
  are ``nn.Linear`` modules (so they get rules) and whose gates are held constant:
  they weigh the signal like weights, and all relevance follows the signal
  (signal-take-all, Arras et al. 2017).
- :class:`Attention`: ``nn.MultiheadAttention`` computed explicitly with the softmax
  weights held constant and the value projection as an ``nn.Linear`` (CP-LRP, Ali et
  al. 2022; AttnLRP, Achtibat et al. 2024).
- :class:`LayerActivation`: the activation function of ``nn.TransformerEncoderLayer``
  (F.gelu, not a module) given the pass-through rule of element-wise activations.

Residual adds need no canonizer here: relevance travels as a modified gradient
(see :mod:`interp.lrp.rules`), and an add passes it on in proportion to each input's
contribution. Nor do modules called several times: rules act per call.

Nothing is written into parameters or added to the model: canonizers add forward hooks
(through :func:`interp.modules.hooked`) or an instance ``forward``, both only for the
calling thread, and call modules of their own (kept beside the model, named under the
module they rewrite, e.g. ``lstm.input_l0``); ``undo`` records how to take each change
back. The engine checks, on the call's inputs, that
the canonized model computes what the original does.
"""

from __future__ import annotations

import math
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InterpError
from ..inplace import unwatched
from ..inputs import Inputs
from ..modules import hooked
from ..space import holds, reads_tokens
from . import rules as R
from .composites import WEIGHTED
from .functions import current

Undo = Callable[[], None]


class Canonizer:
    """Base: ``find`` lists the module paths it rewrites, ``apply`` rewrites them."""

    name = "canonizer"
    description = ""
    replaces_forward = False  # the modules it rewrites no longer call their children as modules

    def find(self, modules: dict[str, nn.Module], pairs: dict[str, str] | None) -> list[str]:
        raise NotImplementedError

    def unsupported(self, modules: dict[str, nn.Module]) -> dict[str, str]:
        """Modules of the kind this canonizer handles that it cannot rewrite, with why."""
        return {}

    def apply(self, modules: dict[str, nn.Module], paths: list[str], pairs: dict[str, str] | None,
              undo: list[Undo]) -> tuple[dict[str, tuple], dict[str, nn.Module]]:
        """Rewrite ``paths``, appending to ``undo`` what takes each change back (as it is
        made, so an error half-way still leaves a complete list). Returns ``{layer path:
        (weight, bias)}`` for layers whose rule must see other parameters than their own,
        and ``{path: module}`` of the modules it calls in the rewritten forward (kept out
        of the model: other threads never see them)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _replace_forward(module: nn.Module, forward) -> Undo:
    """``module.forward`` replaced for the calling thread (other threads, e.g. a server's,
    still run the original)."""
    had = "forward" in module.__dict__
    old = module.__dict__.get("forward")
    original = old if had else types.MethodType(type(module).forward, module)
    owner = threading.get_ident()

    ours = unwatched(forward)  # interp's own code: never the user's in-place writes

    def dispatch(*args, **kwargs):
        return (ours if threading.get_ident() == owner else original)(*args, **kwargs)

    dispatch.interp_own = True  # read by may_write_in_place: no user code runs here, nothing to scan
    module.__dict__["forward"] = dispatch

    def undo():
        if had:
            module.__dict__["forward"] = old
        else:
            module.__dict__.pop("forward", None)
    return undo


def _enter(context, undo: list[Undo]) -> None:
    """Enter a context manager now; its exit joins ``undo``."""
    context.__enter__()
    undo.append(lambda: context.__exit__(None, None, None))


class Linear(nn.Linear):
    """An nn.Linear over given weights (sharing their storage, not trainable), built
    without nn.Linear's initialisation, which would cost more than the call it serves
    (named Linear, as plans and figures show it)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        nn.Module.__init__(self)
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.weight = nn.Parameter(weight.detach(), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)


def _frozen_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """An nn.Linear sharing ``weight``/``bias`` storage (no copy), not trainable."""
    return Linear(weight, bias)


# ---------------------------------------------------------------------------- batch norm

class MergeBatchNorm(Canonizer):
    """Batch-norm folded into the Linear/Conv/ConvTranspose whose output it reads."""

    name = "merge_batchnorm"
    description = "batch-norm folded into the layer before it (one affine map for that layer's rule)"

    def find(self, modules, pairs):
        return sorted(pairs or {}, key=list(modules).index)

    def apply(self, modules, paths, pairs, undo):
        layers: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for bn_path in paths:
            bn, layer_path = modules[bn_path], pairs[bn_path]
            layer = modules[layer_path]
            weight, bias = _merged(layer, bn, layer_path, bn_path)
            layers[layer_path] = (weight, bias)
            lay = R.layer_of(layer, weight, bias)
            # the layer computes with the merged parameters (once: not its own, then the merged ones),
            # the batch-norm hands its input on; for the calling thread only
            undo.append(_replace_forward(layer, lambda x, lay=lay: lay(x, lay.weight, lay.bias)))
            undo.append(_replace_forward(bn, lambda x: x))
        return layers, {}


def _merged(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm, layer_path: str, bn_path: str):
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale + (bn.bias if bn.bias is not None else 0)
        w = layer.weight
        transposed = isinstance(layer, nn.modules.conv._ConvTransposeNd)
        out_dim = 1 if transposed else 0
        if transposed and layer.groups != 1:
            raise InterpError(f"cannot merge batch-norm {bn_path!r} into grouped {type(layer).__name__} "
                              f"{layer_path!r}")
        if w.shape[out_dim] != scale.numel():
            raise InterpError(f"batch-norm {bn_path!r} has {scale.numel()} features but {layer_path!r} gives "
                              f"{w.shape[out_dim]}")
        shape = [1] * w.ndim
        shape[out_dim] = -1
        weight = w * scale.reshape(shape)
        bias = shift + (layer.bias * scale if layer.bias is not None else 0)
    return weight.detach(), bias.detach()


@dataclass(frozen=True)
class Traced:
    """What :func:`trace` saw: batch-norm pairs, the layers reading the input, the modules
    called, each module's calls' input and output shapes, and the model's output."""

    pairs: dict[str, str]
    readers: list[str]
    called: set[str]
    shapes: dict[str, tuple[list, list]]
    output: object


def trace(model: nn.Module, modules: dict[str, nn.Module], x: Inputs) -> Traced:
    """Run the model once on the inputs ``x`` (copies of one sample are enough) and return, as a
    :class:`Traced`: ``{batch-norm path: path of the Linear/Conv whose output it reads}``,
    ``[paths of the weighted layers that read the input]``, ``{paths of the modules
    called}``, the shapes of each call, and the output. Reading the input means being given the
    input or a re-indexing of all its elements (a reshape, not a slice); the input of
    token models is the output of the embedding that reads the ids. A batch-norm stays
    unpaired (a diagonal affine map of its own) when it reads anything but a layer's
    output used by it alone (a sum, a pooled map, the output of a layer whose result also
    feeds a skip connection), or when the layer or the norm is called more than once."""
    norms = {id(m) for m in modules.values() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    inputs: list[torch.Tensor] = []
    produced: dict[int, tuple[str, torch.Tensor]] = {}
    pairs: dict[str, tuple[str, torch.Tensor]] = {}
    readers: list[str] = []
    calls: dict[str, int] = {}

    def reads_input(t) -> bool:
        return isinstance(t, torch.Tensor) and any(holds(t, i) for i in inputs)

    def on_layer(name, args, out):
        calls[name] = calls.get(name, 0) + 1
        if args and reads_input(args[0]) and name not in readers:
            readers.append(name)
        if isinstance(out, torch.Tensor):
            produced[id(out)] = (name, out)  # the tensor is kept alive, so its id stays its own

    def on_norm(name, args, _out):
        calls[name] = calls.get(name, 0) + 1
        src = produced.get(id(args[0])) if args else None
        if src is not None and src[1] is args[0]:
            pairs[name] = src

    def on_embedding(_name, args, out):
        for ids in tokens:
            read = reads_tokens(args[0] if args else None, out, ids, True)
            if read is not None and read[0].is_floating_point():
                inputs.append(read[0])  # the input of token models, on the graph
                return read[1]
        return None

    def on_other(name, _args, _out):
        calls[name] = calls.get(name, 0) + 1

    shapes: dict[str, tuple[list, list]] = {}

    def shaped(fn):
        def note(name, args, out):
            ins, outs = shapes.setdefault(name, ([], []))
            if args and isinstance(args[0], torch.Tensor):
                ins.append(tuple(args[0].shape))
            replaced = fn(name, args, out)
            final = out if replaced is None else replaced
            if isinstance(final, torch.Tensor):
                outs.append(tuple(final.shape))
            return replaced
        return note

    after = {}
    for name, m in modules.items():
        if isinstance(m, WEIGHTED):
            after[name] = shaped(on_layer)
        elif id(m) in norms:
            after[name] = shaped(on_norm)
        elif isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
            after[name] = shaped(on_embedding)
        else:
            after[name] = shaped(on_other)
    given = []
    tokens = []
    for t in x.tensors:
        if t.is_floating_point():
            t = t.detach().clone().requires_grad_(True)  # memory of its own: the caller's input is never written
            inputs.append(t)
        elif not (t.is_complex() or t.dtype == torch.bool):
            t = t.clone()
            tokens.append(t)
        given.append(t)
    with hooked(modules, after=after), torch.enable_grad():
        out = x.call(model, given)
    users = _users(out)
    used: dict[str, list[str]] = {}
    for bn, (layer, _) in pairs.items():
        used.setdefault(layer, []).append(bn)
    pairs = {bn: layer for bn, (layer, t) in pairs.items()
             if calls.get(bn) == 1 and calls.get(layer) == 1 and len(used[layer]) == 1
             and t.grad_fn is not None and users.get(t.grad_fn, 0) == 1}
    called = set(calls) | {n for n, m in modules.items() if isinstance(m, (nn.Embedding,)) and n in after}
    return Traced(pairs, readers, called, shapes, out)


def _users(output) -> dict:
    """How many operations use each autograd node's result, over the graph behind ``output``."""
    users: dict = {}
    stack = [t.grad_fn for t in torch.utils._pytree.tree_leaves(output)
             if isinstance(t, torch.Tensor) and t.grad_fn is not None]
    seen = set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for f, _ in node.next_functions:
            if f is not None:
                users[f] = users.get(f, 0) + 1
                stack.append(f)
    return users


# ---------------------------------------------------------------------------- recurrent layers

_GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}


class UnrollRecurrent(Canonizer):
    """nn.LSTM / nn.GRU / nn.RNN as an explicit step function with constant gates."""

    name = "unroll_recurrent"
    replaces_forward = True
    description = ("recurrent layer unrolled: the signal's input and hidden projections as nn.Linear, gates "
                   "held constant (signal-take-all, Arras et al. 2017)")

    def _kind(self, m):
        return next((t for t in _GATES if type(m) is t), None)

    def unsupported(self, modules):
        out = {}
        for n, m in modules.items():
            if self._kind(m) is None:
                if isinstance(m, nn.RNNBase):
                    out[n] = f"{type(m).__name__} is a recurrent layer of its own kind; only nn.LSTM, nn.GRU " \
                             "and nn.RNN are unrolled"
                continue
            if getattr(m, "proj_size", 0):
                out[n] = "nn.LSTM with proj_size > 0 is not unrolled"
            elif m.training and m.dropout > 0 and m.num_layers > 1:
                out[n] = "dropout between layers in train mode (call model.eval())"
            elif type(m) is nn.RNN and m.nonlinearity not in ("tanh", "relu"):
                out[n] = f"nonlinearity {m.nonlinearity!r}"
        return out

    def find(self, modules, pairs):
        bad = self.unsupported(modules)
        return [n for n, m in modules.items() if self._kind(m) is not None and n not in bad]

    def apply(self, modules, paths, pairs, undo):
        extra = {}
        for path in paths:
            m = modules[path]
            kind = self._kind(m)
            directions = 2 if m.bidirectional else 1
            cells = {}
            for layer in range(m.num_layers):
                for d in range(directions):
                    suffix = f"l{layer}" + ("_reverse" if d else "")
                    cell = _Cell(kind, m, suffix)
                    extra[f"{path}.input_{suffix}"] = cell.input
                    extra[f"{path}.hidden_{suffix}"] = cell.hidden
                    cells[(layer, d)] = cell
            undo.append(_replace_forward(m, _unrolled(m, kind, cells)))
        return {}, extra


class _Cell:
    """One layer and direction of a recurrent module, split into the part relevance flows
    through and the gates. ``input`` and ``hidden`` are nn.Linear modules (views of the
    module's weights) for the signal: an LSTM's cell candidate g, a GRU's new gate n, an
    RNN's whole pre-activation. The gates (LSTM i, f, o; GRU r, z) are computed without
    gradient: they weigh the signal, and get no relevance (signal-take-all). The backward
    pass then multiplies by H x H blocks, not the 4H x H of the whole projection."""

    def __init__(self, kind: type, m: nn.RNNBase, suffix: str):
        w_ih, w_hh = getattr(m, f"weight_ih_{suffix}"), getattr(m, f"weight_hh_{suffix}")
        b_ih, b_hh = getattr(m, f"bias_ih_{suffix}", None), getattr(m, f"bias_hh_{suffix}", None)
        h = m.hidden_size
        signal = {nn.LSTM: slice(2 * h, 3 * h), nn.GRU: slice(2 * h, 3 * h), nn.RNN: slice(0, h)}[kind]
        gates = {nn.LSTM: [slice(0, 2 * h), slice(3 * h, 4 * h)], nn.GRU: [slice(0, 2 * h)], nn.RNN: []}[kind]

        def rows(t, which):
            return None if t is None else t.detach()[which]

        def gate_rows(t):
            return None if t is None or not gates else torch.cat([t.detach()[g] for g in gates])

        self.kind = kind
        self.input = _frozen_linear(rows(w_ih, signal), rows(b_ih, signal))
        self.hidden = _frozen_linear(rows(w_hh, signal), rows(b_hh, signal))
        self.gate_ih, self.gate_bih = gate_rows(w_ih), gate_rows(b_ih)
        self.gate_hh, self.gate_bhh = gate_rows(w_hh), gate_rows(b_hh)

    def gates_of_input(self, x: torch.Tensor) -> torch.Tensor | None:
        """The input's part of every gate, all steps at once, without gradient."""
        if self.gate_ih is None:
            return None
        with torch.no_grad():
            return F.linear(x.detach(), self.gate_ih, self.gate_bih)


def _unrolled(m: nn.RNNBase, kind: type, cells: dict):
    hidden = m.hidden_size
    directions = 2 if m.bidirectional else 1

    def step(cell: _Cell, signal_x, gates_x, h, c):
        if kind is nn.LSTM:  # the gates from detached tensors: constants, no graph
            i, f, o = torch.sigmoid(gates_x + F.linear(h.detach(), cell.gate_hh, cell.gate_bhh)).chunk(3, dim=-1)
            signal = signal_x + cell.hidden(h)
            g = R.pass_through(signal, torch.tanh(signal))
            c = f * c + i * g
            return o * R.pass_through(c, torch.tanh(c)), c
        if kind is nn.GRU:
            r, z = torch.sigmoid(gates_x + F.linear(h.detach(), cell.gate_hh, cell.gate_bhh)).chunk(2, dim=-1)
            signal = signal_x + r * cell.hidden(h)  # n = tanh(x_n + r * (W_hn h + b_hn))
            n = R.pass_through(signal, torch.tanh(signal))
            return (1 - z) * n + z * h, None
        signal = signal_x + cell.hidden(h)
        return (R.pass_through(signal, torch.tanh(signal)) if m.nonlinearity == "tanh" else torch.relu(signal)), None

    def forward(input, hx=None):
        if isinstance(input, nn.utils.rnn.PackedSequence):
            raise InterpError(f"LRP of {type(m).__name__} takes a padded tensor, not a PackedSequence")
        batched = input.ndim == 3
        x = input if batched else input.unsqueeze(1 if not m.batch_first else 0)
        if not m.batch_first:
            x = x.transpose(0, 1)  # (batch, time, features) from here on
        b, t = x.shape[0], x.shape[1]
        if hx is None:
            # zeros, but on the input's autograd path, so that the hidden projection's first
            # call (its bias alone) is seen by LRP's taps like every other call
            anchor = x.reshape(-1)[:1] * 0 if x.requires_grad else x.new_zeros(1)
            zeros = anchor.reshape(1, 1, 1).expand(m.num_layers * directions, b, hidden)
            h0, c0 = zeros, (zeros if kind is nn.LSTM else None)
        elif kind is nn.LSTM:
            h0, c0 = hx
        else:
            h0, c0 = hx, None
        if not batched and hx is not None:
            h0 = h0.unsqueeze(1)
            c0 = None if c0 is None else c0.unsqueeze(1)
        h_n, c_n = [], []
        layer_input = x
        for layer in range(m.num_layers):
            outs = []
            for d in range(directions):
                cell = cells[(layer, d)]
                k = layer * directions + d
                h, c = h0[k], (c0[k] if c0 is not None else None)
                # the input's part of every step at once; unbind, not indexing: its backward fills
                # one tensor, where t selects would each fill a zero tensor of the whole sequence
                signal_x = cell.input(layer_input).unbind(1)
                gates = cell.gates_of_input(layer_input)
                gates_x = gates.unbind(1) if gates is not None else [None] * t
                order = range(t - 1, -1, -1) if d else range(t)
                steps = [None] * t
                for s in order:
                    h, c = step(cell, signal_x[s], gates_x[s], h, c)
                    steps[s] = h
                outs.append(torch.stack(steps, dim=1))
                h_n.append(h)
                c_n.append(c)
            layer_input = torch.cat(outs, dim=-1) if directions == 2 else outs[0]
        output = layer_input if m.batch_first else layer_input.transpose(0, 1)
        h_n = torch.stack(h_n)
        if not batched:
            output = output.squeeze(0 if m.batch_first else 1)
            h_n = h_n.squeeze(1)
        if kind is nn.LSTM:
            c_n = torch.stack(c_n)
            return output, (h_n, c_n if batched else c_n.squeeze(1))
        return output, h_n
    return forward


# ---------------------------------------------------------------------------- attention

class Attention(Canonizer):
    """nn.MultiheadAttention with its softmax weights held constant."""

    name = "attention"
    replaces_forward = True
    description = ("attention computed explicitly: softmax weights held constant, values through an nn.Linear "
                   "(CP-LRP, Ali et al. 2022; AttnLRP, Achtibat et al. 2024)")

    def unsupported(self, modules):
        out = {}
        for n, m in modules.items():
            if not isinstance(m, nn.MultiheadAttention):
                continue
            if m.bias_k is not None or m.add_zero_attn:
                out[n] = "add_bias_kv / add_zero_attn are not supported"
            elif m.training and m.dropout > 0:
                out[n] = "attention dropout in train mode (call model.eval())"
        return out

    def find(self, modules, pairs):
        bad = self.unsupported(modules)
        return [n for n, m in modules.items() if isinstance(m, nn.MultiheadAttention) and n not in bad]

    def apply(self, modules, paths, pairs, undo):
        extra = {}
        for path in paths:
            m = modules[path]
            e = m.embed_dim
            if m._qkv_same_embed_dim:
                wq, wk, wv = m.in_proj_weight.chunk(3)
            else:
                wq, wk, wv = m.q_proj_weight, m.k_proj_weight, m.v_proj_weight
            bq, bk, bv = m.in_proj_bias.chunk(3) if m.in_proj_bias is not None else (None, None, None)
            query, key, value = _frozen_linear(wq, bq), _frozen_linear(wk, bk), _frozen_linear(wv, bv)
            extra.update({f"{path}.query": query, f"{path}.key": key, f"{path}.value": value})
            undo.append(_replace_forward(m, _attention(m, e, (query, key, value))))
        return {}, extra


def _attention(m: nn.MultiheadAttention, e: int, projections: tuple[nn.Linear, nn.Linear, nn.Linear]):
    heads, d = m.num_heads, e // m.num_heads
    q_proj, k_proj, v_proj = projections

    def forward(query, key, value_in, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        batched = query.ndim == 3
        q, k, v = (t if batched else t.unsqueeze(1 if not m.batch_first else 0) for t in (query, key, value_in))
        if not m.batch_first:
            q, k, v = (t.transpose(0, 1) for t in (q, k, v))
        b, lq, ls = q.shape[0], q.shape[1], k.shape[1]
        # the function rules of this LRP run apply to the softmax and the products below (AttnLRP's
        # or CP-LRP's); without them (a plan's trace) the weights are held constant
        rules = current()
        held = rules is None or rules.rules.softmax == "constant"
        # with the weights held constant, queries and keys get no relevance: not computed on the graph
        qh = (q_proj(q) if not held else F.linear(q.detach(), q_proj.weight, q_proj.bias)).view(b, lq, heads, d)
        kh = (k_proj(k) if not held else F.linear(k.detach(), k_proj.weight, k_proj.bias)).view(b, ls, heads, d)
        qh, kh = qh.transpose(1, 2), kh.transpose(1, 2)
        vh = v_proj(v).view(b, ls, heads, d).transpose(1, 2)
        # (our forward runs with torch function modes off: the rules are applied here by name)
        scores = qh @ kh.transpose(-1, -2) if held else rules.product(torch.matmul, qh, kh.transpose(-1, -2))
        scores = scores / math.sqrt(d)                                 # (b, heads, lq, ls)
        if attn_mask is None and is_causal:
            attn_mask = torch.ones(lq, ls, dtype=torch.bool, device=q.device).triu(1)
        for mask, shape in ((attn_mask, None), (key_padding_mask, (b, 1, 1, ls))):
            if mask is None:
                continue
            mk = mask.view(shape) if shape is not None else (
                mask.view(b, heads, lq, ls) if mask.ndim == 3 else mask)
            scores = scores.masked_fill(mk, float("-inf")) if mk.dtype == torch.bool else scores + mk
        if held:
            weights = torch.softmax(scores, dim=-1).detach()
            mixed = weights @ vh
        else:
            weights = rules.softmax(lambda t: torch.softmax(t, dim=-1), scores)
            mixed = rules.product(torch.matmul, weights, vh)
            weights = weights.detach()
        mixed = mixed.transpose(1, 2).reshape(b, lq, e)
        out = m.out_proj(mixed)
        if not m.batch_first:
            out = out.transpose(0, 1)
        if not batched:
            out = out.squeeze(1 if not m.batch_first else 0)
            weights = weights.squeeze(0)
        if not need_weights:
            return out, None
        return out, (weights.mean(dim=-3) if average_attn_weights else weights)
    return forward


class LayerActivation(Canonizer):
    """The activation function of nn.TransformerEncoderLayer / DecoderLayer (a plain function
    such as F.gelu, not a module) given the pass-through rule of element-wise activations."""

    name = "layer_activation"
    description = "a transformer layer's activation function given the pass-through rule"
    LAYERS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)

    def find(self, modules, pairs):
        return [n for n, m in modules.items() if isinstance(m, self.LAYERS)
                and callable(getattr(m, "activation", None)) and not isinstance(m.activation, nn.Module)
                and getattr(m.activation, "__name__", "") != "relu"]  # relu's gradient passes already

    def apply(self, modules, paths, pairs, undo):
        owner = threading.get_ident()
        for path in paths:
            m = modules[path]
            fn = m.__dict__["activation"]

            def activation(t, fn=fn):  # other threads (a server's) run the original
                return R.pass_through(t, fn(t)) if threading.get_ident() == owner else fn(t)
            m.__dict__["activation"] = activation
            undo.append(lambda m=m, fn=fn: m.__dict__.__setitem__("activation", fn))
        return {}, {}


def is_conv1d(m: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2): a Linear with its weight stored transposed, (in, out),
    computing ``x @ weight + bias`` (recognised by duck type: transformers is not a dependency)."""
    w = getattr(m, "weight", None)
    return type(m).__name__ == "Conv1D" and type(m).__module__.startswith("transformers") \
        and isinstance(w, torch.Tensor) and w.ndim == 2 and getattr(m, "nf", None) == w.shape[1] \
        and getattr(m, "nx", w.shape[0]) == w.shape[0]


class Conv1DAsLinear(Canonizer):
    """Hugging Face's ``Conv1D`` (GPT-2's projections) computed by an ``nn.Linear`` over the
    transposed weight (a view: nothing copied), so linear-layer rules apply to it."""

    name = "conv1d_as_linear"
    replaces_forward = True
    description = "Hugging Face Conv1D computed as an nn.Linear over its transposed weight"

    def find(self, modules, pairs):
        return [n for n, m in modules.items() if is_conv1d(m)]

    def apply(self, modules, paths, pairs, undo):
        extra = {}
        for path in paths:
            m = modules[path]
            linear = Linear(m.weight.t(), m.bias)
            extra[f"{path}.linear"] = linear
            undo.append(_replace_forward(m, lambda x, linear=linear: linear(x)))
        return {}, extra


CANONIZERS = (MergeBatchNorm(), UnrollRecurrent(), Attention(), LayerActivation(), Conv1DAsLinear())

__all__ = ["Canonizer", "MergeBatchNorm", "UnrollRecurrent", "Attention", "LayerActivation", "Conv1DAsLinear",
           "is_conv1d", "CANONIZERS",
           "trace", "Traced", "holds"]
