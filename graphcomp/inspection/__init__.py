"""Inspection: what a person reads and looks at — gradient formulas, derivations with numbers, the
Markdown report, and the graph as networkx (DOT, GraphML, JSON, pictures). It reads what code
generation produced (a `GeneratedModule` and its `Listing`) and may import every package above it.
"""
