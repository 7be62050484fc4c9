"""Static reports: self-contained HTML composed from interp.figures.

    import reports, interp
    reports.build([interp.Subject(model, (x, y))], out="reports-out")
"""

from .build import build

__all__ = ["build"]
