"""The inputs of one call, and who is at fault when the model fails on them.

Every analysis takes what the model takes: ``x`` is one tensor (``model(x)``), a tuple
of tensors (``model(*x)``) or a dict of tensors (``model(**x)`` when the forward
names the keys, as Hugging Face models do, else ``model(x)``), each with the batch on
its first axis. :func:`as_inputs` checks this once, at the edge, and returns an
:class:`Inputs`: the flat tuple of tensors the analyses work on, the call that hands
them to the model, and :meth:`Inputs.pack`, which puts per-input results (attributions,
relevance) back into the caller's structure. So models with several inputs are wrapped
once, and no analysis branches on the structure (STYLE.md).

The user's model is called only through :meth:`Inputs.call`: an exception from inside
it becomes a :class:`ModelRaised`, and :func:`blame`, around every public analysis,
decides whose fault it is once the analysis has undone its hooks: if the model fails
on the input as it is (run plainly, without autograd), the input is (an
:class:`~interp.errors.InputError` naming its shapes and what the model expects);
if the model runs plainly but fails under the analysis (typically an in-place write
into a tensor autograd needs), the model is (a :class:`~interp.errors.ModelError`
saying what to change). Torch's exception stays the cause.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import InputError, InterpError, ModelError, UnknownNameError
from .modules import hooked, module_names


@dataclass(frozen=True)
class Inputs:
    """One batch of a model's inputs. ``tensors``: the inputs in order; ``keys``: their
    names when given as a dict (None for a tensor or a tuple); ``single``: one tensor was
    given; ``spread``: a dict the model takes as keyword arguments."""

    tensors: tuple[torch.Tensor, ...]
    keys: tuple[str, ...] | None = None
    single: bool = True
    spread: bool = False

    @property
    def batch(self) -> int:
        return self.tensors[0].shape[0]

    @property
    def names(self) -> list[str]:
        """A name per input: ``"input"`` for one tensor, ``"input 0"``, ... or the dict keys."""
        if self.single:
            return ["input"]
        return list(self.keys) if self.keys is not None else [f"input {i}" for i in range(len(self.tensors))]

    def signature(self) -> tuple:
        """What the inputs are, not what they hold: per tensor its shape without the batch
        axis, dtype and device, with the names and how they are passed (a cache key)."""
        return (tuple((t.shape[1:], t.dtype, t.device) for t in self.tensors), self.keys, self.single, self.spread)

    def call(self, model: nn.Module, tensors: Sequence[torch.Tensor] | None = None) -> Any:
        """``model`` on these inputs (or on ``tensors`` in their place), as the model takes
        them; an exception from inside the model is a :class:`ModelRaised`."""
        t = self.tensors if tensors is None else tuple(tensors)
        try:
            if self.single:
                return model(t[0])
            if self.keys is None:
                return model(*t)
            named = dict(zip(self.keys, t))
            return model(**named) if self.spread else model(named)
        except InterpError:
            raise
        except Exception as exc:
            raise ModelRaised(self.describe(t), exc, _expected(model, self)) from exc

    def pack(self, values: Sequence):
        """``values`` (one per input) in the structure the inputs were given in."""
        values = tuple(values)
        if self.single:
            return values[0]
        return dict(zip(self.keys, values)) if self.keys is not None else values

    def replace(self, tensors: Sequence[torch.Tensor]) -> Inputs:
        return Inputs(tuple(tensors), self.keys, self.single, self.spread)

    def copy(self) -> Inputs:
        """The same inputs in memory of their own: what an analysis hands a forward it runs
        plainly, so that a forward writing into its input never writes into the caller's."""
        return self.replace(t.clone() for t in self.tensors)

    def probe(self) -> Inputs:
        """Copies of the first sample, two (three for a batch of two): a small batch for passes
        that look at the model's structure, which a forward squeezing its batch axis cannot
        collapse, and whose size tells the batch axis from one as long as the batch."""
        return self.rows(torch.zeros(2 if self.batch != 2 else 3, dtype=torch.long))

    def rows(self, index) -> Inputs:
        """The samples ``index`` (a slice, an index tensor) of every input."""
        return self.replace(t[index] for t in self.tensors)

    def describe(self, tensors: Sequence[torch.Tensor] | None = None) -> str:
        t = self.tensors if tensors is None else tensors
        parts = [f"shape {tuple(v.shape)} and dtype {_dtype(v)}" for v in t]
        if self.single:
            return f"an input of {parts[0]}"
        return "inputs " + ", ".join(f"{n} ({p})" for n, p in zip(self.names, parts))


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def _takes_keywords(model: nn.Module, keys) -> bool:
    """Whether ``model.forward`` takes the dict's keys as keyword arguments (Hugging Face style):
    every key names a parameter (or the forward takes ``**kwargs``), and every parameter it
    needs is among them. Otherwise the dict is one argument (``forward(self, batch)``)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = {n for n, p in params.items() if p.kind in kinds}
    needed = {n for n, p in params.items() if p.kind in kinds and p.default is inspect.Parameter.empty}
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return needed <= set(keys) and (open_ended or set(keys) <= named)


def per_input(option, structure: Inputs, what: str) -> list:
    """An option given once, or per input of a model of several (a dict by input name, or a
    tuple or list with one entry per input), as one value per input."""
    n = len(structure.tensors)
    if structure.single:
        return [option]
    if isinstance(option, dict):
        unknown = [k for k in option if k not in structure.names]
        if unknown:
            raise UnknownNameError(f"input in {what}", unknown[0], structure.names)
        return [option.get(name) for name in structure.names]
    if isinstance(option, list) or (isinstance(option, tuple) and len(option) == n
                                    and not all(isinstance(v, int) for v in option)):
        if len(option) != n:
            raise InputError(f"{what} gives {len(option)} values for {n} inputs; expected one per input "
                             f"({', '.join(structure.names)}) or a dict by name")
        return list(option)
    return [option] * n


def as_inputs(x, model: nn.Module | None = None, *, at_least_2d: bool = True) -> Inputs:
    """``x`` (a tensor, a tuple or list of tensors, a dict of tensors) as :class:`Inputs`, or an
    InputError saying what was expected. Every tensor has the batch on its first axis, with
    the same number of samples; a single tensor is at least 2-D unless ``at_least_2d`` is
    False (a tuple's parts may be (batch,))."""
    if isinstance(x, Inputs):
        return x
    if isinstance(x, torch.Tensor):
        if x.ndim < (2 if at_least_2d else 1):
            raise InputError(f"the input must be a batch tensor (batch first, at least "
                             f"{2 if at_least_2d else 1}-D); got shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise InputError("the input batch is empty")
        return Inputs((x,))
    if isinstance(x, dict):
        if not x or not all(isinstance(k, str) for k in x):
            raise InputError("a dict of inputs must map names (strings) to tensors; got "
                             f"{'an empty dict' if not x else 'keys ' + ', '.join(map(repr, list(x)[:5]))}")
        keys, tensors = tuple(x), tuple(x.values())
        spread = model is not None and _takes_keywords(model, keys)
        structure = Inputs(tensors, keys, False, spread)
    elif isinstance(x, (tuple, list)) and x:
        structure = Inputs(tuple(x), None, False, False)
    else:
        got = "an empty tuple" if isinstance(x, (tuple, list)) else type(x).__name__
        raise InputError(f"the input must be a batch tensor, a tuple of tensors or a dict of tensors (several "
                         f"inputs, each batch first); got {got}")
    for name, t in zip(structure.names, structure.tensors):
        if not isinstance(t, torch.Tensor):
            raise InputError(f"{name} is {type(t).__name__}; every input must be a tensor with the batch first "
                             "(pass constants to the model another way, e.g. as module attributes)")
        if t.ndim == 0:
            raise InputError(f"{name} is a 0-d tensor; every input must have the batch on its first axis")
    sizes = {t.shape[0] for t in structure.tensors}
    if len(sizes) != 1:
        listed = ", ".join(f"{n} {t.shape[0]}" for n, t in zip(structure.names, structure.tensors))
        raise InputError(f"the inputs hold different numbers of samples ({listed}); expected one batch axis, "
                         "first, of the same size in every input")
    if sizes == {0}:
        raise InputError("the input batch is empty")
    return structure


class ModelRaised(InputError):
    """The user's model raised inside an analysis (raised by :meth:`Inputs.call`, turned
    into an InputError or a ModelError by :func:`blame`)."""

    def __init__(self, given: str, exc: BaseException, expected: str):
        self.given, self.exc = given, exc
        super().__init__(f"the model failed on {given} ({_first_line(exc)}); expected {expected}")


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def expected_input(model: nn.Module) -> str:
    """What the model's first layer takes, in words, for error messages."""
    for m in model.modules():
        if next(m.children(), None) is not None:
            continue
        p = next(m.parameters(), None)
        dtype = str(p.dtype).replace("torch.", "") if p is not None else "float32"
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
            return f"integer token ids in [0, {m.num_embeddings - 1}], shaped (batch, tokens)"
        if isinstance(m, nn.Linear):
            return f"{dtype} inputs whose last dimension is {m.in_features} (its first layer is {m})"
        if isinstance(m, nn.modules.conv._ConvNd):
            dims = len(m.kernel_size)
            where = ", ".join(["H", "W", "D"][:dims]) if dims > 1 else "L"
            return f"{dtype} inputs shaped (batch, {m.in_channels}, {where}) (its first layer is {m})"
        if isinstance(m, nn.RNNBase):
            return f"{dtype} sequences with {m.input_size} features per step (its first layer is {m})"
    return "a batch the model accepts"


def _expected(model: nn.Module, inputs: Inputs) -> str:
    if inputs.single:
        return expected_input(model)
    try:
        return f"what {type(model).__name__}.forward{inspect.signature(model.forward)} takes"
    except (TypeError, ValueError):
        return "a batch the model accepts"


# what autograd says when a forward wrote in place into a tensor it (or an analysis) needs
_INPLACE = re.compile(r"in-?place|inplace|is a view and is being modified|leaf Variable that requires grad")
_DETACHED = re.compile(r"does not require grad|does not have a grad_fn")
_BATCH_SIZE = re.compile(r"is invalid for input of size|doesn't match the broadcast shape|must match the size")


def _hint(exc: BaseException) -> str:
    text = str(exc)
    if _INPLACE.search(text):
        return ("its forward writes in place into a tensor that autograd needs (x += y, x.add_(...), x[i] = v, or "
                "a write into its input); write that step out of place (x = x + y)")
    if _BATCH_SIZE.search(text):
        return ("the analysis runs it on batches of other sizes (copies of the input, steps of a path), and its "
                "forward fixes the batch size (view(3, ...)); write it with the batch size read from the input "
                "(view(x.shape[0], ...))")
    if _DETACHED.search(text):
        return ("its forward cuts the autograd graph (torch.no_grad(), .detach(), .item() or .numpy() on the way "
                "to the output), so there is no gradient to follow")
    return ("it runs on the same input without the analysis, so the failure comes from how its forward behaves "
            "under it (autograd on, hooks on its modules) or from state of its own")


def _plain_failure(model: nn.Module, inputs: Inputs) -> BaseException | None:
    """The exception ``model`` raises on ``inputs`` run plainly (no autograd, no hooks of ours),
    or None; buffers (running statistics) are put back afterwards."""
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        with torch.no_grad():
            inputs.copy().call(model)
    except ModelRaised as raised:
        return raised.exc
    except Exception as exc:  # noqa: BLE001 - whatever the model raises is the answer
        return exc
    finally:
        with torch.no_grad():
            for b, value in buffers:
                if not torch.equal(b, value):
                    b.copy_(value)
    return None


def _failing_module(model: nn.Module, inputs: Inputs) -> tuple[str | None, str | None]:
    """(the module that was running when the plain forward failed, the first leaf module
    called), by running it once more with a note of each module entered and left."""
    modules = module_names(model)
    stack: list[str] = []
    first: list[str] = []

    def enter(name, _args):
        stack.append(name)
        if not first and next(modules[name].children(), None) is None:
            first.append(name)

    def leave(name, _args, _out):
        if stack and stack[-1] == name:
            stack.pop()

    try:
        with hooked(modules, before={n: enter for n in modules}, after={n: leave for n in modules}), \
                torch.no_grad():
            inputs.copy().call(model)
    except Exception:  # noqa: BLE001 - the failure being located
        pass
    return (stack[-1] if stack else None), (first[0] if first else None)


def blamed(model: nn.Module, inputs: Inputs, analysis: str, exc: BaseException) -> InterpError:
    """The error to raise for ``exc``, raised inside the user's model during ``analysis``:
    an InputError when the model fails on the input as it is (naming the module that
    refused it), a ModelError when only the analysis makes it fail."""
    inner = exc.exc if isinstance(exc, ModelRaised) else exc
    plain = _plain_failure(model, inputs)
    if plain is not None:
        where, first = _failing_module(model, inputs)
        if where is None or where == first or where in ("model", "(model)"):
            return InputError(f"the model failed on {inputs.describe()} ({_first_line(plain)}); expected "
                              f"{_expected(model, inputs)}")
        module = dict(model.named_modules()).get(where)
        return InputError(f"the model failed on {inputs.describe()} inside {where!r} ({module}): "
                          f"{_first_line(plain)}. Its first layer takes {_expected(model, inputs)}, and got this "
                          "input, so either the input's size is not the one the model was built for, or the "
                          "model's layers do not fit each other")
    hint = _hint(inner)
    if inputs.batch > 1 and _plain_failure(model, inputs.probe()) is not None:  # other batch sizes fail
        hint = ("its forward runs on this batch but not on a batch of another size (a size fixed in the model, "
                "e.g. an initial state or a view with the batch written in); the analysis runs it on copies and "
                "sub-batches, so read the batch size from the input")
    return ModelError(f"the model runs on {inputs.describe()}, but fails under {analysis} ({_first_line(inner)}): "
                      f"{hint}")


@contextlib.contextmanager
def blame(model: nn.Module, inputs: Inputs, analysis: str) -> Iterator[None]:
    """Around a public analysis (outermost, so its hooks are gone when this runs): a failure
    inside the user's model, or autograd refusing what the forward did in place, becomes
    an InputError or a ModelError (see :func:`blamed`), with torch's exception as the cause."""
    try:
        yield
    except ModelRaised as raised:
        raise blamed(model, inputs, analysis, raised) from raised.exc
    except InterpError:
        raise
    except Exception as exc:
        known = isinstance(exc, RuntimeError) and (_INPLACE.search(str(exc)) or _DETACHED.search(str(exc)))
        if not (known or _raised_in_user_code(exc)):
            raise  # interp's, Captum's or torch's own failure: not the model's, nor the input's
        raise blamed(model, inputs, analysis, exc) from exc


_LIBRARIES = tuple(str(Path(m.__file__).resolve().parent) for m in (torch,)) + (str(Path(__file__).resolve().parent),)


def _raised_in_user_code(exc: BaseException) -> bool:
    """Whether the innermost Python frame of ``exc`` is neither interp's, nor torch's, nor a
    library's: the user's own code (a custom autograd function's backward, say)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = str(Path(tb.tb_frame.f_code.co_filename).resolve())
    return not (filename.startswith(_LIBRARIES) or "site-packages" in filename or filename.startswith("<frozen"))


def check_model(model: nn.Module, inputs: Inputs | None = None, verb: str = "the analysis") -> None:
    """ModelError for a model without values (parameters on the meta device); InputError for
    inputs on another device than the model's parameters."""
    if not isinstance(model, nn.Module):
        raise InputError(f"{verb} needs an nn.Module; got {type(model).__name__}")
    p = next(model.parameters(), None)
    if p is None:
        p = next(model.buffers(), None)
    if p is None:
        return
    if p.device.type == "meta":
        raise ModelError(f"the model's parameters are on the meta device (shapes without values), so {verb} has "
                         "nothing to compute with; load its weights first (model.to_empty(device='cpu') then "
                         "load_state_dict, or build it without device='meta')")
    if inputs is not None:
        for name, t in zip(inputs.names, inputs.tensors):
            if t.device != p.device and t.device.type != "meta":
                raise InputError(f"{name} is on {t.device} and the model's parameters on {p.device}; move the "
                                 f"input (x.to('{p.device}')) or the model")


__all__ = ["Inputs", "as_inputs", "per_input", "ModelRaised", "blame", "blamed", "check_model", "expected_input"]
