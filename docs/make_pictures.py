"""Draw the pictures of docs/pictures/ again, with the same command line users have.

Run: python docs/make_pictures.py   (needs Graphviz's `dot`)
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from graphcomp.frontend.cli import main  # noqa: E402 - after the path set-up

PICTURES = {  # file: the arguments of `graphcomp graph` after the spec
    "fuv.svg": ("examples/fuv.toml", "--at", "u=2,v=3,w=4"),
    "fuv_backward.svg": ("examples/fuv.toml", "--backward", "--at", "u=2,v=3,w=4"),
    "fan_out.svg": ("examples/fan_out.toml", "--at", "x=2,y=-3"),
    "fan_out_backward.svg": ("examples/fan_out.toml", "--backward", "--at", "x=2,y=-3"),
    "xor.svg": ("examples/xor.toml",),
    "digits.svg": ("examples/digits.toml",),
    "cnn.svg": ("examples/cnn.toml",),
    "rnn.svg": ("examples/rnn_mean.py",),
    "rnn_unrolled.svg": ("examples/rnn_mean.py", "--unroll", "6"),
    "rnn_backward.svg": ("examples/rnn_mean.py", "--unroll", "6", "--backward"),
}


def make(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (spec, *options) in PICTURES.items():
        code = main(["graph", str(ROOT / spec), *options, "-o", str(folder / name)])
        if code:
            raise SystemExit(code)
        written.append(folder / name)
    return written


if __name__ == "__main__":
    make(ROOT / "docs" / "pictures")
