"""Differentiation: the reverse pass over the graph, and central finite differences to check it.

`reverse` walks the graph in reverse topological order, one adjoint per node, summing on fan-out, and
builds the backward pass as more IR from the ops' derivative rules; `gradcheck` is the float64
reference of `graphcomp check` and the tests. It may import `ir`, `formulas`, `ops` and `passes`
(which run before it).
"""
