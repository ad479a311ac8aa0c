"""Agents shipped with the plugin: the oracle (exactly known delays, for calibrating the caller)
and the reference agent (VAD → streaming ASR → LLM → TTS, with knobs that replay the seed incidents).

May import: ``call``, ``stats``, ``spans``, ``audio``, ``clock``, ``errors``.
"""
