"""Shared fixtures: tiny hand-built models, and a guard that the model under test is left as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def hooks_left(model: nn.Module) -> int:
    """Number of hooks of any kind still registered on any module of ``model``."""
    total = 0
    for m in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                     "_backward_pre_hooks", "_forward_hooks_with_kwargs"):
            total += len(getattr(m, attr, {}) or {})
    return total


def snapshot(model: nn.Module) -> dict:
    return {
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "modes": {n: m.training for n, m in model.named_modules()},
        "inplace": {n: m.__dict__.get("inplace") for n, m in model.named_modules()},
        "modules": [(n, id(m)) for n, m in model.named_modules()],
        "grads": {n: p.grad for n, p in model.named_parameters()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "forwards": {n: "forward" in m.__dict__ for n, m in model.named_modules()},
    }


def assert_untouched(model: nn.Module, before: dict) -> None:
    """No hooks left, the same parameters and buffers (state_dict), the same train/eval mode,
    ``inplace`` flags, module tree, gradients and forwards everywhere."""
    assert hooks_left(model) == 0
    after = snapshot(model)
    assert after["modes"] == before["modes"]
    assert after["inplace"] == before["inplace"]
    assert after["modules"] == before["modules"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["forwards"] == before["forwards"]
    assert all(after["grads"][k] is v for k, v in before["grads"].items())
    assert after["params"].keys() == before["params"].keys()
    for k, v in before["params"].items():
        assert torch.equal(after["params"][k], v), k


@pytest.fixture(scope="session", autouse=True)
def _private_store(tmp_path_factory):
    """Tests (and the commands they start) never write to the user's ~/.cache/interp."""
    import os

    old = os.environ.get("INTERP_CACHE")
    os.environ["INTERP_CACHE"] = str(tmp_path_factory.mktemp("interp-cache"))
    yield
    if old is None:
        os.environ.pop("INTERP_CACHE", None)
    else:
        os.environ["INTERP_CACHE"] = old


@pytest.fixture
def tiny_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def fresh_subject(name: str):
    """The zoo model ``name`` as a new :class:`interp.Subject` (``zoo.subject`` keeps one per
    process): nothing of an earlier analysis in memory, so results come from the store."""
    import zoo

    return zoo.subject.__wrapped__(name)


def subject_modules(subject) -> list[nn.Module]:
    """What an analysis of ``subject`` must leave as it was: the user's model and parts, and
    the faces' shared working copy of them (the views run it on several threads)."""
    from interp.study import overview

    model, parts = overview.working(subject)
    return [subject.model, *subject.parts.values(), model, *parts.values()]
