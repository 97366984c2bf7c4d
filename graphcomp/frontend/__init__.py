"""Front ends: what users call. The DSL functions (`gc.sigmoid`, `gc.sum`, ...), composites and losses
built from them, layer builders (`gc.mlp`), `compile` and its `CompiledModel`, spec files and the
`graphcomp` command. They drive the whole pipeline, so they may import every other package; no other
package imports them.
"""
