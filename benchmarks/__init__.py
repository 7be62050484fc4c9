"""`make bench`: ratio figures measured in one run, printed as a table and as JSON.

Each ``bench_*.py`` module here defines ``run() -> list[Result]``. Ratios (our
time over a baseline timed in the same run, interleaved) are what we compare
across machines; absolute times are printed beside them for context.
"""
