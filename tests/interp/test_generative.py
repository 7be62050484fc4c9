"""interp.generative: traversals decode the grid they claim (checked against the decoder
itself), vary smoothly, interpolation ends at its two codes, the KL per unit is the
closed form, and bad input is refused; figures draw from the results."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from interp import figures
from interp import generative as G
from interp.errors import InputError

from ..conftest import assert_untouched, snapshot


@pytest.fixture
def decoder():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 36), nn.Sigmoid(),
                         nn.Unflatten(1, (1, 6, 6))).eval()


def test_a_traversal_decodes_the_grid_it_names(decoder):
    before = snapshot(decoder)
    base = torch.randn(4)
    scale = torch.tensor([0.5, 2.0, 1.0, 1.0])
    t = G.traverse(decoder, base, units=(1, 3), span=2.0, steps=5, scale=scale)
    assert t.outputs.shape == (5, 5, 1, 6, 6) and t.units == (1, 3)
    code = base.clone()
    code[1] += t.offsets[0] * 2.0  # row 0: unit 1 at -span x its scale
    code[3] += t.offsets[4] * 1.0  # column 4: unit 3 at +span
    with torch.no_grad():
        torch.testing.assert_close(t.outputs[0, 4], decoder(code[None])[0])
        torch.testing.assert_close(t.outputs[2, 2], decoder(base[None])[0])  # the centre is the base code
    assert_untouched(decoder, before)
    row = G.traverse(decoder, base, directions=torch.tensor([1.0, 0, 0, 0]), steps=3)
    assert row.outputs.shape == (1, 3, 1, 6, 6) and row.units is None


def test_a_traversal_varies_smoothly(decoder):
    t = G.traverse(decoder, torch.zeros(4), units=(0,), span=1.0, steps=21)
    frames = t.outputs[0].flatten(1)
    steps = (frames[1:] - frames[:-1]).norm(dim=1)
    assert float(steps.min()) > 0  # it moves
    assert float(steps.max()) < 3 * float(steps.mean())  # and no step jumps
    assert float(steps.sum()) >= float((frames[-1] - frames[0]).norm())  # a path at least as long as the chord


def test_interpolation_ends_at_its_codes_and_is_scored(decoder):
    critic = nn.Sequential(nn.Flatten(), nn.Linear(36, 1)).eval()
    a, b = torch.randn(4), torch.randn(4)
    p = G.interpolate(decoder, a, b, steps=6, critic=critic)
    with torch.no_grad():
        torch.testing.assert_close(p.outputs[0], decoder(a[None])[0])
        torch.testing.assert_close(p.outputs[-1], decoder(b[None])[0])
        torch.testing.assert_close(p.scores, critic(p.outputs)[:, 0])
    assert p.alphas.tolist() == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert G.interpolate(decoder, a, b).scores is None


def test_kl_per_unit_is_the_closed_form():
    mu = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    kl = G.kl_per_unit(mu, logvar)
    assert kl[0] == 0  # the prior itself
    assert float(kl[1]) == pytest.approx(0.5)  # 0.5 * mu^2
    assert float(kl[2]) == pytest.approx(0.5 * (torch.e - 1 - 1))


@pytest.mark.parametrize("call, match", [
    (lambda d: G.traverse(d, torch.zeros(4), units=(0, 4)), "units must be one or two latent unit indices"),
    (lambda d: G.traverse(d, torch.zeros(4)), "give either units"),
    (lambda d: G.traverse(d, torch.zeros(4), units=(0,), steps=1), "steps must be"),
    (lambda d: G.traverse(d, torch.zeros(4), units=(0,), span=0), "span must be"),
    (lambda d: G.traverse(d, torch.full((4,), float("nan")), units=(0,)), "NaN"),
    (lambda d: G.traverse(d, torch.zeros(5), units=(0,)), "the decoder refused codes of shape"),
    (lambda d: G.traverse(d, torch.zeros(4), units=(0,), scale=[1, 2]), "scale must be"),
    (lambda d: G.interpolate(d, torch.zeros(4), torch.zeros(3)), "one size"),
    (lambda d: G.kl_per_unit(torch.zeros(2, 3), torch.zeros(2, 4)), "one shape"),
])
def test_bad_input(decoder, call, match):
    with pytest.raises(InputError, match=match):
        call(decoder)


def test_figures(decoder):
    t = G.traverse(decoder, torch.zeros(4), units=(0, 2), steps=3)
    grid = figures.traversal_grid(t)
    assert len([d for d in grid.data if d.type == "heatmap"]) == 9
    assert "unit 0" in grid.layout.annotations[0].text and "unit 2" in grid.layout.annotations[0].text
    bars = figures.kl_bars(torch.tensor([0.5, 0.001, 0.2]))
    assert list(bars.data[0].marker.color)[1] != list(bars.data[0].marker.color)[0]  # the collapsed unit is grey
    assert "2 of 3 units used" in bars.layout.title.text
    p = G.interpolate(decoder, torch.zeros(4), torch.ones(4), steps=4, critic=nn.Sequential(nn.Flatten(),
                                                                                            nn.Linear(36, 1)))
    path = figures.interpolation_path(p, score_name="real logit")
    assert [d.name for d in path.data if d.type == "scatter"] == ["real logit"]
    with pytest.raises(InputError, match="expected a Traversal"):
        figures.traversal_grid(p)
