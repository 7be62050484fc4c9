"""interp: see inside PyTorch models.

    import interp
    with interp.capture(model, layers=["features.*"]) as rec:
        model(x)
    rec.activations                          # {layer name: tensor}
    interp.summarize(model, x[:1])           # layers, output shapes, parameter counts
    interp.attribute(model, x, "predicted", method="integrated_gradients")  # shaped like x
    interp.methods()                         # {attribution method: one-line description}
    interp.lrp(model, x, "predicted", composite="epsilon_plus_flat")  # .relevance shaped like x, .layers
    interp.sensitivity(model, x, "predicted", kind="noise")          # the score's response to input noise
    interp.project(features, method="umap", n_components=2)           # (n, 2) map of (n, d) features

Works on any ``nn.Module``, as people write them (batch-norm, in-place ReLU, ``out +=
identity``, time-major recurrent layers, several inputs as a tuple or a dict); the zoo
(``import zoo``) is only a set of examples. The first analysis in a process keeps freed
memory for reuse (:mod:`interp.memory`; ``INTERP_MALLOC_DEFAULTS=1`` opts out).
Figure builders live in :mod:`interp.figures`; the exceptions users can cause
in :mod:`interp.errors`.
"""

from . import (
           evaluation,
           generative,
           huggingface,
           layer_projection,
           lrp,
           memory,
           objectives,
           projection,
           results,
           sensitivity,
)
from .architecture import Architecture, summarize
from .attribution import Attribution, attribute, explain, methods
from .capture import Recording, capture, record
from .collect import Collection, collect
from .errors import InterpError
from .evaluation import evaluate
from .projection import project
from .stats import LayerStats, layer_stats
from .store import Store
from .subject import Subject

__version__ = "0.1.0"

__all__ = ["attribute", "explain", "methods", "lrp", "sensitivity", "results", "project", "projection",
           "layer_projection", "generative", "Attribution", "objectives", "capture", "record", "Recording",
           "collect", "Collection", "Store", "layer_stats", "LayerStats", "memory", "summarize", "Architecture",
           "Subject", "InterpError", "huggingface", "evaluate", "evaluation", "__version__"]
