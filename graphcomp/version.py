"""The version written into every generated module's docstring."""
__version__ = "0.1.0"
