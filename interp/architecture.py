"""Architecture summary: every layer with its type, output shape and parameter count.

``summarize(model, example)`` runs one forward pass on ``example`` through
:func:`interp.capture` (the only hook mechanism) and returns a small frozen
result that figure builders turn into a table; it never keeps the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .capture import capture, leaf_names, module_names
from .errors import InputError
from .inputs import as_inputs, blame


@dataclass(frozen=True)
class LayerRow:
    name: str
    type: str
    output_shapes: tuple[tuple[str, tuple[int, ...]], ...]  # (output name, shape) per recorded output
    parameters: int
    trainable: int

    @property
    def shape_text(self) -> str:
        if not self.output_shapes:
            return "not called"
        parts: list[list] = []  # [text, times seen]
        for out_name, shape in self.output_shapes:
            label = out_name[len(self.name):].lstrip(".")
            text = "×".join(map(str, shape)) or "scalar"
            text = f"{label}: {text}" if label else text
            if parts and parts[-1][0] == text:
                parts[-1][1] += 1
            else:
                parts.append([text, 1])
        return ", ".join(t if k == 1 else f"{t} (×{k} calls)" for t, k in parts)


@dataclass(frozen=True)
class Architecture:
    model_class: str
    input_shape: tuple[int, ...]
    rows: tuple[LayerRow, ...]
    total_parameters: int
    trainable_parameters: int


def summarize(model: nn.Module, example: torch.Tensor) -> Architecture:
    """Summarise ``model`` by running ``example`` (a batch, usually of one) through it.

    Rows: every leaf module, plus any container that owns parameters directly
    (e.g. a learned position embedding), in the order of ``named_modules()``.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"summarize needs an nn.Module; got {type(model).__name__}")
    inputs = as_inputs(example, model, at_least_2d=False)
    modules = module_names(model)
    leaves = set(leaf_names(model))
    chosen = [n for n, m in modules.items()
              if n in leaves or any(True for _ in m.parameters(recurse=False))]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]  # a model in train mode: stats put back
    try:
        with blame(model, inputs, "summarize"), capture(model, chosen) as rec:
            inputs.copy().call(model)
    finally:
        with torch.no_grad():
            for b, value in buffers:
                if not torch.equal(b, value):
                    b.copy_(value)
    rows = []
    for name in chosen:
        module = modules[name]
        own = list(module.parameters(recurse=name in leaves))
        outs = tuple((out, tuple(t.shape)) for out in rec.outputs_of(name) for t in rec.calls[out])
        rows.append(LayerRow(
            name=name, type=type(module).__name__, output_shapes=outs,
            parameters=sum(p.numel() for p in own),
            trainable=sum(p.numel() for p in own if p.requires_grad),
        ))
    params = list(model.parameters())
    return Architecture(
        model_class=type(model).__name__,
        input_shape=tuple(inputs.tensors[0].shape) if inputs.single else tuple(tuple(t.shape) for t in inputs.tensors),
        rows=tuple(rows),
        total_parameters=sum(p.numel() for p in params),
        trainable_parameters=sum(p.numel() for p in params if p.requires_grad),
    )

