"""Formulas: the SymPy level every op is declared at.

Owns the scalar placeholders and functions (σ, softplus), local derivatives and their re-expression
through forward values (`derivatives`), stable forms, and the printers of a formula as NumPy code, plain
text and LaTeX (`printing`). It sits below the op table because elementwise ops are declared by a
formula; it imports nothing of graphcomp but `errors`.
"""
