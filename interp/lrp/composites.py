"""Composites: which rule each module of a model gets.

A :class:`Composite` maps module paths (exact or glob patterns) and module types to
rules, with an optional rule for the first weighted layer (the first Linear, Conv or
ConvTranspose in module order, as in Zennit). Every composite also carries the
defaults for modules without weights (activations pass relevance through, average
pooling is sum-normalised, max pooling winner-take-all, normalisation layers keep
their scale constant, softmax attention weights are held constant), so a user's
composite only says what differs.

The named composites mean what they mean in the literature and in Zennit
(Kohlbrenner et al. 2020, "Towards best practice in explaining neural network
decisions with LRP"): ``epsilon_plus_flat`` is flat on the first layer, z+ on the other
convolutions and epsilon on dense layers, and so on (see :data:`COMPOSITES`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping

from torch import nn

from ..errors import InterpError, UnknownNameError
from ..modules import is_pattern
from . import rules as R
from .functions import FunctionRules

WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)
CONVOLUTIONS = (nn.modules.conv._ConvNd,)

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ReLU6, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
               nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softsign,
               nn.Tanhshrink, nn.LogSigmoid)
SHAPES = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
          nn.AlphaDropout)
AVERAGE_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                 nn.AdaptiveAvgPool3d)
MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
             nn.AdaptiveMaxPool3d)
NORMS = (nn.LayerNorm,) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())

# rules of modules without weights, shared by every composite (a composite may override them)
DEFAULTS: list[tuple[tuple[type, ...], R.Rule]] = [
    (ACTIVATIONS, R.Pass()),
    (SHAPES, R.Gradient()),
    (AVERAGE_POOLS, R.Norm()),
    (MAX_POOLS, R.WinnerTakeAll()),
    (NORMS, R.FrozenScale()),
    ((nn.Softmax,), R.HeldConstant()),
    ((nn.modules.batchnorm._BatchNorm,), R.Gradient()),  # left over after merging: a diagonal affine map
]


# Module types of libraries we do not import (Hugging Face transformers), recognised by
# duck type: an import would make them a dependency, and their names are stable.
def _no_weights(m: nn.Module) -> bool:
    return next(m.children(), None) is None and not any(True for _ in m.parameters(recurse=False))


def is_activation(m: nn.Module) -> bool:
    """An element-wise activation module of Hugging Face transformers (``GELUActivation``,
    ``NewGELUActivation``, ``SiLUActivation``, ``QuickGELUActivation``, ...): parameter-free,
    defined in ``transformers`` (a class of one's own named so gets no rule by its name)."""
    kind = type(m)
    return _no_weights(m) and kind.__module__.startswith("transformers") and (
        kind.__module__.rpartition(".")[2] == "activations" or kind.__name__.endswith(("Activation", "GELU", "GeLU")))


def is_norm(m: nn.Module) -> bool:
    """A layer or RMS normalisation module of a library (``LlamaRMSNorm``, ``T5LayerNorm``, a
    custom ``LayerNorm``): a ``*RMSNorm`` or ``*LayerNorm`` class without children."""
    return next(m.children(), None) is None and type(m).__name__.endswith(("RMSNorm", "LayerNorm", "RmsNorm"))


def is_rotary(m: nn.Module) -> bool:
    """A rotary position embedding module (``LlamaRotaryEmbedding``): it turns positions into
    ``cos``/``sin`` constants, which attention multiplies in (linear)."""
    return _no_weights(m) and type(m).__name__.endswith("RotaryEmbedding")


DUCK_DEFAULTS: list[tuple[Callable[[nn.Module], bool], R.Rule]] = [
    (is_activation, R.Pass()),
    (is_norm, R.FrozenScale()),
    (is_rotary, R.Positions()),
]

Key = "str | type"


class Composite:
    """Rules by module path or type. ``rules``: ``{path, glob pattern or nn.Module type:
    Rule}``; paths and patterns win over types, earlier types over later ones. ``first``:
    the rule of the layers that read the input (None: no special first layer), for layers of
    ``first_types`` (default: every Linear, Conv and ConvTranspose, as Zennit's "Linear").
    Modules without weights get :data:`DEFAULTS` unless ``rules`` says otherwise."""

    def __init__(self, rules: Mapping, first: R.Rule | None = None, *, name: str = "custom",
                 description: str = "", first_types: tuple[type, ...] = WEIGHTED,
                 functions: FunctionRules | None = None):
        if not isinstance(rules, Mapping):
            raise InterpError(f"a composite's rules are a dict of module path, pattern or type -> rule; "
                              f"got {type(rules).__name__}")
        for key, rule in rules.items():
            if not (isinstance(key, str) or (isinstance(key, type) and issubclass(key, nn.Module))):
                raise InterpError(f"composite key {key!r} is neither a module path nor an nn.Module type")
            if not isinstance(rule, R.Rule):
                raise InterpError(f"composite entry {_key(key)} maps to {rule!r}; expected a rule such as "
                                  f"interp.lrp.rules.Epsilon(0.25)")
        if first is not None and not isinstance(first, R.Rule):
            raise InterpError(f"first must be a rule or None; got {first!r}")
        self.rules, self.first, self.name, self.description = dict(rules), first, name, description
        self.first_types = first_types  # the layer types the first-layer rule is for
        if functions is not None and not isinstance(functions, FunctionRules):
            raise InterpError(f"functions must be an interp.lrp.functions.FunctionRules; got {functions!r}")
        # operations computed as functions (softmax, matmul, gates, ...): see interp.lrp.functions
        self.functions = functions or FunctionRules()

    def with_rules(self, rules: Mapping, name: str | None = None) -> Composite:
        """This composite with some entries added or replaced (e.g. one layer's rule); the
        new entries come first, so they win over the type entries they refine."""
        merged = {**dict(rules), **{k: v for k, v in self.rules.items() if k not in rules}}
        n = len(rules)
        return Composite(merged, self.first, name=name or f"{self.name} + {n} override{'s' if n != 1 else ''}",
                         description=self.description, first_types=self.first_types, functions=self.functions)

    def path_rule(self, path: str) -> R.Rule | None:
        """The rule given to ``path`` by name or pattern, if any."""
        for key, rule in self.rules.items():
            if isinstance(key, str) and (key == path or (is_pattern(key) and fnmatch.fnmatchcase(path, key))):
                return rule
        return None

    def rule_for(self, path: str, module: nn.Module, first: bool) -> R.Rule | None:
        """The rule of ``module`` (at ``path``), or None when nothing covers it: a rule by
        path first, then the first-layer rule (``first``: the layer reads the input), then
        by type, then the defaults."""
        by_path = self.path_rule(path)
        if by_path is not None:
            return by_path
        if first and self.first is not None and isinstance(module, self.first_types):
            return self.first
        for key, rule in self.rules.items():
            if isinstance(key, type) and isinstance(module, key):
                return rule
        for types, rule in DEFAULTS:
            if isinstance(module, types):
                return rule
        for recognise, rule in DUCK_DEFAULTS:
            if recognise(module):
                return rule
        return None

    def __repr__(self) -> str:
        inner = ", ".join(f"{_key(k)}: {v!r}" for k, v in self.rules.items())
        first = f", first={self.first!r}" if self.first is not None else ""
        functions = f", functions={self.functions!r}" if self.functions != FunctionRules() else ""
        return f"Composite({self.name!r}, {{{inner}}}{first}{functions})"


def _key(k) -> str:
    return k.__name__ if isinstance(k, type) else repr(k)


# ---------------------------------------------------------------------------- the named composites

def lrp0() -> Composite:
    # average pools too: their gradient is LRP-0 exactly, where Norm's stabiliser is not
    return Composite({WEIGHTED[0]: R.Zero(), WEIGHTED[1]: R.Zero(), **{t: R.Zero() for t in AVERAGE_POOLS}},
                     name="lrp0",
                     description="LRP-0 on every layer: the gradient times the input on ReLU networks "
                                 "(Bach et al. 2015)")


def epsilon(epsilon: float = 0.25) -> Composite:
    rule = R.Epsilon(epsilon)
    return Composite({nn.Linear: rule, nn.modules.conv._ConvNd: rule}, name="epsilon",
                     description=f"epsilon ({epsilon:g}) on every layer: weak, contradictory evidence damped "
                                 "(Bach et al. 2015; Montavon et al. 2019)")


def epsilon_plus(epsilon: float = 1e-6) -> Composite:
    return Composite({nn.modules.conv._ConvNd: R.ZPlus(), nn.Linear: R.Epsilon(epsilon)}, name="epsilon_plus",
                     description="z+ on convolutions, epsilon on dense layers (Kohlbrenner et al. 2020)")


def epsilon_plus_flat(epsilon: float = 1e-6) -> Composite:
    return Composite({nn.modules.conv._ConvNd: R.ZPlus(), nn.Linear: R.Epsilon(epsilon)}, first=R.Flat(),
                     name="epsilon_plus_flat",
                     description="flat on the first layer, z+ on the other convolutions, epsilon on dense "
                                 "layers (Kohlbrenner et al. 2020; Zennit's recommended default)")


def epsilon_gamma_box(low=None, high=None, epsilon: float = 1e-6, gamma: float = 0.25) -> Composite:
    return Composite({nn.modules.conv._ConvNd: R.Gamma(gamma), nn.Linear: R.Epsilon(epsilon)},
                     first=R.ZBox(low, high), first_types=CONVOLUTIONS, name="epsilon_gamma_box",
                     description="z^B on a first convolution (inputs in [low, high]; default each sample's "
                                 "min and max), gamma on the other convolutions, epsilon on dense layers "
                                 "(Montavon et al. 2019)")


def alpha2_beta1(epsilon: float = 1e-6) -> Composite:
    return Composite({nn.modules.conv._ConvNd: R.AlphaBeta(2, 1), nn.Linear: R.Epsilon(epsilon)},
                     name="alpha2_beta1",
                     description="alpha2-beta1 on convolutions, epsilon on dense layers (Bach et al. 2015; "
                                 "Zennit's epsilon_alpha2_beta1)")


def alpha1_beta0(epsilon: float = 1e-6) -> Composite:
    return Composite({nn.modules.conv._ConvNd: R.AlphaBeta(1, 0), nn.Linear: R.Epsilon(epsilon)},
                     name="alpha1_beta0", description="alpha1-beta0 (z+) on convolutions, epsilon on dense layers")


def attnlrp(epsilon: float = 0.0) -> Composite:
    rule = R.Epsilon(epsilon)
    return Composite({nn.Linear: rule, nn.modules.conv._ConvNd: rule, nn.Softmax: R.SoftmaxRule()},
                     functions=FunctionRules(softmax="attnlrp", gate="uniform"), name="attnlrp",
                     description="AttnLRP for transformers (Achtibat et al. 2024, as lxt computes it): softmax by "
                                 "its own rule, products of two signals (q·k, weights·v, gates) uniform, "
                                 "activations identity, normalisation with its scale held constant, "
                                 f"{rule.label} on linear layers")


def cp_lrp(epsilon: float = 0.0) -> Composite:
    rule = R.Epsilon(epsilon)
    return Composite({nn.Linear: rule, nn.modules.conv._ConvNd: rule},
                     functions=FunctionRules(softmax="constant", gate="constant"), name="cp_lrp",
                     description="CP-LRP for transformers (Ali et al. 2022, as lxt computes it): attention weights "
                                 "and MLP gates held constant, normalisation with its scale held constant, "
                                 f"activations identity, {rule.label} on linear layers")


COMPOSITES: dict[str, Callable[..., Composite]] = {
    "epsilon_plus_flat": epsilon_plus_flat,
    "epsilon_plus": epsilon_plus,
    "epsilon_gamma_box": epsilon_gamma_box,
    "alpha2_beta1": alpha2_beta1,
    "alpha1_beta0": alpha1_beta0,
    "epsilon": epsilon,
    "lrp0": lrp0,
    "attnlrp": attnlrp,
    "cp_lrp": cp_lrp,
}
ALIASES = {"epsilon_alpha2_beta1": "alpha2_beta1", "epsilon_alpha1_beta0": "alpha1_beta0", "lrp_0": "lrp0",
           "attn_lrp": "attnlrp", "cplrp": "cp_lrp"}
DEFAULT = "epsilon_plus_flat"


def names() -> dict[str, str]:
    """The named composites, each with a one-line description."""
    return {name: make().description for name, make in COMPOSITES.items()}


def get(composite="epsilon_plus_flat", **params) -> Composite:
    """A composite from its name (with its parameters, e.g. ``get("epsilon", epsilon=0.1)``),
    a :class:`Composite` as it is, or a dict ``{path or type: rule}`` (a user-defined
    composite, the defaults covering modules without weights)."""
    if isinstance(composite, Composite):
        if params:
            raise InterpError("parameters apply to named composites; this one is a Composite already")
        return composite
    if isinstance(composite, Mapping):
        return Composite(composite, name="custom")
    name = ALIASES.get(composite, composite) if isinstance(composite, str) else composite
    if not isinstance(name, str) or name not in COMPOSITES:
        raise UnknownNameError("composite", composite, COMPOSITES,
                               hint="or pass a Composite, or a dict {module path or type: rule}")
    try:
        return COMPOSITES[name](**params)
    except TypeError as exc:
        raise InterpError(f"composite {name!r}: {exc}") from None


__all__ = ["Composite", "COMPOSITES", "DEFAULTS", "DUCK_DEFAULTS", "WEIGHTED", "get", "names", "DEFAULT",
           "is_activation", "is_norm", "is_rotary"] + list(COMPOSITES)
