"""Thin click commands; the work is done by omz_tools.registry, .download and .convert."""
