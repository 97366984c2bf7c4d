"""The generated files of the examples, byte for byte: a change to the compiler that alters what it
writes shows here first. After a deliberate change, write them again and review the diff:

    python tests/test_golden.py --update
"""
import inspect
import re
import sys
from pathlib import Path

import pytest

from graphcomp.inspection import report
from graphcomp.codegen.runtime import MARKER, runtime_source
from graphcomp.frontend.cli import _compiled, read_spec
from graphcomp.templates.runtime import helpers

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden"
SPECS = sorted(path for path in (ROOT / "examples").iterdir()
               if path.suffix in (".toml", ".py") and path.stem not in ("example_data", "make_shapes", "dask_cluster", "backends"))


def generated(spec_path: Path) -> dict[str, str]:
    """{golden file name: text} for one example: its module simplified and as written (the model's
    part: the runtime below it is checked against its source files), and its report."""
    spec = read_spec(str(spec_path))
    model = _compiled(spec)
    return {f"{spec_path.stem}.py": model_part(model.source),
            f"{spec_path.stem}.literal.py": model_part(_compiled(spec, simplify=False).source),
            f"{spec_path.stem}.report.md": report.markdown(model)}


def model_part(source: str) -> str:
    """The module down to the runtime's marker line, then which runtime it carries: the whole runtime
    is the same in every module, and is checked against templates/runtime/ instead of being stored 18
    times over."""
    model, runtime = source.split(MARKER + "\n")
    defined = set(re.findall(r"^def _(\w+)\(", runtime, flags=re.M))
    carried = sorted(name[1:] for name, value in vars(helpers).items()
                     if inspect.isfunction(value) and value.__module__ == helpers.__name__ and name[1:] in defined)
    body = runtime[:runtime.rindex('\n\nif __name__ == "__main__":')] if "__main__" in runtime else runtime.rstrip("\n")
    assert body.strip("\n") == runtime_source(carried, training="def train(" in runtime), "the runtime is copied as written"
    return model + MARKER + "\n" + f"# (the runtime, with the helpers {', '.join(carried) or 'none'})\n"


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda path: path.name)
def test_the_examples_compile_to_the_same_bytes(spec_path):
    for name, text in generated(spec_path).items():
        assert text == (GOLDEN / name).read_text(encoding="utf-8"), f"{name} differs from tests/golden/{name}"


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    GOLDEN.mkdir(exist_ok=True)
    for spec_path in SPECS:
        for name, text in generated(spec_path).items():
            (GOLDEN / name).write_text(text, encoding="utf-8")
            print(f"wrote tests/golden/{name}")
