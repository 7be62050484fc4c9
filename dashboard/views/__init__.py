"""One module per view: its ``layout()``, its ids and its callbacks side by side."""
