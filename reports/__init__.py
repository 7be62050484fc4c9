"""Static reports: self-contained HTML composed from interp.figures."""
