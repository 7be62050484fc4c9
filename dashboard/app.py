"""The Dash app factory: ``create_app(subjects)`` builds the layout and registers each view's callbacks.

The dashboard shows :class:`interp.Subject` objects, any number, whoever made them (a
user's model, the zoo's): ``serve([subject])`` from Python, ``interp dashboard`` from
the shell. Served with Dash's own bundled assets (``serve_locally``) plus ``assets/``:
no CDN, so the dashboard works offline. It binds 127.0.0.1 with debug off unless asked
otherwise, served by waitress (several users at once; Dash's development server only
with debug).
"""

from __future__ import annotations

import sys
from pathlib import Path

from dash import Dash

from interp.errors import UnknownNameError

from .catalog import Catalog, Lazy
from .views import (
    activations,
    compare,
    evaluation,
    export,
    latent,
    lrp,
    overview,
    saliency,
    samples,
    sensitivity,
    shell,
    state,
    whatif,
)

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8050
LOOPBACK = ("127.0.0.1", "localhost", "::1")
THREADS = 8  # requests answered at once (each view's callbacks, several users)
MAX_REQUEST_BYTES = 16 * 2 ** 20  # a request's body: an upload's 5 MB in base64 with the callback's state


def _import_before_threads() -> None:
    """Import here, once, what plotly imports lazily on first use (pandas, its validators): the
    server's threads would otherwise race to import it, and one of them can see a partly
    initialised module ("partially initialized module 'pandas' has no attribute 'Series'")."""
    import importlib.util

    import plotly.graph_objects as go

    if importlib.util.find_spec("pandas") is not None:
        import pandas  # noqa: F401
    go.Figure(go.Scatter(x=[0], y=[0])).update_layout(height=100).to_json()  # plotly's validators, once


def create_app(subjects, selected: str | None = None) -> Dash:
    """A new dashboard app on ``subjects`` (Subjects, or :class:`Lazy` ones made on first
    use), with ``selected`` shown at start (default: the first)."""
    _import_before_threads()
    catalog = subjects if isinstance(subjects, Catalog) else Catalog(
        [subjects] if not isinstance(subjects, (list, tuple)) else subjects)
    names = catalog.names()
    if selected is not None and selected not in names:
        raise UnknownNameError("subject", selected, names)
    app = Dash(__name__, title="interp", assets_folder=str(ASSETS), serve_locally=True,
               update_title=None, external_scripts=[], external_stylesheets=[])
    tabs = [
        (overview.TAB, "Overview", overview.layout()),
        (samples.TAB, "Samples", samples.layout()),
        (activations.TAB, "Activations", activations.layout()),
        (saliency.TAB, "Saliency", saliency.layout()),
        (lrp.TAB, "LRP", lrp.layout()),
        (compare.TAB, "Compare", compare.layout()),
        (sensitivity.TAB, "Sensitivity", sensitivity.layout()),
        (evaluation.TAB, "Evaluation", evaluation.layout()),
        (latent.TAB, "Latent space", latent.layout()),
    ]
    app.layout = shell.layout(catalog, selected or names[0], tabs, state.layout(), [samples.controls(),
                                                                                   *compare.pin_controls(),
                                                                                   export.controls()])
    app.server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES  # larger bodies: 413, never read
    for view in (overview, samples, activations, saliency, lrp, compare, sensitivity, evaluation, latent):
        view.register(app, catalog)
    state.register(app, catalog, [key for key, _, _ in tabs])
    export.register(app)
    whatif.register(app, catalog)
    return app


def serve(subjects, selected: str | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          debug: bool = False) -> None:
    """Serve the dashboard on ``subjects`` (one :class:`interp.Subject` or several) until
    interrupted: ``dashboard.serve([interp.Subject(model, (x, y))])``.

    Served by waitress, a production WSGI server, with ``THREADS`` threads, so several users
    (or tabs) are answered at once. Waitress rather than gunicorn: pure Python on every
    platform, and threads in one process, which share the loaded models and never fork a
    process whose torch has started its thread pools (see :mod:`dashboard.jobs`). Dash's
    development server (reloading, tracebacks in the page) only with ``debug``. Any host but
    the loopback gets a warning: the dashboard has no login, and runs the models on what
    it is sent."""
    app = create_app(subjects, selected)
    if host not in LOOPBACK:
        print(f"warning: serving on {host}, not 127.0.0.1: anyone who can reach this machine can use the "
              "dashboard (no login) and run the models", file=sys.stderr, flush=True)
    print(f"interp dashboard on http://{host}:{port}/  (Ctrl+C to stop)", flush=True)
    if debug:
        app.run(host=host, port=port, debug=True)
        return
    from waitress import serve as wsgi

    wsgi(app.server, host=host, port=port, threads=THREADS, ident="interp",
         max_request_body_size=MAX_REQUEST_BYTES)  # refused before it is buffered (waitress's default: 1 GiB)


__all__ = ["create_app", "serve", "Lazy", "Catalog"]
