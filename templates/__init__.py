"""What every generated module is made of, installed as `graphcomp.templates`: the Jinja template that lays
out its model (`module.py.j2`), and its runtime as Python (`runtime/`), which codegen copies into it."""
