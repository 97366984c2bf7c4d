"""`python -m graphcomp ...`: the same command line as `graphcomp ...`."""
from .frontend.cli import main

raise SystemExit(main())
