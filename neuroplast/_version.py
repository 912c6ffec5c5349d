"""The package version (its own module, so that the run-log and network code can read it without importing
the scripting API of ``neuroplast/__init__.py``)."""

__version__ = "0.1.0"
