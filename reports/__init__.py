"""Static reports: self-contained HTML composed from interp.figures.

    import reports, interp
    reports.build([interp.Subject(model, (x, y))], out="reports-out")
"""

from .build import build, view_page

__all__ = ["build", "view_page"]
