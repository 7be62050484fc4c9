"""The space explanations live in, shared by attribution, LRP and sensitivity.

Per input of the model (see :mod:`interp.inputs`): a float input is explained as it
is; integer token ids are explained through the output of the embedding layer that
reads them (one vector per token, whose values gradients and baselines are defined
for); any other input (an attention mask, a boolean flag) is a constant, explained by
nothing. :func:`prepare` finds this in one forward pass and returns a :class:`Space`:
the tensors to explain, the constants, and ``forward(*inputs, *constants)``, the model
as a function of them, as Captum wants it (it expands the constants with the batch).

An embedding "reads" token ids when it is given them, a reshape or transpose of them
(``tokens.t()`` for a time-major model, ``ids.view(-1, n)``), or a copy of one
(``tokens.t().contiguous()``): its output is then taken back to the ids' own layout,
batch first, whatever order the model embeds in.

Also here: :func:`exclusive` and :func:`as_found`, the guard every analysis that
runs the model itself runs in (one analysis of a model at a time; the model left
exactly as found, also after an error). Analyses are serialised per model, not per
process: two of them wait for each other only when their models share a module, a
parameter or a buffer (a model, its parts and the wrappers around it are one model
here), since what an analysis changes lives on the modules it runs (Captum's hooks and
attributes, modes, ``inplace`` flags, gradients), and the rest of torch's state it uses
is the thread's own (see the comment above :class:`_Gate`). ``exclusive()`` without a
model still excludes every analysis in the process.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref
from dataclasses import dataclass

import torch
from torch import nn

from ._checks import scores_of
from .capture import intervene, module_names
from .errors import InputError, UnknownNameError
from .inplace import may_write_in_place, out_of_place, saved_copy_on_write, watch_writes
from .inputs import Inputs

EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


# ---------------------------------------------------------------------------- reading token ids

def holds(t: torch.Tensor, ids: torch.Tensor) -> bool:
    """Whether ``t`` holds exactly the elements of ``ids`` (the tensor itself, a reshape or a
    transpose of it; not a slice): what "reads the input" means."""
    return t.data_ptr() == ids.data_ptr() and t.numel() == ids.numel()


def _relation(view: torch.Tensor, ids: torch.Tensor):
    """How ``view`` (given to an embedding) re-indexes the contiguous token ids ``ids``: None
    (it is ``ids`` as they are), ``("permute", axes)`` (``ids.permute(axes)``, e.g.
    ``tokens.t()``), ``("reshape", None)`` (``ids.view(...)``), or ``("gather", order)``
    with the flat index into ``ids`` of each of its elements."""
    if view.shape == ids.shape and view.stride() == ids.stride():
        return None
    if view.storage_offset() == ids.storage_offset():
        if view.ndim == ids.ndim:
            axes: list[int] = []
            for size, stride in zip(view.shape, view.stride()):
                match = [j for j in range(ids.ndim) if ids.shape[j] == size and ids.stride(j) == stride
                         and j not in axes]
                if len(match) != 1:
                    break
                axes.append(match[0])
            else:
                return ("permute", tuple(axes))
        if view.is_contiguous():
            return ("reshape", None)
    flat = torch.arange(ids.numel(), device=ids.device)
    return ("gather", torch.as_strided(flat, view.shape, view.stride(),
                                       view.storage_offset() - ids.storage_offset()).reshape(-1))


def to_ids_layout(output: torch.Tensor, relation, ids_shape: torch.Size) -> torch.Tensor:
    """An embedding's output (one vector per element of the view it was given, see
    :func:`_relation`) in the ids' own layout: (batch, ..., dim)."""
    if relation is not None and relation[0] == "window":  # the ids padded: their own positions
        return output[..., relation[1]:relation[1] + ids_shape[-1], :]
    if relation is None or output.ndim < 1 or output[..., 0].numel() != ids_shape.numel():
        return output
    kind, how = relation
    if kind == "permute":
        inverse = [0] * len(how)
        for i, j in enumerate(how):
            inverse[j] = i
        return output.permute(*inverse, output.ndim - 1)
    if kind == "reshape":
        return output.reshape(*ids_shape, output.shape[-1])
    flat = output.reshape(-1, output.shape[-1])
    back = torch.empty_like(flat)
    back[how] = flat
    return back.reshape(*ids_shape, output.shape[-1])


def to_view_layout(values: torch.Tensor, relation, view_shape: torch.Size,
                   output: torch.Tensor | None = None) -> torch.Tensor:
    """The inverse of :func:`to_ids_layout`; a view (a permute or a reshape: the model's first
    layers still read the explained tensor itself) unless the re-indexing needs a gather.
    For ids padded (a window), the embedding's ``output`` gives the padding's vectors."""
    if relation is None:
        return values
    kind, how = relation
    if kind == "window":
        pad = output.detach()
        return torch.cat([pad[..., :how, :], values, pad[..., how + values.shape[-2]:, :]], dim=-2)
    if kind == "permute":
        return values.permute(*how, values.ndim - 1)
    if kind == "reshape":
        return values.reshape(*view_shape, values.shape[-1])
    return values.reshape(-1, values.shape[-1])[how].reshape(*view_shape, values.shape[-1])


_SAME = ("same", None)


def relation_to(given, ids: torch.Tensor):
    """How ``given`` (what an embedding was handed) holds the token ids ``ids``: the ids
    themselves or a view of them (:func:`_relation`; ``_SAME`` for the ids as they are), or
    a copy of a transpose or reshape of them (``tokens.t().contiguous()``, as the PyTorch
    tutorials write it), found by value; None when it does not hold them."""
    if not isinstance(given, torch.Tensor):
        return None
    if given.numel() != ids.numel():
        return _window(given, ids)
    if holds(given, ids):
        return _relation(given, ids) or _SAME
    if given.dtype != ids.dtype or given.device != ids.device:
        return None
    if given.shape == ids.shape and torch.equal(given, ids):
        return _SAME
    if given.ndim == ids.ndim:
        for axes in itertools.permutations(range(ids.ndim)):
            permuted = ids.permute(axes)
            if permuted.shape == given.shape and torch.equal(permuted, given):
                return ("permute", tuple(axes))
    if torch.equal(given.reshape(-1), ids.reshape(-1)):
        return ("reshape", None)
    return None


def _window(given, ids: torch.Tensor):
    """``("window", offset)`` when ``given`` is ``ids`` padded along the last axis (a start
    token prepended, an end token appended: ``F.pad(ids, (1, 0), value=bos)``), found by value."""
    if not isinstance(given, torch.Tensor) or given.dtype != ids.dtype or given.device != ids.device \
            or given.ndim != ids.ndim or ids.ndim == 0 or given.shape[:-1] != ids.shape[:-1] \
            or given.shape[-1] <= ids.shape[-1]:
        return None
    n = ids.shape[-1]
    for offset in range(given.shape[-1] - n + 1):
        if torch.equal(given[..., offset:offset + n], ids):
            return ("window", offset)
    return None


def reads_tokens(given, output, ids: torch.Tensor, graph: bool):
    """For an embedding call given ``given`` and returning ``output``: None when ``given`` does
    not hold the ids (see :func:`relation_to`), else (the output in the ids' layout as a new
    leaf, what to hand on)."""
    relation = relation_to(given, ids) if isinstance(output, torch.Tensor) else None
    if relation is None:
        return None
    relation = None if relation == _SAME else relation
    values = to_ids_layout(output.detach(), relation, ids.shape).clone().requires_grad_(graph)
    return values, to_view_layout(values, relation, given.shape, output)


# ---------------------------------------------------------------------------- the space

@dataclass
class Space:
    """Where explanations happen (see the module docstring).

    ``inputs``: the tensors explained, batch first, in the order of the model's inputs (a
    float input itself, or the embedding values of token ids). ``constants``: the other
    arguments ``forward`` needs, in order (token ids, inputs explained by nothing).
    ``slots``: per model input, its index in ``inputs``, or None for a constant.
    ``embeddings``: per explained tensor, the embedding layer of token ids, else None."""

    model: nn.Module
    structure: Inputs
    forward: nn.Module               # (*inputs, *constants) -> (batch, scores)
    inputs: tuple[torch.Tensor, ...]
    constants: tuple[torch.Tensor, ...]
    slots: tuple[int | None, ...]
    embeddings: tuple[str | None, ...]
    scores: torch.Tensor             # (batch, K) at the input, detached
    graph: torch.Tensor | None       # the same scores with autograd graph, when asked for
    handed: tuple = ()               # what the first forward was given for the explained tensors (copies on
                                     # the graph where the forward may write into its input)

    @property
    def tokens(self) -> bool:
        """Whether some explained tensor is the embedding of token ids."""
        return any(e is not None for e in self.embeddings)

    @property
    def embedding(self):
        """The embedding layer of the token ids: its name for one input, a dict by input name
        when several inputs include token ids, else None."""
        if self.structure.single:
            return self.embeddings[0]
        if not self.tokens:
            return None
        return {name: self.embeddings[s] for name, s in zip(self.structure.names, self.slots)
                if s is not None and self.embeddings[s] is not None}

    def run(self, inputs, rows=None) -> torch.Tensor:
        """The scores at explained tensors ``inputs`` (of the rows ``rows`` of the batch, when
        they are a sub-batch or repeated copies: an index tensor into the constants)."""
        constants = self.constants if rows is None else tuple(c[rows] for c in self.constants)
        return self.forward(*inputs, *constants)

    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(t.shape[1:]) for t in self.inputs]


class Forward(nn.Module):
    """The model as a function of the explained tensors and the constants: float inputs as
    given, token ids with the output of their embedding layer replaced by the given values
    (only the call that reads those ids when ``by_identity``, the layer's one call when the
    layer was named), the constants as they are."""

    def __init__(self, model: nn.Module, structure: Inputs, plan: tuple, by_identity: bool, copies: bool = False):
        super().__init__()
        self.model, self.structure, self.plan, self.by_identity = model, structure, plan, by_identity
        self.copies = copies  # hand the model copies of float inputs: its forward may write into them
        self.explained = sum(1 for p in plan if p[0] != "constant")

    def forward(self, *args) -> torch.Tensor:
        values, constants = args[:self.explained], args[self.explained:]
        full, replace = [], {}
        for p in self.plan:
            if p[0] == "float":
                full.append(values[p[1]].clone() if self.copies else values[p[1]])
            elif p[0] == "tokens":
                _, v, c, layer = p
                full.append(constants[c])
                replace.setdefault(layer, []).append((constants[c], values[v]))
            else:
                full.append(constants[p[1]])
        if not replace:
            return scores_of(self.structure.call(self.model, full))

        def swap(name, args, _out):
            given = args[0] if args and isinstance(args[0], torch.Tensor) else None
            for ids, v in replace[name]:
                relation = relation_to(given, ids)
                if relation is not None:
                    return to_view_layout(v, None if relation == _SAME else relation, given.shape, _out)
                if not self.by_identity:
                    return v
            return None

        with intervene(self.model, list(replace), swap):
            return scores_of(self.structure.call(self.model, full))


def _embedding_candidates(model: nn.Module, embedding) -> list[str]:
    modules = module_names(model)
    found = [n for n, m in modules.items() if isinstance(m, EMBEDDINGS)]
    if embedding is not None:
        named = list(embedding.values()) if isinstance(embedding, dict) else [embedding]
        for e in named:
            if e not in modules:
                raise UnknownNameError("embedding layer", e, found or list(modules))
        return named
    return found


def prepare(model: nn.Module, structure: Inputs, embedding=None, graph: bool = False,
            at: torch.Tensor | None = None) -> Space:
    """One forward pass on the inputs: the scores (for the target) and the space to explain
    in. With ``graph`` the explained tensors require grad and the scores keep their
    autograd graph. ``embedding``: the embedding layer that reads the token ids (a name; a
    dict by input name for several inputs), when it cannot be told. ``at``: for one input
    of token ids, embedding values to explain at instead of the embedding's own output."""
    tensors = structure.tensors
    kinds = []
    for t in tensors:
        if t.is_floating_point():
            kinds.append("float")
        elif t.is_complex() or t.dtype == torch.bool:
            if structure.single:
                raise InputError(f"inputs must be float values or integer token ids; got dtype "
                                 f"{str(t.dtype).replace('torch.', '')}")
            kinds.append("constant")
        else:
            kinds.append("tokens")
    if embedding is not None and "tokens" not in kinds:
        raise InputError(f"embedding={embedding!r} applies to token-id inputs; the input is float, explained "
                         "directly")
    # the tensors handed to the model have memory of their own: a forward that writes into its input
    # (an in-place first layer, x -= mean) never writes into the caller's
    leaves = [t.detach().clone().requires_grad_(graph) if k == "float" else t.clone() for t, k in zip(tensors, kinds)]
    token_inputs = [i for i, k in enumerate(kinds) if k == "tokens"]
    ids = {i: leaves[i] for i in token_inputs}
    for i in token_inputs:
        leaves[i] = ids[i]
    candidates = _embedding_candidates(model, embedding) if token_inputs else []
    if token_inputs and not candidates and structure.single:
        raise InputError("integer inputs are token ids, which are explained through the nn.Embedding "
                         "layer that reads them; the model has none (give float inputs, or name the "
                         "layer whose output to explain with embedding=...)")
    wanted = _wanted_layers(embedding, structure, token_inputs)
    seen: dict[int, tuple[str, torch.Tensor]] = {}  # token input -> (layer, values in the ids' layout)

    def take(name, args, output):
        given = args[0] if args else None
        for i in token_inputs:
            named = wanted.get(i)
            if named is not None and named != name:
                continue
            read = reads_tokens(given, output, ids[i], graph)
            if read is None:
                if named is None or not isinstance(output, torch.Tensor):
                    continue
                leaf = output.detach().clone().requires_grad_(graph)  # the named layer, on ids of its own
                read = (leaf, leaf)
            if i in seen:
                raise InputError(f"embedding layer {name!r} reads the token ids more than once per forward; "
                                 "name one read once with embedding=...")
            seen[i] = (name, read[0])
            return read[1]
        return None

    grad_mode = torch.enable_grad() if graph else torch.no_grad()
    writes = may_write_in_place(model)
    with intervene(model, candidates, take) if candidates else contextlib.nullcontext(), grad_mode:
        # the forward gets copies (with a graph: copies on it) where it could write into them, so the
        # explained tensors stay as given (x -= x.mean() in a forward, an in-place first layer)
        copies = not graph or writes
        given = [t.clone() if k == "float" and copies else t for t, k in zip(leaves, kinds)]
        out = scores_of(structure.call(model, given))
    for i in token_inputs:
        if i not in seen:
            if structure.single or i in wanted:
                what = f"{structure.names[i]} is read by none of them" if not structure.single else "none of them"
                raise InputError(f"token ids are explained through the one embedding layer that reads them; "
                                 f"{what} read the input among {', '.join(candidates) or '(no embedding)'}; "
                                 "name it with embedding=...")
            kinds[i] = "constant"  # integer input read by no embedding (e.g. positions, a mask)
    for i in seen:
        name, e = seen[i]
        if not e.is_floating_point() or e.shape[:ids[i].ndim] != ids[i].shape or e.ndim != ids[i].ndim + 1:
            raise InputError(f"embedding layer {name!r} gives {tuple(e.shape)} for token ids {tuple(ids[i].shape)}; "
                             "expected one vector per token")
    handed = tuple(g for g, k in zip(given, kinds) if k == "float") + tuple(e for _, e in seen.values())
    if "float" not in kinds and not seen:
        raise InputError("none of the inputs can be explained: expected float inputs, or integer token ids read "
                         "by an embedding layer")
    plan, explained, constants, slots, embeddings = [], [], [], [], []
    for i, k in enumerate(kinds):
        if k == "float":
            plan.append(("float", len(explained)))
            slots.append(len(explained))
            explained.append(leaves[i])
            embeddings.append(None)
        elif k == "tokens":
            plan.append(("tokens", len(explained), len(constants), seen[i][0]))
            slots.append(len(explained))
            explained.append(seen[i][1])
            embeddings.append(seen[i][0])
            constants.append(ids[i])
        else:
            plan.append(("constant", len(constants)))
            slots.append(None)
            constants.append(leaves[i])
    forward = Forward(model, structure, tuple(plan), by_identity=embedding is None, copies=writes)
    if at is not None:
        if len(explained) != 1 or embeddings[0] is None:
            raise InputError("embedding values to explain at apply to a model of one input of token ids")
        e = explained[0]
        if at.shape != e.shape or not at.is_floating_point():
            raise InputError(f"embedding values to attribute at must be shaped like the embedding's output "
                             f"{tuple(e.shape)}; got {tuple(at.shape)}")
        explained[0] = at.detach().to(e.dtype).requires_grad_(graph)
        with torch.enable_grad() if graph else torch.no_grad():
            out = forward(*explained, *constants)
    return Space(model, structure, forward, tuple(explained), tuple(constants), tuple(slots), tuple(embeddings),
                 out.detach(), out if graph else None, handed)


def _wanted_layers(embedding, structure: Inputs, token_inputs: list[int]) -> dict[int, str]:
    """Token input -> the embedding layer named for it (``embedding=``), if any."""
    if embedding is None:
        return {}
    if isinstance(embedding, dict):
        unknown = [k for k in embedding if k not in structure.names]
        if unknown:
            raise UnknownNameError("input", unknown[0], structure.names, hint="embedding= maps input names to layers")
        return {i: embedding[structure.names[i]] for i in token_inputs if structure.names[i] in embedding}
    if len(token_inputs) != 1:
        raise InputError(f"embedding={embedding!r} names one layer, and {len(token_inputs)} inputs are token ids; "
                         "give a dict {input name: embedding layer}")
    return {token_inputs[0]: embedding}


# ---------------------------------------------------------------------------- running analyses safely

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_HOOK_DICTS = _HOOKS + ("_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")
_CAPTUM_ATTRIBUTES = ("input", "output", "input_ref")  # what DeepLIFT stores on modules while it runs


def _from_captum(hook) -> bool:
    fn = getattr(hook, "__func__", hook)
    return (getattr(fn, "__module__", "") or "").startswith("captum")


# Analyses are serialised per model, not per process. What two analyses can trip over is
# the model itself: Captum's hooks and attributes live on its modules, and :func:`as_found`
# snapshots and restores the modules' hooks, modes and ``inplace`` flags and the
# parameters' ``requires_grad``, ``.grad`` and buffers. Everything else an analysis
# touches is the entering thread's own: grad mode, autograd's saved-tensor hooks
# (:func:`interp.inplace.saved_copy_on_write`) and torch function modes
# (:func:`interp.inplace.watch_writes`, LRP's FunctionMode) are thread-local in torch; the
# one process-wide setting, attention's fast path, is counted (:func:`_fast_path_off`).
# So two analyses must exclude each other exactly when their models share a module, a
# parameter or a buffer; a lock keyed on the object handed in would not do, since one
# model is reached through many wrappers (``OutputPart(model, 0)``, ``Forward``, Hugging
# Face ``Scores``, ``nn.Sequential(encoder, nn.Flatten())``, an embedding analysed alone).
#
# Hence a lock per member: every module, parameter and buffer an analysis runs on is given
# a lock the first time one does, and keeps it for its life (the registry holds it weakly),
# and an analysis takes the locks of all its model's members. Members are given locks
# together, so that a model has few: the members of a model none of whose members had one
# share a new lock; members new to an entry that meets some already (a wrapper's own
# modules) get the first of those. So a model analysed whole takes one lock, as do its
# wrappers; one whose parts were analysed alone first (an embedding, then the model) takes
# the parts' locks too, and so still waits for an analysis of a part, and a part for it,
# while two parts that share nothing run side by side. Locks are taken in the order they
# were made. A member keeps its lock (taking one away would let in an analysis while
# another holds it), so a lock is never dropped but with all its members. Modules a forward
# calls without registering them (kept in a plain list, or module-level) are not seen,
# here as in :func:`as_found`'s restoring. The study layer analyses copies of the
# subject's model, never the user's: a fresh deep copy for each LRP and sensitivity call,
# so those of the dashboard's users share nothing and run side by side (saliency's one
# cached copy per subject is one model: its calls take turns).
#
# ``exclusive()`` without a model is the old process-wide lock: a gate that every
# per-model entry passes shared, and that it takes alone, once every other analysis is
# out (new ones wait while it waits).
#
# Guaranteed: analyses of models that share no member never wait for each other (only
# for ``exclusive()``); a thread's first entry takes its locks all at once or waits
# holding none, so first entries never deadlock; nested entries on the same model, a
# part or a wrapper of it never wait; ``exclusive()`` nested in ``exclusive(model)``
# waits for the other analyses to end (refused, not deadlocked, if two threads do it at
# once). Not guaranteed: an analysis that, inside, enters a model sharing nothing with
# its own waits for that model, and deadlocks if that model's analysis enters its model
# in turn (as with any two locks taken in opposite orders).


class _Gate:
    """A readers-writer lock, re-entrant per thread: shared by the per-model entries,
    held alone by ``exclusive()``. New shared holders wait while someone waits to hold it
    alone; a thread already inside (shared, or alone) always gets in again."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._shared: dict[int, int] = {}  # thread -> how many shared entries it is in
        self._owner: int | None = None  # the thread holding it alone
        self._depth = 0
        self._waiting = 0  # threads waiting to hold it alone
        self._upgrading: int | None = None  # one of them already holding it shared

    def acquire_shared(self) -> bool:
        """Enter shared; True if this thread was already inside (a nested entry)."""
        me = threading.get_ident()
        with self._cond:
            nested = self._owner == me or me in self._shared
            if not nested:
                while self._owner is not None or self._waiting:
                    self._cond.wait()
            self._shared[me] = self._shared.get(me, 0) + 1
            return nested

    def release_shared(self) -> None:
        me = threading.get_ident()
        with self._cond:
            left = self._shared[me] - 1
            if left:
                self._shared[me] = left
            else:
                del self._shared[me]
                self._cond.notify_all()

    def acquire_alone(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            upgrading = me in self._shared
            if upgrading:
                if self._upgrading is not None:  # each would wait for the other to leave
                    raise RuntimeError("exclusive() inside an analysis, in two threads at once, would deadlock")
                self._upgrading = me
            self._waiting += 1
            try:
                while self._owner is not None or any(t != me for t in self._shared):
                    self._cond.wait()
            finally:
                self._waiting -= 1
                if upgrading:
                    self._upgrading = None
                self._cond.notify_all()
            self._owner, self._depth = me, 1

    def release_alone(self) -> None:
        with self._cond:
            self._depth -= 1
            if not self._depth:
                self._owner = None
                self._cond.notify_all()


_GATE = _Gate()


_REGISTRY_LOCK = threading.Lock()
# id(module, parameter or buffer) -> (a weak reference to it, its lock as (order, RLock)): by
# id, as tensors compare elementwise; an entry whose reference is dead is a freed object's
_LOCKS: dict[int, tuple[weakref.ref, tuple[int, threading.RLock]]] = {}
_FREED: list[tuple[int, weakref.ref]] = []  # entries whose object was freed, dropped on the next look-up
_ORDER = itertools.count()  # the order locks are taken in: the order they were made


def _members(model: nn.Module):
    for m in model.modules():
        yield m
        for store in (m._parameters, m._buffers):
            for t in store.values():
                if t is not None:
                    yield t


def _locks(model: nn.Module) -> tuple[tuple[int, threading.RLock], ...]:
    """The locks of ``model``'s modules, parameters and buffers, in the order they are
    taken; members without one are given one (see the comment above :class:`_Gate`)."""
    with _REGISTRY_LOCK:
        while _FREED:
            key, ref = _FREED.pop()
            if key in _LOCKS and _LOCKS[key][0] is ref:
                del _LOCKS[key]
        found: dict[int, tuple[int, threading.RLock]] = {}
        new = []
        for member in _members(model):
            entry = _LOCKS.get(id(member))
            if entry is None or entry[0]() is not member:
                new.append(member)
            else:
                found[entry[1][0]] = entry[1]
        if new:
            lock = found[min(found)] if found else (next(_ORDER), threading.RLock())
            found[lock[0]] = lock
            for member in new:  # the callback takes no lock: it may run here, inside _REGISTRY_LOCK
                key = id(member)
                _LOCKS[key] = (weakref.ref(member, lambda ref, key=key: _FREED.append((key, ref))), lock)
        return tuple(found[order] for order in sorted(found))


def _enter(model: nn.Module) -> tuple:
    """Take the gate shared and the locks of ``model``'s members; returns the locks.

    The first entry of a thread takes all of them or none (waiting for a busy one with
    nothing held), so it is never part of a deadlock. A nested entry (a thread already
    inside an analysis) takes them in order, holding what it holds: on the same model, a
    part of it or a wrapper of it (sensitivity calling attribution), it holds them
    already and never waits; on a model with members outside those, it waits for their
    analyses like any lock taken while holding another, which deadlocks if such an
    analysis, in turn, enters this thread's model: don't nest analyses of unrelated
    models."""
    nested = _GATE.acquire_shared()
    gated = True
    try:
        while True:
            locks = _locks(model)
            if nested:
                taken = []
                try:
                    for _, lock in locks:
                        lock.acquire()
                        taken.append(lock)
                except BaseException:
                    for lock in reversed(taken):
                        lock.release()
                    raise
                return locks
            busy = None
            for i, (_, lock) in enumerate(locks):
                if not lock.acquire(blocking=False):
                    busy = lock
                    for _, held in reversed(locks[:i]):
                        held.release()
                    break
            if busy is None:
                return locks
            _GATE.release_shared()  # out of the way of exclusive() while it waits
            gated = False
            with busy:  # until the analysis holding it is out; then all of them again
                pass
            _GATE.acquire_shared()
            gated = True
    except BaseException:
        if gated:
            _GATE.release_shared()
        raise


_FAST_PATH_LOCK = threading.Lock()
_fast_path = {"inside": 0, "found": True}  # entries inside, and the setting the first of them found


@contextlib.contextmanager
def _fast_path_off():
    """Attention's inference fast path off while any analysis runs (a process-wide setting,
    so counted: the first entry turns it off, the last one out puts back what it found)."""
    with _FAST_PATH_LOCK:
        if not _fast_path["inside"]:
            _fast_path["found"] = torch.backends.mha.get_fastpath_enabled()
            torch.backends.mha.set_fastpath_enabled(False)
        _fast_path["inside"] += 1
    try:
        yield
    finally:
        with _FAST_PATH_LOCK:
            _fast_path["inside"] -= 1
            if not _fast_path["inside"]:
                torch.backends.mha.set_fastpath_enabled(_fast_path["found"])


@contextlib.contextmanager
def exclusive(model: nn.Module | None = None):
    """Run the body as the only analysis of ``model``: of any model that shares a module, a
    parameter or a buffer with it (its parts, the wrappers around it); analyses of other
    models run meanwhile. Re-entrant: nested on the same model, a part of it or a wrapper
    of it, it does not wait. Without a model (or for anything but an ``nn.Module``), the
    only analysis in the process: it waits until every other one is out, and holds new
    ones back. Attention's inference fast path is off meanwhile, so every pass computes
    the same function: nn.MultiheadAttention's fast path (taken without autograd, as in
    Captum's occlusion and convergence deltas) treats padding differently from the
    autograd path."""
    if isinstance(model, nn.Module):
        locks = _enter(model)
        try:
            with _fast_path_off():
                yield
        finally:
            for _, lock in reversed(locks):
                lock.release()
            _GATE.release_shared()
    else:
        _GATE.acquire_alone()
        try:
            with _fast_path_off():
                yield
        finally:
            _GATE.release_alone()


@contextlib.contextmanager
def as_found(model: nn.Module):
    """Run the body as ``exclusive(model)``, with in-place modules run as their out-of-place twins
    (:func:`interp.inplace.out_of_place`) and, where the forward writes in place
    (:func:`interp.inplace.may_write_in_place`), what autograd saves copied before it is
    written (:func:`interp.inplace.saved_copy_on_write`: ``a = lin1(x); a += lin2(a)`` is
    then differentiable as its out-of-place twin). Then put back what it or Captum
    changed: hooks and attributes Captum left on any module are removed, and every
    module's train/eval mode and ``inplace`` flag, every buffer (e.g. running statistics)
    and every parameter's ``requires_grad`` and ``.grad`` are restored (also after an
    error). Hooks of other code (e.g. another thread's ``capture``) stay."""
    watched = may_write_in_place(model)
    with exclusive(model), out_of_place(model), \
            (saved_copy_on_write() if watched else contextlib.nullcontext()) as saved, \
            (watch_writes(saved) if watched else contextlib.nullcontext()):
        modules = list(model.modules())  # walked once: this runs on every call, also the cheap ones
        hooks = [{a: set(getattr(m, a, None) or ()) for a in _HOOKS} for m in modules]
        attributes = [{a for a in _CAPTUM_ATTRIBUTES if a in m.__dict__} for m in modules]
        modes = [m.training for m in modules]
        params = [(p, p.requires_grad, p.grad) for m in modules for p in m._parameters.values() if p is not None]
        buffers = [(b, b.detach().clone()) for m in modules for b in m._buffers.values() if b is not None]
        try:
            yield
        finally:
            for m, before, had, mode in zip(modules, hooks, attributes, modes):
                for a in _HOOKS:
                    stale = [k for k, h in (getattr(m, a, None) or {}).items()
                             if k not in before[a] and _from_captum(h)]
                    for k in stale:  # what RemovableHandle.remove() does
                        for d in (getattr(m, name, None) for name in _HOOK_DICTS):
                            if isinstance(d, dict):
                                d.pop(k, None)
                for a in _CAPTUM_ATTRIBUTES:
                    if a not in had and a in m.__dict__:
                        del m.__dict__[a]
                if m.training != mode:
                    m.training = mode
            for p, flag, grad in params:
                if p.requires_grad != flag:
                    p.requires_grad_(flag)
                if p.grad is not grad:
                    p.grad = grad
            with torch.no_grad():
                for b, value in buffers:
                    if not torch.equal(b, value):
                        b.copy_(value)


__all__ = ["Space", "Forward", "prepare", "holds", "reads_tokens", "exclusive", "as_found", "to_ids_layout",
           "to_view_layout", "EMBEDDINGS"]
