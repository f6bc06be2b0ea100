"""A container orchestrator for Compose-style stack files.

Layout:
  cli.py          argument parsing and dispatch; commands live in ``commands/``
  errors.py       the user-error tree shown to people as one clear message
  paths.py        where state lives (``ORCHESTRATOR_ROOT``)
  commands/       one module per group of CLI commands

The container runtime is the sibling package ``runtime``; this package drives it.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
