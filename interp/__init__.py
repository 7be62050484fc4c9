"""interp: see inside PyTorch models.

    import interp
    with interp.capture(model, layers=["features.*"]) as rec:
        model(x)
    rec.activations                          # {layer name: tensor}
    interp.summarize(model, x[:1])           # layers, output shapes, parameter counts

Works on any ``nn.Module``; the zoo (``import zoo``) is only a set of examples.
Figure builders live in :mod:`interp.figures`; the exceptions users can cause
in :mod:`interp.errors`.
"""

from .architecture import Architecture, summarize
from .capture import Recording, capture, record
from .collect import Collection, collect
from .errors import InterpError
from .stats import LayerStats, layer_stats
from .store import Store

__version__ = "0.1.0"

__all__ = ["capture", "record", "Recording", "collect", "Collection", "Store", "layer_stats", "LayerStats",
           "summarize", "Architecture",
           "InterpError", "__version__"]
