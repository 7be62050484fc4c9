"""Places for the analyses still to come; each says plainly that it is not built yet."""

from __future__ import annotations

from dash import html

TABS = [
    ("activations", "Activations"),
    ("saliency", "Saliency"),
    ("lrp", "LRP"),
    ("sensitivity", "Sensitivity"),
    ("latent", "Latent space"),
]

PLANS = {
    "activations": "feature maps, hidden-state and attention heatmaps for the selected sample, "
                   "unit statistics over the test set, top-activating samples per unit",
    "saliency": "gradient, SmoothGrad, integrated gradients, occlusion, Grad-CAM and more, "
                "side by side for the selected sample",
    "lrp": "layer-wise relevance propagation with selectable composites, and relevance "
           "conservation layer by layer",
    "sensitivity": "output sensitivity to noise, occlusion and feature sweeps, layer "
                   "sensitivity and the robustness of explanations",
    "latent": "PCA, t-SNE and UMAP maps of any layer, linked to the samples behind each point",
}


def layout(key: str) -> html.Div:
    return html.Div(className="panel placeholder", id=f"placeholder-{key}", children=[
        html.H3("Not built yet"),
        html.P(f"This view will show {PLANS[key]}."),
    ])
