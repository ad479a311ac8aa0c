"""Audio in: labelled clips (bundled or your own), loading and resampling, mixing, and a VAD.

Pure numpy over plain arrays. May import: ``errors``. Nothing above it.
"""
