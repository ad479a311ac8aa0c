"""Judging: in-test assertions, CI threshold lines and their policies, the baseline comparison and
the spans-lie crosscheck. Each takes plain samples or distributions and returns a verdict object.

May import: ``stats``, ``spans``, ``clock``, ``errors``.
"""
