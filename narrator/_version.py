"""The package version, in a module of its own so every stage can read it without
importing the package root (which imports the pipeline). Kept equal to pyproject's."""

__all__ = ["__version__"]

__version__ = "0.1.0"
