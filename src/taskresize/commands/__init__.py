"""Subcommands of the ``taskresize`` command line, one module each."""
