"""Plotly figure builders shared by the dashboard and the reports.

Builders take results (arrays, names, frozen result objects), never models, so a
figure can be rebuilt from stored results and tested without a network. Each
returns a ``plotly.graph_objects.Figure``.
"""

from .activations import (
    attention_maps,
    feature_maps,
    layer_stats_table,
    sequence_heatmap,
    unit_bars,
    unit_heatmap,
    unit_histogram,
    unit_statistics,
)
from .architecture import architecture_table
from .attribution import (
    attribution_bars,
    attribution_grid,
    attribution_image,
    attribution_pair,
    attribution_summary,
    attribution_tokens,
    attribution_view,
)
from .evaluation import (
    agreement_matrix,
    leaderboard,
    perturbation_curves,
    randomisation_curves,
    randomisation_maps,
    zoo_leaderboard,
)
from .generative import interpolation_path, kl_bars, traversal_grid
from .lrp import layer_relevance_maps, lrp_plan_table, lrp_summary, relevance_flow
from .metrics import confusion_matrix, metrics_table
from .projection import layer_maps, projection_map, quality_text
from .samples import (
    class_probabilities,
    image_grid,
    image_sample,
    real_score,
    sample_grid,
    sample_view,
    tabular_sample,
    token_sample,
)
from .sensitivity import explanation_robustness, ice_curves, layer_profile, noise_curves, occlusion_view

__all__ = [
    "agreement_matrix",
    "leaderboard",
    "perturbation_curves",
    "randomisation_curves",
    "randomisation_maps",
    "zoo_leaderboard",
    "attribution_bars",
    "attribution_grid",
    "attribution_image",
    "attribution_pair",
    "attribution_summary",
    "attribution_tokens",
    "attribution_view",
    "attention_maps",
    "feature_maps",
    "interpolation_path",
    "kl_bars",
    "layer_maps",
    "layer_relevance_maps",
    "layer_stats_table",
    "lrp_plan_table",
    "lrp_summary",
    "projection_map",
    "quality_text",
    "traversal_grid",
    "relevance_flow",
    "sequence_heatmap",
    "unit_bars",
    "unit_heatmap",
    "unit_histogram",
    "unit_statistics",
    "sample_grid",
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
    "noise_curves",
    "occlusion_view",
    "ice_curves",
    "layer_profile",
    "explanation_robustness",
]
