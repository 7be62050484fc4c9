"""The Dash dashboard: layout and callbacks; computes nothing itself.

    import dashboard, interp
    dashboard.serve([interp.Subject(model, (x, y), classes=[...])])
"""

from .app import create_app, serve
from .catalog import Catalog, Lazy

__all__ = ["create_app", "serve", "Catalog", "Lazy"]
