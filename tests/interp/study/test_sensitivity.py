"""Sensitivity of zoo subjects: every kind of every entry gives a figure, the test-set
results are interp.sensitivity's own and are read back from disk unchanged, the cache
misses on other settings and recomputes damaged files, and bad settings are InterpErrors."""

from __future__ import annotations

import dataclasses

import plotly.graph_objects as go
import pytest
import torch

import interp
import zoo
from interp.errors import InterpError, UnknownNameError
from interp.study import cache, overview, saliency
from interp.study import sensitivity as sens
from tests.conftest import assert_untouched, fresh_subject, snapshot, subject_modules


@pytest.mark.parametrize("name", zoo.names())
def test_every_kind_of_every_entry(name):
    entry = zoo.subject(name)
    watched = subject_modules(entry)  # the user's modules and the shared working copy
    before = [snapshot(m) for m in watched]
    kinds = dict(sens.kinds(entry))
    assert list(kinds) == ["noise", "occlusion", "layer", "explanation"]
    for kind in kinds:
        for obj in sens.objectives(entry):
            s = sens.settings(entry, kind=kind, objective=obj.key)
            assert isinstance(sens.sample_figure(entry, 1, s), go.Figure)
            request = sens.dataset_request(entry, s)
            has_dataset = not (kind == "occlusion" and entry.modality != "tabular")
            assert (request is not None) == has_dataset
            if has_dataset:
                r = sens.dataset_result(entry, s)
                assert isinstance(sens.dataset_figure(entry, s, r, index=1), go.Figure)
    for m, b in zip(watched, before):
        assert_untouched(m, b)


def test_the_test_set_result_is_the_librarys_and_comes_back_from_disk_unchanged():
    entry = zoo.subject("cnn-digits")
    s = sens.settings(entry, kind="noise")
    steps = []
    r = sens.dataset_result(entry, s, progress=lambda done, total: steps.append((done, total)))
    x, y = entry.inputs, entry.labels
    direct = interp.sensitivity(saliency.fresh_model(entry, "class"), x, "predicted", kind="noise",
                                draws=sens.DATASET_DRAWS, std=sens.data_std(entry, "class"), labels=y,
                                seed=sens.SEED)
    assert torch.equal(r.score_change, direct.score_change) and torch.equal(r.accuracy, direct.accuracy)
    # σ = 0: the test accuracy
    assert float(r.accuracy[0]) == pytest.approx(overview.metrics(entry)["accuracy"], abs=1e-6)
    assert steps and steps[-1][0] == steps[-1][1] == len(r.scales) or steps == []  # [] when cached already
    request = sens.dataset_request(entry, s)
    path = cache.path_of(entry, request)
    assert path.exists() and path.suffix == ".safetensors"
    fresh = fresh_subject("cnn-digits")  # a new subject: nothing in memory, read from disk
    back = sens.dataset_cached(fresh, s)
    for f in dataclasses.fields(r):
        a, b = getattr(r, f.name), getattr(back, f.name)
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def test_other_settings_miss_and_damaged_files_are_computed_again():
    entry = fresh_subject("mlp-cancer")
    layer = sens.settings(entry, kind="layer")
    other = dataclasses.replace(layer, noise=0.5)
    assert cache.key_of(entry, sens.dataset_request(entry, layer)) != cache.key_of(
        entry, sens.dataset_request(entry, other))
    first = sens.dataset_result(entry, layer)
    path = cache.path_of(entry, sens.dataset_request(entry, layer))
    path.write_bytes(b"not a result")
    again = fresh_subject("mlp-cancer")
    with pytest.warns(RuntimeWarning, match="not a readable result file.*computing it again"):
        assert sens.dataset_cached(again, layer) is None  # unreadable: a miss (said), not an error
    with pytest.warns(RuntimeWarning):
        recomputed = sens.dataset_result(again, layer)
    assert torch.equal(recomputed.change, first.change)
    assert sens.dataset_cached(fresh_subject("mlp-cancer"), layer) is not None  # replaced on disk


def test_the_sample_and_the_test_set_share_the_noise_scale():
    entry = zoo.subject("lstm-sentiment")  # token ids: noise in the embedding space
    s = sens.settings(entry, kind="noise")
    one = sens.sample_result(entry, 3, s)
    assert one.std == sens.data_std(entry, "class") == sens.dataset_result(entry, s).std
    assert one.embedding is not None


def test_occlusion_baselines_of_each_modality():
    image = zoo.subject("cnn-digits")
    mean = sens.sample_result(image, 0, sens.settings(image, kind="occlusion", baseline="mean", window=2))
    assert mean.baseline == "test-set mean" and mean.window == (2, 2)
    assert torch.isfinite(mean.maps).all() and float(mean.maps.abs().sum()) > 0  # not the sample itself
    tokens = zoo.subject("transformer-sentiment")
    pad = sens.sample_result(tokens, 0, sens.settings(tokens, kind="occlusion", baseline=sens.PAD))
    assert pad.baseline == "padding token '<pad>'" and pad.maps.shape == (1, 12)


def test_tabular_sweeps_share_the_test_sets_grid_and_the_strongest_feature_moves_most():
    entry = zoo.subject("mlp-cancer")
    base = sens.settings(entry)
    f = sens.strongest_feature(entry, base)
    sweep = sens.settings(entry, kind="occlusion", feature=f)
    one, every = sens.sample_result(entry, 4, sweep), sens.dataset_result(entry, sweep)
    assert torch.equal(one.grid, every.grid)
    torch.testing.assert_close(one.curves[0], every.curves[4])
    spread = (every.curves.max(1).values - every.curves.min(1).values).mean()
    other = sens.dataset_result(entry, sens.settings(entry, kind="occlusion", feature=(f + 1) % 30))
    assert float(spread) >= float((other.curves.max(1).values - other.curves.min(1).values).mean())


@pytest.mark.parametrize("given, error", [
    ({"kind": "gradient"}, UnknownNameError),
    ({"kind": "occlusion", "baseline": "blur", "name": "mlp-cancer"}, UnknownNameError),
    ({"kind": "occlusion", "window": 9}, InterpError),
    ({"kind": "occlusion", "feature": 30, "name": "mlp-cancer"}, InterpError),
    ({"kind": "layer", "noise": -1.0}, InterpError),
    ({"kind": "layer", "ablate": "median"}, InterpError),
    ({"objective": "latent"}, UnknownNameError),
    ({"target": 10}, InterpError),
])
def test_bad_settings_are_refused(given, error):
    given = dict(given)
    entry = zoo.subject(given.pop("name", "cnn-digits"))
    with pytest.raises(error):
        sens.settings(entry, **given)


def test_the_explanation_table_in_pieces_is_the_library_on_each_piece():
    """Computed EXPLANATION_PIECE samples at a time (piece k seeded seed + k), joined, with
    progress counted over every piece."""
    entry = zoo.subject("mlp-cancer")
    s = sens.settings(entry, kind="explanation")
    steps = []
    joined = sens._compute(entry, s, lambda d, t: steps.append((d, t)))
    options = sens._explanation_options(entry, s)
    model, x = saliency.fresh_model(entry, "class"), entry.inputs
    piece = sens.EXPLANATION_PIECE
    second = interp.sensitivity(model, x[piece:2 * piece], "predicted", kind="explanation",
                                **{**options, "seed": sens.SEED + 1}, std=sens.data_std(entry, "class"))
    assert joined.sensitivity_max.shape == (len(joined.methods), sens.EXPLANATION_SAMPLES)
    torch.testing.assert_close(joined.sensitivity_max[:, piece:2 * piece], second.sensitivity_max)
    torch.testing.assert_close(joined.infidelity[:, piece:2 * piece], second.infidelity)
    total = (sens.EXPLANATION_SAMPLES // piece) * len(joined.methods)
    assert steps[0] == (0, total) and steps[-1] == (total, total)
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)


@pytest.mark.parametrize("name, meaningful", [("gan-digits", False), ("autoencoder-digits", False),
                                              ("vae-digits", False), ("cnn-digits", True)])
def test_predictions_under_noise_only_for_models_with_several_outputs(name, meaningful):
    """argmax over one output never changes: a flat 100% line says nothing, so it is not drawn."""
    entry = zoo.subject(name)
    s = sens.settings(entry, kind="noise")
    r = sens.sample_result(entry, 0, s)
    for fig in (sens.sample_figure(entry, 0, s), sens.dataset_figure(entry, s, r)):
        names = [t.name for t in fig.data]
        assert ("agrees with clean prediction" in names) == meaningful, names
        titles = [a.text for a in fig.layout.annotations]
        assert ("predictions under noise" in titles) == meaningful, titles
