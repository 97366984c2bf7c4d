"""The runtime of every generated module, as real Python: reading arrays (arrays.py), training
(training.py), files (files.py), the command line (command.py) and the functions some ops call
(helpers.py). graphcomp copies these files into each module it writes, below the module's own code and
without their imports, so the module stays one standalone file; here they are ordinary modules that
import, lint and test as Python. `_model.py` stands in for what each generated module defines."""
