"""The distribution's version, reported to browsers in the ``hello`` frame."""

__version__ = "0.1.0"
