"""The Dash app factory: ``create_app()`` builds the layout and registers each view's callbacks.

Served with Dash's own bundled assets (``serve_locally``) plus ``assets/``: no CDN,
so the dashboard works offline. ``interp dashboard`` binds 127.0.0.1 with debug
off unless asked otherwise.
"""

from __future__ import annotations

from pathlib import Path

from dash import Dash

import zoo

from .views import activations, latent, lrp, overview, saliency, samples, sensitivity, shell

ASSETS = Path(__file__).resolve().parent / "assets"


def create_app(model: str | None = None) -> Dash:
    """A new dashboard app on the zoo, with ``model`` selected at start (default: the first)."""
    names = zoo.names()
    if model is not None and model not in names:
        from interp.errors import UnknownNameError

        raise UnknownNameError("zoo model", model, names)
    app = Dash(__name__, title="interp", assets_folder=str(ASSETS), serve_locally=True,
               update_title=None, external_scripts=[], external_stylesheets=[])
    tabs = [
        ("overview", "Overview", overview.layout()),
        ("samples", "Samples", samples.layout()),
        ("activations", "Activations", activations.layout()),
        ("saliency", "Saliency", saliency.layout()),
        ("lrp", "LRP", lrp.layout()),
        ("sensitivity", "Sensitivity", sensitivity.layout()),
        ("latent", "Latent space", latent.layout()),
    ]
    app.layout = shell.layout(names, model or names[0], tabs)
    overview.register(app)
    samples.register(app)
    activations.register(app)
    saliency.register(app)
    lrp.register(app)
    sensitivity.register(app)
    latent.register(app)
    return app
