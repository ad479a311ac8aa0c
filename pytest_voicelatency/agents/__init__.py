"""Agents shipped with the plugin: the oracle (exactly known delays, for calibrating the caller)
and the reference agent (VAD → streaming ASR → LLM → TTS, with knobs that replay the seed
incidents).

May import: ``call``, ``stats``, ``spans``, ``audio``, ``clock``, ``errors``.

Public names (``docs/api.md``): ``OracleAgent``, ``OracleConfig`` (an agent with exactly known
delays); ``ReferenceServer``, ``ReferenceConfig``, ``PoolConfig``, ``Latency`` (the reference agent
and its knobs); the seed incidents ``COLD_ASR_POOL`` and ``NO_FLUSH``; the property-test knobs
``RACY_FLUSH`` (a planted flush race) and ``BACKCHANNEL_TOLERANT``; a scripted backend for an
agent's tools (``ScriptedBackend``, ``BackendProfile``, ``BackendCall``, ``BackendError``,
``BackendFault``, ``FAULTS``, ``Commit``, ``merge_timelines``): injected latency and faults, every
commit recorded, the duplicates found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_voicelatency._lazy import exports

_EXPORTS = {
    "OracleAgent": ".oracle",
    "OracleConfig": ".oracle",
    "ReferenceServer": ".reference",
    "ReferenceConfig": ".reference",
    "PoolConfig": ".reference",
    "Latency": ".reference",
    "COLD_ASR_POOL": ".reference",
    "NO_FLUSH": ".reference",
    "RACY_FLUSH": ".reference",
    "BACKCHANNEL_TOLERANT": ".reference",
    "ScriptedBackend": ".backend",
    "BackendProfile": ".backend",
    "BackendCall": ".backend",
    "BackendError": ".backend",
    "BackendFault": ".backend",
    "Commit": ".backend",
    "FAULTS": ".backend",
    "merge_timelines": ".backend",
}
__all__ = ["OracleAgent", "OracleConfig", "ReferenceServer", "ReferenceConfig", "PoolConfig",
           "Latency", "COLD_ASR_POOL", "NO_FLUSH", "RACY_FLUSH", "BACKCHANNEL_TOLERANT",
           "ScriptedBackend", "BackendProfile", "BackendCall", "BackendError", "BackendFault",
           "Commit", "FAULTS", "merge_timelines"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from pytest_voicelatency.agents.backend import (
        FAULTS,
        BackendCall,
        BackendError,
        BackendFault,
        BackendProfile,
        Commit,
        ScriptedBackend,
        merge_timelines,
    )
    from pytest_voicelatency.agents.oracle import OracleAgent, OracleConfig
    from pytest_voicelatency.agents.reference import (
        BACKCHANNEL_TOLERANT,
        COLD_ASR_POOL,
        NO_FLUSH,
        RACY_FLUSH,
        Latency,
        PoolConfig,
        ReferenceConfig,
        ReferenceServer,
    )
else:
    __getattr__, __dir__ = exports(__name__, _EXPORTS)
