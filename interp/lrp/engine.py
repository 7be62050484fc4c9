"""The LRP entry point: a plan of rules before the run, relevance and per-layer relevance after it.

    interp.lrp(model, x, target, composite="epsilon_plus_flat")   # LRPResult: .relevance, .layers
    interp.lrp.plan(model, "epsilon_plus_flat")                   # every module with its rule

One forward pass with the rules' hooks, one backward pass seeded with the one-hot
target: relevance travels as a modified gradient (see :mod:`interp.lrp.rules`).
Each layer call is tapped on its way in and out, so the relevance a layer passes to
its input, and what it received, are read off per layer and per sample: conservation
is checked layer by layer, not only end to end.

Nothing falls back silently: a module no rule covers, an operation outside modules
that relevance would cross unconserved (anything but the linear and piecewise-linear
operations of an allow-list: ``torch.tanh``, ``clamp``, a product of two signals),
a parameter multiplied in outside a module,
an input-layer rule on a layer that does not read the input, or a canonized model
that computes something else than the original: each is an :class:`InterpError`
naming the module and what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import importlib
import sys
import time
import weakref
from dataclasses import dataclass, field

import torch
from torch import nn

from .._checks import check_batch, refuse_batch_statistics, resolve_target, scores_of
from ..attribution import Attribution
from ..errors import InputError, InterpError, ModelError, UnknownNameError
from ..inplace import (
    may_write_in_place,
    out_of_place,
    saved_copy_on_write,
    storage_of,
    unwatched,
    watch_always,
    watch_writes,
    watched,
)
from ..inputs import Inputs, as_inputs, blame, check_model
from ..memory import start_memory_reuse
from ..modules import hooked as hooked_modules
from ..modules import is_pattern, module_names
from ..space import exclusive, holds, prepare
from . import composites as C
from . import rules as R
from .canonizers import CANONIZERS, is_conv1d, trace
from .functions import OWN_NODES, FunctionMode, FunctionRules, depends_on_input

EMBEDDINGS = (nn.Embedding,)


# ---------------------------------------------------------------------------- results

@dataclass(frozen=True)
class LayerRelevance:
    """Relevance at one layer, per sample. ``relevance``: what the layer passed to its
    input, shaped like that input (summed over calls when called several times; None
    when the calls' shapes differ). ``total``/``positive``/``negative``: its sum and the
    sums of its positive and negative parts. ``received``: the relevance at the layer's
    output, so ``received - total`` is what the layer absorbed (biases, epsilon) or, if
    negative, created."""

    name: str
    kind: str
    rule: str
    relevance: torch.Tensor | None
    total: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    received: torch.Tensor
    calls: int

    @property
    def absorbed(self) -> torch.Tensor:
        return self.received - self.total


@dataclass(frozen=True)
class PlanRow:
    """One module of the plan: its path, type, and the rule it gets (or why none)."""

    name: str
    kind: str
    rule: str
    role: str          # "rule", "canonized", "container", "merged", "embedding", "unsupported"
    note: str = ""
    depth: int = 0


@dataclass(frozen=True)
class Plan:
    """What an LRP run will do, decided before anything is computed: every module with its
    rule, the canonizers that apply (and to which modules), and what no rule covers."""

    composite: str
    rows: tuple[PlanRow, ...]
    canonizers: tuple[tuple[str, tuple[str, ...]], ...]
    first_layers: tuple[str, ...]   # the layers that read the input (they get the composite's first-layer rule)

    @property
    def unsupported(self) -> list[PlanRow]:
        return [r for r in self.rows if r.role == "unsupported"]

    def rule_of(self, name: str) -> str | None:
        return next((r.rule for r in self.rows if r.name == name), None)

    def __str__(self) -> str:
        width = max((len("  " * r.depth + r.name) for r in self.rows), default=10)
        kinds = max((len(r.kind) for r in self.rows), default=4)
        lines = [f"LRP plan, composite {self.composite}"]
        for r in self.rows:
            text = r.rule + (f"  ({r.note})" if r.note else "")
            lines.append(f"  {('  ' * r.depth + r.name).ljust(width)}  {r.kind.ljust(kinds)}  {text}")
        for name, paths in self.canonizers:
            lines.append(f"  canonizer {name}: {', '.join(paths)}")
        if self.unsupported:
            lines.append(f"  UNSUPPORTED: {', '.join(f'{r.name} ({r.kind})' for r in self.unsupported)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class LRPResult:
    """What :func:`lrp` returns. ``relevance``: shaped like the input (one value per token
    for token ids); ``target``/``score``: per sample, the explained output and its value
    (the relevance put in at the top); :attr:`layers`: per-layer relevance, from the
    output towards the input (the order the relevance flows), summarised when first
    read."""

    relevance: torch.Tensor
    target: torch.Tensor
    score: torch.Tensor
    composite: str
    plan: Plan
    embedding: str | None = None
    seconds: float = 0.0
    options: dict = field(default_factory=dict)
    flow: _Flow | None = field(default=None, repr=False, compare=False)

    @property
    def layers(self) -> dict[str, LayerRelevance]:
        """``{layer path: LayerRelevance}`` in the order relevance reaches the layers."""
        return self.flow.layers() if self.flow is not None else {}

    @property
    def total(self) -> torch.Tensor:
        """Σ relevance per sample over every input (equals ``score`` where everything is conserved)."""
        parts = self.relevance.values() if isinstance(self.relevance, dict) else \
            self.relevance if isinstance(self.relevance, (tuple, list)) else (self.relevance,)
        return sum(r.flatten(1).sum(1) for r in parts if r is not None)

    @property
    def outside_layers(self) -> torch.Tensor:
        """Relevance absorbed (positive) or created outside every layer, per sample: by
        constants added in a forward, such as position embeddings or a recurrent layer's
        given initial state. ``score - total`` is this plus the layers' ``absorbed``."""
        absorbed = sum((layer.absorbed for layer in self.layers.values()), torch.zeros_like(self.score))
        return self.score - self.total - absorbed

    @property
    def method(self) -> str:
        return "lrp"

    @property
    def label(self) -> str:
        return f"lrp ({self.composite})"

    def as_attribution(self) -> Attribution:
        """The relevance as an :class:`~interp.attribution.Attribution` (method ``lrp``; its
        ``delta`` is the conservation gap Σ relevance − score), so the attribution figures
        show it beside the saliency methods."""
        return Attribution(method="lrp", values=self.relevance, target=self.target, score=self.score,
                           delta=self.total - self.score, options={"composite": self.composite, **self.options},
                           embedding=self.embedding, seconds=self.seconds)


# ---------------------------------------------------------------------------- the plan

OWN_PARAMETERS = "uses its own parameters"
TRAIN_DROPOUT = "dropout in train mode makes relevance random"
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def _rule_row(path: str, m: nn.Module, rule: R.Rule | None, depth: int, merged_into: str | None) -> PlanRow:
    kind = type(m).__name__
    if rule is None:
        return PlanRow(path, kind, "no rule", "unsupported", "no rule covers this layer type", depth)
    if (rule.needs_weights or rule.direct) and not isinstance(m, C.WEIGHTED):
        return PlanRow(path, kind, rule.label, "unsupported",
                       f"{rule.label} needs a Linear, Conv or ConvTranspose layer", depth)
    note = f"with the batch-norm {merged_into} folded in" if merged_into else ""
    return PlanRow(path, kind, rule.label, "rule", note, depth)


def _build_plan(modules: dict[str, nn.Module], composite: C.Composite, applied: dict[str, list[str]],
                pairs: dict[str, str], unsupported: dict[str, str],
                readers: list[str] | None) -> tuple[Plan, dict[str, R.Rule]]:
    if readers is None:  # no input to trace: the first weighted layer in module order, as Zennit does
        readers = [next((p for p, m in modules.items() if isinstance(m, C.WEIGHTED)), None)]
    # the layers that get the composite's first-layer rule (none if it has no such rule)
    firsts = [p for p in readers if p is not None and isinstance(modules.get(p), composite.first_types)] \
        if composite.first is not None else []
    for key in composite.rules:  # a path or pattern that names nothing is a typo, not a rule
        if isinstance(key, str) and key not in modules and not (
                is_pattern(key) and any(fnmatch.fnmatchcase(p, key) for p in modules)):
            raise UnknownNameError("module path in the composite", key, list(modules))
    canonized = {p: name for name, paths in applied.items() for p in paths}
    replacing = {c.name for c in CANONIZERS if c.replaces_forward}
    rewritten = {p for p, name in canonized.items() if name in replacing}  # their children run inside
    merged_into = {layer: bn for bn, layer in pairs.items()}
    rows, chosen = [], {}
    root = next(iter(modules))  # named_modules gives the model itself first
    for path, m in modules.items():
        depth = 0 if path == root else path.count(".") + 1
        kind = type(m).__name__
        if path in unsupported:
            rows.append(PlanRow(path, kind, "no rule", "unsupported", unsupported[path], depth))
        elif path in pairs:
            rows.append(PlanRow(path, kind, f"merged into {pairs[path]}", "merged", "", depth))
        elif path in rewritten:
            rows.append(PlanRow(path, kind, f"canonized ({canonized[path]})", "canonized", "", depth))
        elif isinstance(m, EMBEDDINGS):
            rows.append(PlanRow(path, kind, "input (token ids)", "embedding",
                                "the input of token models; another embedding absorbs its share", depth))
        elif next(m.children(), None) is not None or isinstance(m, (nn.ModuleList, nn.ModuleDict)):
            own = [n for n, p in m.named_parameters(recurse=False) if p is not None]
            note = f"canonized ({canonized[path]})" if path in canonized else ""
            if own and not _inside(path, rewritten) and path not in rewritten:
                note = (f"{OWN_PARAMETERS} ({', '.join(own)}): added in, they absorb relevance like a bias; "
                        "multiplied in, the run refuses them")
            rows.append(PlanRow(path, kind, "", "container", note, depth))
        elif _inside(path, rewritten) and not isinstance(m, C.WEIGHTED):
            rows.append(PlanRow(path, kind, "", "container", "not called as a module", depth))
        elif isinstance(m, _DROPOUTS) and m.training and m.p > 0:
            rows.append(PlanRow(path, kind, "no rule", "unsupported", TRAIN_DROPOUT, depth))
        else:
            rule = composite.rule_for(path, m, path in firsts)
            row = _rule_row(path, m, rule, depth, merged_into.get(path))
            rows.append(row)
            if row.role == "rule":
                chosen[path] = rule
    plan = Plan(composite.name, tuple(rows), tuple((n, tuple(p)) for n, p in applied.items() if p),
                tuple(firsts))
    return plan, chosen


def _inside(path: str, parents) -> bool:
    return any(path.startswith(p + ".") for p in parents)


@dataclass
class _Canonized:
    """A model while canonized: the rules by path, the merged parameters, and how to
    write the plan once the layers that read the input are known."""

    model: nn.Module
    modules: dict[str, nn.Module]   # as canonized (with any temporary modules)
    composite: C.Composite
    applied: dict[str, list[str]]
    pairs: dict[str, str]
    unsupported: dict[str, str]
    merged: dict[str, tuple]

    def plan(self, readers: list[str] | None) -> tuple[Plan, dict[str, R.Rule]]:
        return _build_plan(self.modules, self.composite, self.applied, self.pairs, self.unsupported, readers)


@contextlib.contextmanager
def _canonized(model: nn.Module, composite: C.Composite, pairs: dict[str, str],
               modules: dict[str, nn.Module] | None = None):
    """Apply every canonizer that fits (batch-norms merged as ``pairs`` says) and undo
    everything on exit."""
    modules = module_names(model) if modules is None else modules
    unsupported: dict[str, str] = {}
    for can in CANONIZERS:
        unsupported.update(can.unsupported(modules))
    undo: list = []
    merged: dict[str, tuple] = {}
    extra: dict[str, nn.Module] = {}
    applied: dict[str, list[str]] = {}
    try:
        for can in CANONIZERS:
            paths = can.find(modules, pairs)
            if paths:
                params, own = can.apply(modules, paths, pairs, undo)
                merged.update(params)
                extra.update(own)
                applied[can.name] = paths
        yield _Canonized(model, _with_extra(modules, extra), composite, applied, pairs, unsupported, merged)
    finally:
        for u in reversed(undo):
            u()


def _with_extra(modules: dict[str, nn.Module], extra: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """The model's modules with the canonizers' own, each right after the module it belongs to."""
    if not extra:
        return modules
    out: dict[str, nn.Module] = {}
    for path, m in modules.items():
        out[path] = m
        out.update({p: e for p, e in extra.items() if p.rpartition(".")[0] == path})
    return out


def _sequential_pairs(modules: dict[str, nn.Module]) -> dict[str, str]:
    """Batch-norms right after a Linear/Conv in an nn.Sequential (the plan without an input)."""
    pairs = {}
    root = next(iter(modules))
    for path, m in modules.items():
        if isinstance(m, nn.Sequential):
            children = list(m.named_children())
            for (a, ma), (b, mb) in zip(children, children[1:]):
                if isinstance(ma, C.WEIGHTED) and isinstance(mb, nn.modules.batchnorm._BatchNorm):
                    prefix = "" if path == root else path + "."
                    pairs[prefix + b] = prefix + a
    return pairs


def plan(model: nn.Module, composite="epsilon_plus_flat", x=None, **params) -> Plan:
    """Every module of ``model`` with the rule ``composite`` gives it, the canonizers that
    apply and what is unsupported, without computing relevance. With ``x`` (a batch the
    model takes) the model runs once on one sample, to pair batch-norms with the layer
    they follow and to find the layers that read the input (they get the composite's
    first-layer rule); without it, pairs are read from nn.Sequential containers and the
    first layer is the first Linear/Conv in module order (as Zennit does)."""
    if not isinstance(model, nn.Module):
        raise InputError(f"plan needs an nn.Module; got {type(model).__name__}")
    comp = C.get(composite, **params)
    one = as_inputs(x, model).probe() if x is not None else None
    if one is not None:
        check_model(model, one, "the LRP plan")
        refuse_batch_statistics(model, "plan")
    with blame(model, one, "the LRP plan") if one is not None else contextlib.nullcontext(), exclusive(model), \
            out_of_place(model):
        modules = module_names(model)
        pairs = trace(model, modules, one).pairs if one is not None else _sequential_pairs(modules)
        with _canonized(model, comp, pairs) as state:
            if one is None:
                return state.plan(None)[0]
            traced = trace(model, state.modules, one)
            readers, called = traced.readers, traced.called
            the_plan, chosen = state.plan(readers)
            functions = _function_rows(state, one, chosen)
    rows = [dataclasses.replace(r, role="unsupported", note=f"{r.rule} is an input-layer rule, and this "
                                "layer does not read the input")
            if r.role == "rule" and chosen[r.name].direct and r.name not in readers else r
            for r in the_plan.rows]
    functions, reader = functions
    rows = [dataclasses.replace(r, rule="constant added in", note="absorbs its share, like a bias")
            if r.role == "embedding" and reader is not None and r.name != reader else r for r in rows]
    for row in functions:  # each after the module (and its children) it was called in
        where = row.name.rpartition(":")[0]
        at = max((i for i, r in enumerate(rows) if r.name == where or r.name.startswith(where + ".")),
                 default=len(rows) - 1)
        rows.insert(at + 1, row)
    return _not_called(dataclasses.replace(the_plan, rows=tuple(rows)), called)


def _function_rows(state: _Canonized, one: Inputs, chosen: dict[str, R.Rule]) -> tuple[tuple[PlanRow, ...], str | None]:
    """The operations the forward computes as functions, on one sample: those a function rule
    covers (one row per module and kind, with the number of calls) and those none does
    (unsupported, named by their autograd node); and the embedding that reads the token ids."""
    rules = state.composite.functions
    mode = FunctionMode(rules)
    stack: list[str] = []
    root = next(iter(state.modules))
    mode.where = lambda: stack[-1] if stack else root
    internal: set = set()
    ruled = [p for p, r in chosen.items() if not isinstance(r, R.Positions)]

    def enter(name, args):
        stack.append(name)

    def leave(name, args, output):
        if stack and stack[-1] == name:
            stack.pop()

    def inside(name, args):
        mode.depth += 1

    def outside(name, args, output):
        mode.depth -= 1
        if isinstance(output, torch.Tensor) and output.grad_fn is not None:
            _mark_internal(output.grad_fn, {a.grad_fn for a in args if isinstance(a, torch.Tensor)}, internal)
        if isinstance(output, torch.Tensor) and isinstance(chosen[name], R.Pass):
            mode.gate(output)

    before = {p: (inside if p in ruled else enter) for p in state.modules}
    after = {p: (outside if p in ruled else leave) for p in state.modules}
    with hooked_modules(state.modules, before=before, after=after), mode:
        space = prepare(state.model, one, None, graph=True)
    crossed, _ = _crossed_ops(space.graph, internal | mode.internal) if space.graph.requires_grad else ([], [])
    rows = [PlanRow(f"{where}:{kind}", f"{kind} (function)", rules.label(kind), "function",
                    f"{n} call{'s' if n != 1 else ''} on one sample", where.count(".") + 2 if where != root else 1)
            for (where, kind), n in mode.calls.items()]
    rows += [PlanRow(f"(outside modules):{node}", node, "no rule", "unsupported",
                     "computed as a function outside any module, and no function rule covers it") for node in crossed]
    return tuple(rows), next((e for e in space.embeddings if e is not None), None)


# ---------------------------------------------------------------------------- taps

# operations that only re-index their input (every element kept once): a layer reading the
# input through them reads the input
_VIEWS = frozenset({"CloneBackward0",  # the copy of the input handed to a forward that may write into it
                    "ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "TransposeBackward0",
                    "PermuteBackward0", "AliasBackward0", "TBackward0", "UnsqueezeBackward0", "UnsqueezeBackward1",
                    "SqueezeBackward0", "SqueezeBackward1", "SqueezeBackward2", "SqueezeBackward3",
                    "SqueezeBackward4"})


def _reads_input(t: torch.Tensor) -> bool:
    """Whether ``t`` is the analysed input itself or holds exactly its elements, re-indexed
    (a reshape, a transpose, an unsqueeze; not a slice): its autograd history reaches a leaf
    that is not a parameter through such operations only, with as many elements. The
    same test as :func:`interp.lrp.canonizers.trace` makes by storage, so plan and run agree."""
    node = t.grad_fn
    if node is None:
        return t.requires_grad and not isinstance(t, nn.Parameter)
    while node is not None:
        name = type(node).__name__
        if name == "AccumulateGrad":
            leaf = node.variable
            return not isinstance(leaf, nn.Parameter) and leaf.numel() == t.numel()
        if name not in _VIEWS:
            return False
        node = node.next_functions[0][0]
    return False


class _UnseenWrite(ModelError):
    """A tapped tensor changed in place by a write the source scan did not find."""


class _Flow:
    """The tensors a run passed each tapped layer (a private view of its input, so the
    gradient there is what this layer passed back, and its output) and their gradients;
    per-layer relevance is ``tensor * gradient``, summarised when first asked for."""

    def __init__(self, batch: int, kinds: dict[str, str], labels: dict[str, str], reshapes: set[str],
                 device: torch.device):
        self.batch, self.kinds, self.labels, self.reshapes, self.device = batch, kinds, labels, reshapes, device
        self.order: list[str] = []
        self.inputs: list[tuple[str, torch.Tensor]] = []
        self.sources: list[int] = []       # per input: id of the tensor the layer was given (before our alias)
        self.outputs: list[tuple[str, torch.Tensor]] = []
        self.output_ids: list[int] = []    # per output: id of the tensor handed on
        self.output_call: list[int] = []   # per output: index of the same call's input (-1: none)
        self.direct: dict[int, torch.Tensor] = {}   # index in inputs -> relevance from an input-layer rule
        self.in_axes: list = []    # batch axis of each input / output when the shape alone cannot tell
        self.out_axes: list = []
        self.in_grads: list = []
        self.out_grads: list = []
        # constants added in outside layers (a position embedding, a class token): (name, tensor on the
        # graph, its part of that tensor's value or None for all of it); they absorb relevance
        self.constants: list[tuple[str, torch.Tensor, torch.Tensor | None]] = []
        self.constant_grads: list = []
        self._layers: dict[str, LayerRelevance] | None = None
        # copy-on-write of tapped tensors the forward writes into in place (out += identity)
        self._storage: dict[int, list[tuple[list, int]]] = {}   # storage -> (entries, index) tapped there
        self._versions: dict[tuple[int, int], int] = {}          # (id(entries), index) -> version when tapped
        self._saved: dict[tuple[int, int], tuple] = {}           # -> (value, gradient edge) before the write

    def release(self) -> None:
        """Drop every tensor of the run (after an error: nothing of its graph may outlive it)."""
        self.inputs, self.outputs, self.in_grads, self.out_grads = [], [], [], []
        self.constants, self.constant_grads = [], []
        self.direct.clear()
        self._storage.clear()
        self._saved.clear()

    def _watch(self, entries: list, index: int, t: torch.Tensor) -> None:
        self._storage.setdefault(storage_of(t), []).append((entries, index))
        self._versions[(id(entries), index)] = t._version

    def before_write(self, target: torch.Tensor) -> None:
        """The forward is about to write into ``target`` in place: tapped tensors in its memory
        keep their value and their place in the graph (a gradient edge) from before."""
        for entries, index in self._storage.pop(storage_of(target), ()):
            key = (id(entries), index)
            t = entries[index][1]
            if key not in self._saved and t._version == self._versions[key]:
                self._saved[key] = (t.detach().clone(), torch.autograd.graph.get_gradient_edge(t))

    def check_unwritten(self) -> None:
        """ModelError if a tapped tensor changed in place unseen (through .data or numpy)."""
        for entries in (self.inputs, self.outputs):
            for index, (name, t) in enumerate(entries):
                key = (id(entries), index)
                if key not in self._saved and t._version != self._versions.get(key, t._version):
                    raise _UnseenWrite(f"the forward changed the {'input' if entries is self.inputs else 'output'} "
                                       f"of {name!r} in place in a way LRP cannot follow (through .data or a numpy "
                                       "view); write that step out of place")
        self._storage.clear()

    def add_input(self, name: str, given: torch.Tensor, alias: torch.Tensor) -> None:
        if name not in self.order:
            self.order.append(name)
        self.inputs.append((name, alias))
        self.sources.append(id(given))
        self._watch(self.inputs, len(self.inputs) - 1, alias)

    def add_constant(self, name: str, kind: str, tensor: torch.Tensor, part: torch.Tensor | None = None) -> None:
        """A constant added in outside layers: relevance ``part * gradient`` at ``tensor`` (all of
        ``tensor`` when ``part`` is None) is what it absorbs."""
        if name not in self.order:
            self.order.append(name)
        self.kinds.setdefault(name, kind)
        self.labels.setdefault(name, "absorbs (a constant added in)")
        self.constants.append((name, tensor, part))

    def add_output(self, name: str, output: torch.Tensor) -> None:
        last = len(self.inputs) - 1
        self.outputs.append((name, output))
        self.output_ids.append(id(output))
        self.output_call.append(last if last >= 0 and self.inputs[last][0] == name else -1)
        self._watch(self.outputs, len(self.outputs) - 1, output)

    def _direct_through_reshapes(self) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """An input-layer rule's relevance does not travel as a gradient, so reshapes between
        the input and that layer (a Flatten) are given it here: (by input index, by output index)."""
        extra_in: dict[int, torch.Tensor] = {}
        extra_out: dict[int, torch.Tensor] = {}
        produced = {oid: j for j, oid in enumerate(self.output_ids)}
        for i, r in self.direct.items():
            source = self.sources[i]
            while source in produced:
                j = produced[source]
                if self.outputs[j][0] not in self.reshapes or self.outputs[j][1].numel() != r.numel():
                    break
                extra_out[j] = r.reshape(self.outputs[j][1].shape)
                k = self.output_call[j]
                if k < 0 or self.inputs[k][1].numel() != r.numel():
                    break
                extra_in[k] = r.reshape(self.inputs[k][1].shape)
                source = self.sources[k]
        return extra_in, extra_out

    def tensors(self) -> list:
        """What gradients are taken for: each tapped tensor, or where the forward wrote into it
        afterwards, the gradient edge it had before."""
        return [self._saved[(id(entries), i)][1] if (id(entries), i) in self._saved else t
                for entries in (self.inputs, self.outputs) for i, (_, t) in enumerate(entries)] + \
            [t for _, t, _ in self.constants]

    def take_grads(self, grads) -> None:
        n, m = len(self.inputs), len(self.inputs) + len(self.outputs)
        self.in_grads, self.out_grads, self.constant_grads = list(grads[:n]), list(grads[n:m]), list(grads[m:])
        self.constants = [(name, t.detach(), None if part is None else part.detach())
                          for name, t, part in self.constants]

        def values(entries):
            return [(name, self._saved[(id(entries), i)][0] if (id(entries), i) in self._saved else t.detach())
                    for i, (name, t) in enumerate(entries)]
        self.inputs, self.outputs = values(self.inputs), values(self.outputs)
        self._saved.clear()

    def _batch_first(self, r: torch.Tensor, axis: int | None = None) -> torch.Tensor | None:
        """``r`` with its batch axis first: ``axis`` when known (see :meth:`find_batch_axes`),
        else the first axis as long as the batch."""
        if axis is None:
            axis = 0 if r.ndim and r.shape[0] == self.batch else next(
                (i for i, s in enumerate(r.shape) if s == self.batch), None)
        return None if axis is None else r.movedim(axis, 0)

    def ambiguous(self) -> bool:
        """Whether some tapped tensor's batch axis cannot be told from its shape alone."""
        def unclear(name, t):
            if t.ndim and t.shape[0] == self.batch and ":" in name:
                return False  # an operation in a forward (attention's queries): batch first, as the model's layers
            return t.ndim == 0 or t.shape[0] != self.batch or sum(s == self.batch for s in t.shape) > 1
        return self.batch > 1 and any(unclear(n, t) for n, t in self.inputs + self.outputs)

    def find_batch_axes(self, shapes: dict[str, tuple[list, list]], size: int) -> None:
        """The batch axis of every tapped tensor, from the shapes the same calls had on a
        batch of ``size`` copies of one sample (``shapes``: per layer, its calls' input and
        output shapes): the axis whose size went from ``size`` to the batch."""
        def axis(full, small):
            if small is None or len(small) != len(full):
                return None
            return next((a for a, (f, o) in enumerate(zip(full, small)) if f == self.batch and o == size), None)

        seen: dict[tuple[str, int], int] = {}
        for entries, side, axes in ((self.inputs, 0, self.in_axes), (self.outputs, 1, self.out_axes)):
            for name, t in entries:
                k = seen.get((name, side), 0)
                seen[(name, side)] = k + 1
                calls = shapes.get(name, ([], []))[side]
                axes.append(axis(tuple(t.shape), calls[k] if k < len(calls) else None))

    def layers(self) -> dict[str, LayerRelevance]:
        if self._layers is not None:
            return self._layers
        per_in: dict[str, list[torch.Tensor]] = {}
        per_out: dict[str, list[torch.Tensor]] = {}
        extra_in, extra_out = self._direct_through_reshapes()
        for i, ((name, a), g) in enumerate(zip(self.inputs, self.in_grads)):
            r = self.direct.get(i)
            if r is None:
                r = _times(a, g) if g is not None else torch.zeros_like(a)
                if i in extra_in:
                    r = r + extra_in[i]
            r = self._batch_first(r, self.in_axes[i] if self.in_axes else None)
            if r is not None:
                per_in.setdefault(name, []).append(r)
        for j, ((name, o), g) in enumerate(zip(self.outputs, self.out_grads)):
            r = o * g if g is not None else None
            if j in extra_out:
                r = extra_out[j] if r is None else r + extra_out[j]
            r = self._batch_first(r, self.out_axes[j] if self.out_axes else None) if r is not None else None
            if r is not None:
                per_out.setdefault(name, []).append(r)
        for (name, t, part), g in zip(self.constants, self.constant_grads):
            r = self._batch_first(_times(t if part is None else part, g)) if g is not None else None
            if r is not None:
                per_out.setdefault(name, []).append(r)
        zeros = torch.zeros(self.batch, device=self.device)
        out = {}
        for name in reversed(self.order):
            if name not in per_in and name not in per_out:
                continue  # e.g. the embedding that reads the input: its output was replaced
            calls = per_in.get(name, [])
            flat = [r.reshape(self.batch, -1) for r in calls]
            same = bool(calls) and all(r.shape == calls[0].shape for r in calls)
            total = sum(f.sum(1) for f in flat) if flat else zeros
            positive = sum(f.clamp(min=0).sum(1) for f in flat) if flat else zeros
            got = per_out.get(name, [])
            out[name] = LayerRelevance(
                name=name, kind=self.kinds[name], rule=self.labels[name],
                relevance=(sum(calls[1:], calls[0]) if same else None),
                total=total, positive=positive, negative=total - positive,
                received=sum(r.reshape(self.batch, -1).sum(1) for r in got) if got else zeros,
                calls=max(len(calls), len(got)))
        self._layers = out
        return out


def _times(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``a * g``, 0 where the gradient is 0 (a softmax input masked with -inf gets none)."""
    r = a * g
    return torch.where(g == 0, torch.zeros_like(r), r) if not a.isfinite().all() else r


class _Direct(torch.autograd.Function):
    """The output of a layer under an input-layer rule: the rule's relevance for the
    layer's input is handed to ``record`` instead of flowing back as a gradient."""

    @staticmethod
    def forward(ctx, x, z, rule, layer, record):
        ctx.rule, ctx.layer, ctx.record = rule, layer, record
        ctx.save_for_backward(x, z)
        return z.clone()  # a tensor of its own: the forward may write into it in place

    @staticmethod
    def backward(ctx, grad):
        x, z = ctx.saved_tensors
        r_in = ctx.rule.relevance(ctx.layer, x, z * grad)
        ctx.record(x.detach(), r_in)
        # ``record`` holds what the run keeps; the graph holds this node: no cycle through C++
        # (which Python's collector cannot see) may outlive the run
        ctx.rule = ctx.layer = ctx.record = None
        return None, None, None, None, None


# ---------------------------------------------------------------------------- functional non-linearities

# autograd nodes relevance may cross outside a module: operations linear in each input
# (reshapes, indexing, sums, means, adds, products checked separately), piecewise linear
# through zero (ReLU, max selection), and our own. Anything else met between input and
# output outside a module is refused (an allow-list: an op we did not think of is an error
# naming it, never a silent pass).
_LINEAR = frozenset("""
    Add Sub Neg Mean Sum Cumsum View UnsafeView ReshapeAlias Reshape Expand Permute Transpose T Select Slice
    Index IndexSelect Gather Cat Stack Split SplitWithSizes Unbind Chunk Squeeze Unsqueeze Clone ToCopy Alias
    Flip Roll Repeat ConstantPadNd ReflectionPad1D ReflectionPad2D ReflectionPad3D ReplicationPad1D
    ReplicationPad2D ReplicationPad3D AsStrided Unfold Im2Col Col2Im PixelShuffle PixelUnshuffle
    UpsampleNearest1D UpsampleNearest2D UpsampleNearest3D UpsampleLinear1D UpsampleBilinear2D
    UpsampleTrilinear3D AvgPool1D AvgPool2D AvgPool3D AdaptiveAvgPool1D AdaptiveAvgPool2D AdaptiveAvgPool3D
    MaxPool1DWithIndices MaxPool2DWithIndices MaxPool3DWithIndices AdaptiveMaxPool1D AdaptiveMaxPool2D
    AdaptiveMaxPool3D Max Min Amax Amin Relu LeakyRelu MaskedFill Where NativeBatchNorm Embedding
    AccumulateGrad CopySlices Copy _Scaled _Redirected _Direct
""".split()) | OWN_NODES
_PRODUCTS = frozenset("Mul Div Mm Bmm Matmul Baddbmm Addmm Addbmm Addmv Einsum Dot Mv Convolution".split())
_KINDS: dict[type, str] = {}  # autograd node type -> "linear", "product" or "nonlinear"


def _kind_of(node_type: type) -> str:
    if node_type not in _KINDS:
        name = node_type.__name__
        op = name[:name.index("Backward")] if "Backward" in name else name
        _KINDS[node_type] = "product" if op in _PRODUCTS else "linear" if op in _LINEAR else "nonlinear"
    return _KINDS[node_type]


def _mark_internal(node, stops: set, internal: set) -> None:
    """Add the autograd nodes a module call made (from its output back to the nodes of
    its tensor arguments, ``stops``) to ``internal``."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n is None or n in stops or n in internal:
            continue
        internal.add(n)
        stack.extend(f for f, _ in n.next_functions if f is not None)


def _leaf_is_parameter(node) -> bool:
    return type(node).__name__ == "AccumulateGrad" and isinstance(node.variable, nn.Parameter)


def _functions_may_explain(crossed: list[str]) -> bool:
    """Whether a :class:`FunctionMode` may give the crossed operations rules (else the
    refusal comes at once, without a second run)."""
    return any(name.startswith(_FUNCTION_NODES) for name in crossed)


_FUNCTION_NODES = ("Softmax", "Mul", "Mm", "Bmm", "Matmul", "Einsum", "Gelu", "Silu", "Tanh", "Sigmoid", "Elu",
                   "Softplus", "Mish", "Hardswish", "Hardsigmoid", "Hardtanh", "NativeLayerNorm", "Rsqrt", "Div",
                   "ScaledDotProduct", "LogSigmoid", "Softsign", "FusedRmsNorm", "RmsNorm")


def _crossed_ops(output: torch.Tensor, internal: set) -> tuple[list[str], list[str]]:
    """Operations between the input and the output, outside every module call
    (``internal``: the autograd nodes made inside them, which their rules govern), that
    relevance cannot cross as a modified gradient: (non-linear functions and products of
    two signals; parameters multiplied in outside a module, as a tied weight in
    ``F.linear``, which would get LRP-0 instead of the composite's rule). A parameter
    added in (a class token, a position embedding) absorbs relevance like a bias, and
    is fine. The only leaves that require grad are the input and parameters, so a
    product's operand is a signal unless it comes from a parameter."""
    crossed, parameters = set(), set()
    memo: dict = {}
    seen, stack = set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        nexts = [f for f, _ in node.next_functions if f is not None]
        stack.extend(nexts)
        if node in internal:
            continue
        kind = _kind_of(type(node))
        if kind == "nonlinear":
            crossed.add(type(node).__name__)
        elif kind == "product" and type(node).__name__.startswith("Div") and len(node.next_functions) >= 2 \
                and depends_on_input(node.next_functions[1][0], memo):
            crossed.add(type(node).__name__)  # divided by a signal: 1 / x is not linear in x
        elif kind == "product" and len(nexts) >= 2:
            signals = sum(depends_on_input(f, memo) for f in nexts)
            if signals and signals < len(nexts):  # a factor computed from parameters only (w, 1 + w, w / 4)
                parameters.add(type(node).__name__)
            elif signals >= 2:
                crossed.add(type(node).__name__)
    return sorted(crossed), sorted(parameters)


# ---------------------------------------------------------------------------- the run

def lrp(model: nn.Module, x, target="predicted", composite="epsilon_plus_flat", *,
        embedding=None, **params) -> LRPResult:
    """Layer-wise relevance propagation of the ``target`` score of ``model`` at ``x``.

    ``composite``: a name (see :func:`interp.lrp.composites.names`; ``params`` are its
    parameters, e.g. ``epsilon=0.1``), a :class:`~interp.lrp.composites.Composite`, or a
    dict ``{module path, pattern or type: rule}``. ``target``: an output index, one per
    sample, or ``"predicted"``. ``x``: a batch (float values, or token ids explained
    through the embedding layer that reads them; ``embedding=`` names it), or several
    inputs as a tuple or dict of batches (relevance then comes back per input, in the
    same structure; inputs that are neither float nor token ids get None).

    Returns an :class:`LRPResult`: relevance shaped like ``x`` and per-layer relevance.
    Modules with ``inplace=True`` get their rules as their out-of-place twins would, and
    in-place writes in the forward (``out += identity``) are followed. The model is left
    as it was: hooks, canonizers, ``inplace`` flags and parameter flags are undone, also
    after an error.
    """
    structure = check_batch(model, x, "lrp")
    comp = C.get(composite, **params)
    if torch.is_inference_mode_enabled():
        raise InterpError("LRP needs autograd, and this call runs inside torch.inference_mode(); call it "
                          "outside that block")
    refuse_batch_statistics(model, "relevance", random=True)
    # autograd imports this on its first call with grad_outputs (a quarter of a second): not LRP's time
    importlib.import_module("torch.fx.experimental.symbolic_shapes")
    start_memory_reuse()
    start = time.perf_counter()
    with blame(model, structure, "LRP"), exclusive(model), out_of_place(model):
        modules = module_names(model)
        reference, pairs, one_sample, reused = None, {}, None, False
        rewritten = any(isinstance(m, _REWRITTEN) or is_conv1d(m) for m in modules.values())
        has_norms = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules.values())
        # the batch-norm pairs' key: only where there are batch-norms to pair (a walk over every tensor)
        key = _structure(modules) + (structure.signature(),) if rewritten and has_norms else None
        if rewritten:  # canonizers will change the model: the original's output on the first sample, to check
            first = structure.probe()  # copies of the first sample
            known = _cached(model, "pairs", key) if has_norms else None
            if known is None and has_norms:
                pairs, one_sample, reference = _pair(model, modules, first, key)
            else:
                (pairs, one_sample), reused = known or ({}, None), known is not None
                with torch.no_grad():
                    reference = scores_of(first.call(model)).detach()[:1]
        functional = _functional(model, comp)
        while True:  # at most one retry for each reason
            try:
                with _canonized(model, comp, pairs, modules) as state:
                    run = _propagate(state, structure, target, embedding, reference, one_sample, functional)
                break
            except _NeedsFunctions:
                _FUNCTIONAL.add(model)  # from now on straight under the function rules
                functional = True
            except _UnseenWrite:
                if watched(model):
                    raise  # watched, and still unseen: .data or numpy
                watch_always(model)  # a write the source scan did not show: watch every forward, once more
            except _NotSame:
                if not reused:
                    raise
                # batch-norm pairs kept from an earlier call, and the forward now routes otherwise: found again
                pairs, one_sample, reference = _pair(model, modules, structure.probe(), key)
                reused = False
    relevance, t, score, space_embedding, the_plan, flow = run
    return LRPResult(relevance=relevance, target=t, score=score, composite=comp.name, plan=the_plan,
                     embedding=space_embedding, seconds=time.perf_counter() - start, options=dict(params),
                     flow=flow)


_REWRITTEN = (nn.RNNBase, nn.MultiheadAttention, nn.modules.batchnorm._BatchNorm)


def _pair(model: nn.Module, modules: dict[str, nn.Module], first: Inputs, key: tuple):
    """One traced pass on copies of the first sample: the batch-norm pairs, the shapes of
    every call, and the original's output (kept: the pairs and shapes, for later calls)."""
    traced = trace(model, modules, first)
    _remember(model, "pairs", key, (traced.pairs, traced.shapes))
    return traced.pairs, traced.shapes, scores_of(traced.output).detach()[:1]


class _NotSame(InterpError):
    """The canonized model computes something else than the original."""


def _refuse_unsupported(the_plan: Plan) -> None:
    bad = the_plan.unsupported
    if not bad:
        return
    listed = "; ".join(f"{r.name!r} ({r.kind}: {r.note})" for r in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    example = bad[0].kind
    if bad[0].note == TRAIN_DROPOUT:
        hint = "call model.eval() first"
    else:
        hint = (f"give one in the composite, e.g. interp.lrp.composites.get({the_plan.composite!r})"
                f".with_rules({{{example}: interp.lrp.rules.Epsilon()}}) (or rules.Pass() for an element-wise "
                "function)")
    raise InterpError(f"LRP has no rule for {len(bad)} module{'s' if len(bad) != 1 else ''}: {listed}{more}. "
                      f"{hint[0].upper() + hint[1:]}; interp.lrp.plan(model) shows every module's rule")


class _NeedsFunctions(Exception):
    """The forward computes operations outside modules that only function rules can explain."""


# models whose forward computes softmax, products of signals, ... as functions: LRP runs them
# under a FunctionMode from their second call on (the first found out, without one)
_FUNCTIONAL: weakref.WeakSet = weakref.WeakSet()


# ---------------------------------------------------------------------------- what a call can reuse

# per model: what depends only on its structure (and the input's shape), by kind: the draft plan,
# the batch-norm pairs. Keyed so that nothing stale is ever reused: any change to a module (added,
# replaced, its class, its forward, train/eval mode, hooks), to a parameter or buffer (replaced,
# written in place: version counters, storage, shape) or to the composite is a different key.
_REUSE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _structure(modules: dict[str, nn.Module]) -> tuple:
    """Everything about ``modules`` a plan depends on, as a key (cheap: no tensor is read)."""
    return tuple((path, id(m), type(m), m.training, id(m.__dict__.get("forward")), getattr(m, "inplace", None),
                  len(m._forward_hooks), len(m._forward_pre_hooks),
                  tuple((n, id(t), t._version, t.data_ptr(), t.shape, t.dtype)
                        for store in (m._parameters, m._buffers) for n, t in store.items() if t is not None))
                 for path, m in modules.items())


def _composite_key(composite: C.Composite) -> tuple | None:
    """What a plan depends on in the composite; None (nothing reused) where it holds rules of
    other types than interp's, whose printed form may not say everything about them."""
    rules = [*composite.rules.values(), composite.first]
    if any(r is not None and type(r).__module__ != R.__name__ for r in rules):
        return None
    return (repr(composite), composite.first_types, composite.functions)


def _cached(model: nn.Module, kind: str, key: tuple):
    found = _REUSE.get(model, {}).get(kind)
    return found[1] if found is not None and found[0] == key else None


def _remember(model: nn.Module, kind: str, key: tuple, value) -> None:
    _REUSE.setdefault(model, {})[kind] = (key, value)  # one entry per kind: the latest


def _functional(model: nn.Module, composite: C.Composite) -> bool:
    """Whether to run under the function rules from the start: for a model known to need
    them, and for a composite whose function rules are its point (AttnLRP, CP-LRP)."""
    return model in _FUNCTIONAL or composite.functions != FunctionRules()


def _propagate(state: _Canonized, structure: Inputs, target, embedding, reference, one_sample=None,
               functional: bool = False):
    model, composite, modules = state.model, state.composite, state.modules
    # the draft plan gives the first-layer rule only to layers nothing else covers; which
    # layers read the input is seen per call below
    composite_key = _composite_key(composite)
    key = _structure(modules) + (composite_key, tuple(state.pairs.items())) if composite_key is not None else None
    drafted = _cached(model, "draft", key) if key is not None else None
    if drafted is None:
        uncovered = [p for p, m in modules.items()
                     if isinstance(m, C.WEIGHTED) and composite.rule_for(p, m, False) is None]
        drafted = state.plan(readers=uncovered)
        if key is not None:
            _remember(model, "draft", key, drafted)
    draft, chosen = drafted
    _refuse_unsupported(draft)
    # layers that may read the input get the first-layer rule if they do (decided per call)
    candidates = set()
    if composite.first is not None:
        candidates = {p for p, m in modules.items() if isinstance(m, composite.first_types) and p in chosen
                      and composite.path_rule(p) is None}
    # rotary embeddings compute constants; dropout in eval mode is the identity: neither moves relevance
    tapped = [p for p, rule in chosen.items() if not isinstance(rule, R.Positions)
              and not (isinstance(modules[p], _DROPOUTS) and not modules[p].training and isinstance(rule, R.Gradient))]
    layers = {p: (R.layer_of(modules[p], *state.merged.get(p, (None, None))) if isinstance(modules[p], C.WEIGHTED)
                  else R.Layer(modules[p], None, None, None)) for p in tapped}
    hooked = [p for p, rule in chosen.items() if p in candidates or not _is_gradient(rule, modules[p])]
    labels = {p: r.label for p, r in chosen.items()}
    flow = _Flow(structure.batch, {p: type(modules[p]).__name__ for p in tapped}, labels,
                 {p for p in tapped if isinstance(modules[p], C.SHAPES)}, structure.tensors[0].device)
    readers: list[str] = []
    called: set[str] = set()
    direct: list[tuple[str, torch.Tensor, torch.Tensor]] = []

    first_label: dict[str, str] = {}  # the rule of each layer's first call

    mode = FunctionMode(composite.functions, tap=None) if functional else None
    root = next(iter(modules))
    paths = {id(m): p for p, m in modules.items()}

    def tap_function(kind, given, output, part):
        where = _caller(paths, root)
        if kind == "constant":
            flow.add_constant(f"{where}:constant", "constant", output, part)
            return
        if kind in modules:  # a constant module output shared by the batch, added in here
            flow.add_constant(kind, type(modules[kind]).__name__, output, part)
            return
        name = f"{where}:{kind}"
        flow.kinds.setdefault(name, f"{kind} (function)")
        kind_of_rule = kind if kind in ("softmax", "attention") else "normalization"
        labels.setdefault(name, composite.functions.label(kind_of_rule))
        first_label.setdefault(name, labels[name])
        for t in given if isinstance(given, list) else [given]:  # attention: queries, keys and values
            flow.add_input(name, t, t)
        flow.add_output(name, output)

    if mode is not None:
        mode.tap = tap_function

    @unwatched  # interp's own operations: never the user's in-place writes
    def tap_in(name, args):
        called.add(name)
        if mode is not None:
            mode.depth += 1
        if not args or not isinstance(args[0], torch.Tensor) or not args[0].requires_grad:
            return None
        view = args[0][...]   # this layer's own alias (strides kept): its gradient is what the layer passed back
        flow.add_input(name, args[0], view)
        return (view, *args[1:])

    def apply_rule(name, args, output):
        x_in, rule = args[0], chosen[name]
        if name in candidates and _reads_input(x_in):
            rule = composite.first
            if name not in readers:
                readers.append(name)
        if name in first_label and rule.label != first_label[name] and rule.label not in labels[name]:
            labels[name] = f"{labels[name]} / {rule.label}"  # calls with different rules (one read the input)
        elif name not in first_label:
            labels[name] = rule.label
        first_label.setdefault(name, rule.label)
        if rule.direct:
            index = len(flow.inputs) - 1

            def record(layer_input, r_in, name=name, index=index):
                direct.append((name, layer_input, r_in))
                flow.direct[index] = r_in
            return _Direct.apply(x_in, output.detach(), rule, layers[name], record)
        return None if _is_gradient(rule, modules[name]) else rule.apply(layers[name], x_in, output)

    @unwatched
    def after(name, args, output):
        if mode is not None:
            mode.depth -= 1
        if not isinstance(output, torch.Tensor) or not args or not isinstance(args[0], torch.Tensor) \
                or not args[0].requires_grad:
            return None
        if name in hooked_rules:
            replaced = apply_rule(name, args, output)
            output = output if replaced is None else replaced
        if output.requires_grad:
            flow.add_output(name, output)
            _mark_internal(output.grad_fn, {a.grad_fn for a in args if isinstance(a, torch.Tensor)}, internal)
        if mode is not None and isinstance(chosen[name], R.Pass):
            mode.gate(output)  # an activation's output: a gate, where the function rules hold gates constant
        return output

    internal: set = set()

    def embedded(name, args, output):
        # an embedding that does not read the input (positions, token types) adds a constant
        # in; the one that reads it has its output replaced, and gets no gradient here
        if isinstance(output, torch.Tensor) and output.requires_grad:
            if output.ndim and output.shape[0] == structure.batch:
                flow.add_constant(name, type(modules[name]).__name__, output)
            elif mode is not None:  # shared by the batch: its share is taken where it is added
                mode.constant(name, output)

    try:
        hooked_rules = set(hooked)
        watching = may_write_in_place(model)
        before, afters = {p: tap_in for p in tapped}, {p: after for p in tapped}
        for p, m in modules.items():
            if isinstance(m, EMBEDDINGS):
                afters[p] = embedded
        with hooked_modules(modules, before=before, after=afters), \
                (saved_copy_on_write() if watching else contextlib.nullcontext()) as saved, \
                (watch_writes(lambda t: (flow.before_write(t), saved(t))) if watching else contextlib.nullcontext()), \
                (mode if mode is not None else contextlib.nullcontext()):
            space = prepare(model, structure, embedding, graph=True)
        flow.check_unwritten()
        if not space.graph.requires_grad:
            held = [n for n in flow.order if isinstance(chosen.get(n), R.HeldConstant)]
            if held:
                kind = type(modules[held[-1]]).__name__
                raise InterpError(f"the model's output comes through {held[-1]!r} ({kind}), "
                                  "which LRP holds constant (as attention weights); explain the scores before it (the "
                                  "logits): drop the final softmax, or give that module another rule")
            raise InterpError("the model's output does not depend on its input through autograd (is it detached "
                              "inside the forward?); LRP needs the path from input to output")
        governed = internal | mode.internal if mode is not None else internal
        crossed, functional = _crossed_ops(space.graph, governed)
        if crossed and mode is None and _functions_may_explain(crossed):
            raise _NeedsFunctions()
        if crossed:
            raise InterpError(f"the forward computes {', '.join(crossed)} outside any module, and no LRP rule covers "
                              "it (function calls get rules for softmax, products of signals, element-wise "
                              "activations, normalisation and scaled_dot_product_attention); relevance crossing it "
                              "would not be conserved. Wrap it in a module and give that module a rule")
        if functional:
            raise InterpError(f"the forward multiplies by a parameter outside a module ({', '.join(functional)}, e.g. "
                              "F.linear(h, self.embedding.weight) for a tied weight, or x * self.scale); LRP gives "
                              "rules to modules, so this would get plain LRP-0 instead of the composite's rule. Apply "
                              "it through a module (an nn.Linear sharing the weight, or a small module whose type "
                              "you give a rule)")
        t = resolve_target(target, space.scores)
        if reference is not None:  # the canonized model against the original, on the first sample
            _check_same(space.scores[:1], reference, draft)
        seed = torch.zeros_like(space.graph).scatter_(1, t[:, None], 1.0)
        grads = torch.autograd.grad(space.graph, list(space.inputs) + flow.tensors(), seed, allow_unused=True)
        explained = len(space.inputs)
        flow.take_grads(grads[explained:])
        if flow.ambiguous():  # shapes on copies of one sample: the trace saw them where it saw every tapped layer
            known = one_sample if one_sample is not None and all(p in one_sample for p in tapped) else None
            probe = structure.probe()
            flow.find_batch_axes(known or _shapes_on_copies(model, modules, tapped, probe), probe.batch)
        inputs = [a.detach() for a in space.inputs]
        relevance = [a * g if g is not None else torch.zeros_like(a) for a, g in zip(inputs, grads[:explained])]
        for name, layer_input, r_in in direct:
            reads = [i for i, (a, h) in enumerate(zip(inputs, space.handed or inputs))
                     if holds(layer_input, a) or holds(layer_input, h)]
            if reads:
                relevance[reads[0]] = relevance[reads[0]] + r_in.reshape(inputs[reads[0]].shape)
            elif bool(r_in.abs().sum() > 0):
                raise InterpError(f"rule {chosen[name].label} on {name!r} is an input-layer rule, but {name!r} reads "
                                  "another layer's output, not the input; give it another rule (e.g. "
                                  f"with_rules({{{name!r}: interp.lrp.rules.Epsilon()}})) or use a composite without "
                                  "a special first layer")
        relevance = [r.sum(-1) if e is not None else r for r, e in zip(relevance, space.embeddings)]
        score = space.scores.gather(1, t[:, None])[:, 0]
        the_plan = _not_called(_with_first_layers(draft, readers, labels), called)
        per_input = []
        for given, slot in zip(structure.tensors, space.slots):
            dtype = given.dtype if given.is_floating_point() else torch.float32
            per_input.append(None if slot is None else relevance[slot].detach().to(dtype))
        return structure.pack(per_input), t, score, space.embedding, the_plan, flow
    except BaseException:
        # the graph holds _Direct's record, which holds the flow and ``direct``, which hold the
        # graph: a cycle through C++ the collector cannot see, dropped by hand
        flow.release()
        direct.clear()
        raise


def _caller(paths: dict[int, str], root: str) -> str:
    """The path of the innermost module whose forward is running (read off the Python stack:
    cheaper than hooks on every container, and only asked when a function rule taps)."""
    frame = sys._getframe(2)
    while frame is not None:
        owner = frame.f_locals.get("self") if "self" in frame.f_code.co_varnames else None
        if owner is not None and id(owner) in paths:
            return paths[id(owner)]
        frame = frame.f_back
    return root


def _shapes_on_copies(model, modules, tapped, x: Inputs) -> dict[str, tuple[list, list]]:
    """Per tapped layer, its calls' input and output shapes on ``x`` (copies of one sample)."""
    shapes: dict[str, tuple[list, list]] = {p: ([], []) for p in tapped}

    def before(name, args):
        if args and isinstance(args[0], torch.Tensor):
            shapes[name][0].append(tuple(args[0].shape))

    def after(name, _args, output):
        if isinstance(output, torch.Tensor):
            shapes[name][1].append(tuple(output.shape))

    with hooked_modules(modules, before={p: before for p in tapped}, after={p: after for p in tapped}), \
            torch.no_grad():
        x.copy().call(model)
    return shapes


def _not_called(the_plan: Plan, called: set[str]) -> Plan:
    """The plan with modules that never ran on the input noted as such."""
    rows = tuple(dataclasses.replace(r, note=NOT_CALLED) if r.role == "rule" and r.name not in called and not r.note
                 else r for r in the_plan.rows)
    return dataclasses.replace(the_plan, rows=rows)


NOT_CALLED = "not called on this input"


def _with_first_layers(draft: Plan, readers: list[str], labels: dict[str, str]) -> Plan:
    """The draft plan with the first-layer rule where the run found layers reading the input."""
    if tuple(readers) == draft.first_layers:
        return draft
    rows = tuple(dataclasses.replace(r, rule=labels[r.name])
                 if r.role == "rule" and labels.get(r.name, r.rule) != r.rule else r for r in draft.rows)
    return dataclasses.replace(draft, rows=rows, first_layers=tuple(readers))


def _is_gradient(rule: R.Rule, module: nn.Module) -> bool:
    """Rules whose effect is the plain gradient need no hook."""
    if isinstance(rule, (R.Gradient, R.WinnerTakeAll, R.SoftmaxRule, R.Positions)):
        return True
    if isinstance(rule, R.Epsilon) and rule.epsilon == 0:
        return True
    return isinstance(rule, R.Pass) and isinstance(module, R.GRADIENT_IS_PASS)


def _check_same(scores: torch.Tensor, reference: torch.Tensor, the_plan: Plan) -> None:
    diff = float((scores - reference).abs().max()) if scores.shape == reference.shape else float("inf")
    tol = 1e-5 * max(1.0, float(reference.abs().max()))
    if not diff <= tol:
        names = ", ".join(n for n, _ in the_plan.canonizers) or "none"
        raise _NotSame(f"the canonized model's output differs from the original's by {diff:.3g} on this input "
                          f"(more than {tol:.1g}; canonizers: {names}): the model does something the canonizers "
                          "do not reproduce, so LRP would explain another function")


__all__ = ["lrp", "plan", "LRPResult", "LayerRelevance", "Plan", "PlanRow"]
