"""The call: the agent protocol, the caller's script (say / answer / barge_in), the simulated
caller and its per-call runner, the client playout model, the event log and the metrics derived
from it. Record, then derive: metrics are pure functions of the log.

May import: ``stats``, ``spans``, ``audio``, ``clock``, ``errors``.
"""
