"""Plotly figure builders shared by the dashboard and the reports.

Builders take results (arrays, names, frozen result objects), never models, so a
figure can be rebuilt from stored results and tested without a network. Each
returns a ``plotly.graph_objects.Figure``.
"""

from .architecture import architecture_table
from .metrics import confusion_matrix, metrics_table
from .samples import (
    class_probabilities,
    image_grid,
    image_sample,
    real_score,
    sample_view,
    tabular_sample,
    token_sample,
)

__all__ = [
    "architecture_table",
    "confusion_matrix",
    "metrics_table",
    "class_probabilities",
    "image_grid",
    "image_sample",
    "real_score",
    "sample_view",
    "tabular_sample",
    "token_sample",
]
