"""Numbers: quantiles (nearest rank) and their order-statistic bounds, exact significance tests,
per-stage summaries and point/confidence verdicts. Pure functions over plain arrays and samples.

May import: ``spans`` (for samples), ``clock``, ``errors``.
"""
