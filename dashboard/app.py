"""The Dash app factory: ``create_app(subjects)`` builds the layout and registers each view's callbacks.

The dashboard shows :class:`interp.Subject` objects, any number, whoever made them (a
user's model, the zoo's): ``serve([subject])`` from Python, ``interp dashboard`` from
the shell. Served with Dash's own bundled assets (``serve_locally``) plus ``assets/``:
no CDN, so the dashboard works offline. It binds 127.0.0.1 with debug off unless asked
otherwise.
"""

from __future__ import annotations

from pathlib import Path

from dash import Dash

from interp.errors import UnknownNameError

from .catalog import Catalog, Lazy
from .views import activations, evaluation, latent, lrp, overview, saliency, samples, sensitivity, shell

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8050


def create_app(subjects, selected: str | None = None) -> Dash:
    """A new dashboard app on ``subjects`` (Subjects, or :class:`Lazy` ones made on first
    use), with ``selected`` shown at start (default: the first)."""
    catalog = subjects if isinstance(subjects, Catalog) else Catalog(
        [subjects] if not isinstance(subjects, (list, tuple)) else subjects)
    names = catalog.names()
    if selected is not None and selected not in names:
        raise UnknownNameError("subject", selected, names)
    app = Dash(__name__, title="interp", assets_folder=str(ASSETS), serve_locally=True,
               update_title=None, external_scripts=[], external_stylesheets=[])
    tabs = [
        ("overview", "Overview", overview.layout()),
        ("samples", "Samples", samples.layout()),
        ("activations", "Activations", activations.layout()),
        ("saliency", "Saliency", saliency.layout()),
        ("lrp", "LRP", lrp.layout()),
        ("sensitivity", "Sensitivity", sensitivity.layout()),
        (evaluation.TAB, "Evaluation", evaluation.layout()),
        ("latent", "Latent space", latent.layout()),
    ]
    app.layout = shell.layout(catalog, selected or names[0], tabs)
    for view in (overview, samples, activations, saliency, lrp, sensitivity, evaluation, latent):
        view.register(app, catalog)
    return app


def serve(subjects, selected: str | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          debug: bool = False) -> None:
    """Serve the dashboard on ``subjects`` (one :class:`interp.Subject` or several) until
    interrupted: ``dashboard.serve([interp.Subject(model, (x, y))])``."""
    app = create_app(subjects, selected)
    print(f"interp dashboard on http://{host}:{port}/  (Ctrl+C to stop)", flush=True)
    app.run(host=host, port=port, debug=debug)


__all__ = ["create_app", "serve", "Lazy", "Catalog"]
