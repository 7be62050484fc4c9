"""Layer-wise relevance propagation: our own engine, in Zennit's idiom.

    interp.lrp(model, x, target, composite="epsilon_plus_flat")   # LRPResult: .relevance, .layers
    interp.lrp.plan(model, "epsilon_plus_flat")                   # each module's rule, before running
    interp.lrp.composites.names()                                 # the named composites
    interp.lrp.rules.Epsilon(0.25), rules.Gamma(0.25), ...        # rules, to build composites from

Rules (:mod:`.rules`) say how one layer passes relevance back; composites
(:mod:`.composites`) give each module its rule; canonizers (:mod:`.canonizers`)
rewrite a model for one call into an equivalent that rules fit (batch-norm merged,
LSTM/GRU unrolled with constant gates, attention with constant softmax weights). The
entry point (:mod:`.engine`) plans, runs and undoes them.

Ours, not Captum's or Zennit's (measured): Captum's LRP refuses nn.Flatten, nn.LSTM,
attention and any module used twice, and loses conservation across residual adds;
Zennit needs torchvision, which does not install beside our torch, has no LSTM or
attention rules, and silently falls back to the gradient where no rule matches.
This module is callable: ``interp.lrp(...)`` is :func:`.engine.lrp`.
"""

from __future__ import annotations

import sys
import types

from . import canonizers, composites, rules
from .composites import Composite
from .engine import LayerRelevance, LRPResult, Plan, PlanRow, lrp, plan


class _CallableModule(types.ModuleType):
    """``interp.lrp`` is both this package and the function :func:`lrp`."""

    def __call__(self, *args, **kwargs) -> LRPResult:
        return lrp(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["lrp", "plan", "LRPResult", "LayerRelevance", "Plan", "PlanRow", "Composite", "rules", "composites",
           "canonizers"]
