"""The package version, in one place: read by the build (hatch), the results files and
``__init__``."""

__version__ = "0.1.0"
