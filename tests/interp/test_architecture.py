"""interp.summarize: layer rows, output shapes and parameter counts, checked by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import interp
from interp.errors import InputError
from tests.conftest import assert_untouched, snapshot
from tests.interp.test_capture import Shared


def test_rows_shapes_and_parameter_counts(tiny_mlp):
    before = snapshot(tiny_mlp)
    s = interp.summarize(tiny_mlp, torch.randn(1, 4))
    assert [r.name for r in s.rows] == ["0", "1", "2"]
    assert [r.type for r in s.rows] == ["Linear", "ReLU", "Linear"]
    assert [r.parameters for r in s.rows] == [4 * 3 + 3, 0, 3 * 2 + 2]
    assert [r.shape_text for r in s.rows] == ["1×3", "1×3", "1×2"]
    assert s.total_parameters == 23 == sum(r.parameters for r in s.rows)
    assert s.input_shape == (1, 4)
    assert_untouched(tiny_mlp, before)


def test_container_with_own_parameters_and_repeated_calls():
    class WithPos(nn.Module):
        def __init__(self):
            super().__init__()
            self.pos = nn.Parameter(torch.zeros(5, 3))
            self.body = Shared()

        def forward(self, x):
            return self.body(x + self.pos)

    m = WithPos()
    m.pos.requires_grad_(False)
    s = interp.summarize(m, torch.randn(1, 5, 3))
    rows = {r.name: r for r in s.rows}
    assert rows["model"].parameters == 15 and rows["model"].trainable == 0
    assert rows["body.act"].shape_text == "1×5×3 (×3 calls)"
    assert rows["body.fc"].shape_text == "1×5×3 (×2 calls)"
    assert s.total_parameters == 15 + 12 + 4 and s.trainable_parameters == 16


def test_lstm_sub_outputs_and_unused_module():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(2, 4, batch_first=True)
            self.unused = nn.Linear(4, 4)

        def forward(self, x):
            return self.lstm(x)[0]

    s = interp.summarize(M(), torch.randn(1, 6, 2))
    rows = {r.name: r for r in s.rows}
    assert rows["lstm"].shape_text == "out: 1×6×4, h: 1×1×4, c: 1×1×4"
    assert rows["lstm"].parameters == 4 * 4 * (2 + 4) + 2 * 4 * 4
    assert rows["unused"].shape_text == "not called"


def test_bad_example_or_model_is_an_input_error(tiny_mlp):
    before = snapshot(tiny_mlp)
    with pytest.raises(InputError, match=r"shape \(1, 5\).*expected float32 inputs whose last dimension is 4"):
        interp.summarize(tiny_mlp, torch.randn(1, 5))
    assert_untouched(tiny_mlp, before)
    with pytest.raises(InputError, match="nn.Module"):
        interp.summarize("model", torch.randn(1, 4))
    with pytest.raises(InputError, match="tensor"):
        interp.summarize(tiny_mlp, [[1.0, 2.0, 3.0, 4.0]])
