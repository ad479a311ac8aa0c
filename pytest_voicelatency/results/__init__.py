"""The run's results as one model, and its file: build, validate, save, load and merge the
versioned JSON document (baselines, ``--voice-latency-json``, CI shards); atomic writes.

May import: ``gate``, ``stats``, ``spans``, ``errors``.
"""
