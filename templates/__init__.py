"""Jinja templates of the generated module (shipped as package data of graphcomp)."""
