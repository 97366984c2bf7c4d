"""Write the --at files of the lecture specs whose values are arrays (a name=number list holds scalars only).

Run: python examples/lectures/make_values.py [folder]   (default: this folder)
Each VALUES entry is one file, <name>.npz, holding one array per input of the spec it is named after.
"""
import sys
from pathlib import Path

import numpy as np


def _softmax_layer() -> dict:
    # out(c) = 0.6 for the correct class c = 0 (the notes' example probability), 0.1 for the four others:
    # the totals t are [log 6, 0, 0, 0, 0], so b = t - input @ W.
    x = np.array([1.0, 2.0, -1.0])
    W = np.array([[0.5, -0.25, 0.0, 0.25, 1.0],
                  [0.0, 0.5, -0.5, 0.25, -0.5],
                  [1.0, 0.0, 0.5, -1.0, 0.25]])
    t = np.array([np.log(6.0), 0.0, 0.0, 0.0, 0.0])
    return {"input": x, "y": np.array([1.0, 0.0, 0.0, 0.0, 0.0]), "W": W, "b": t - x @ W}


IMAGE = np.array([[[[12.0, 7.0, 25.0],
                    [3.0, 31.0, 18.0],
                    [40.0, 5.0, 9.0]]]])     # the centre, 31, is the notes' value; the rest is ours
CENTRE = np.zeros((1, 1, 3, 3))
CENTRE[0, 0, 1, 1] = 1.0

VALUES = {
    "backprop_mlp": {"x": np.array([1.0, 2.0, -1.0]), "y": np.array([0.0]),
                     "W1": np.array([[1.0, 0.5, 0.5], [-1.0, 0.5, 1.0]]), "W2": np.array([[2.0, -1.0]])},
    "modules_linear": {"X": np.array([1.0, -2.0, 3.0]), "W": np.array([[1.0, 0.5, -1.0], [2.0, 0.0, 0.5]]),
                       "dC_dY": np.array([1.0, -2.0])},
    "modules_relu": {"X": np.array([-1.5, 2.0, -0.5, 3.0]), "dC_dY": np.array([1.0, 2.0, 3.0, 4.0])},
    "modules_duplicate": {"X": np.array([1.0, -2.0]), "dC_dY1": np.array([3.0, 4.0]), "dC_dY2": np.array([0.5, -1.0])},
    "modules_add": {"X1": np.array([1.0, 2.0, 3.0]), "X2": np.array([-1.0, 0.5, 4.0]), "dC_dY": np.array([2.0, -1.0, 0.5])},
    "modules_max": {"X1": np.array([3.0, 1.0, 2.0]), "X2": np.array([1.0, 4.0, 2.0]), "dC_dY": np.array([5.0, 6.0, 7.0])},
    "modules_softmax": {"x": np.array([1.0, 2.0, 3.0]), "dC_dy": np.array([1.0, 0.0, -1.0])},
    "modules_log_softmax": {"x": np.array([1.0, 2.0, 3.0]), "dC_dlog_y": np.array([1.0, 0.0, 0.5])},
    "modules_weight_decay": {"w": np.array([1.0, -2.0, 0.5]), "dC_dw": np.array([0.5, 0.5, -1.0]), "alpha": np.array(0.1)},
    "flow_graph_mlp": {"x": np.array([1.0, -1.0]), "y": np.array(0.5), "W1": np.array([[0.5, -0.5], [1.0, 0.25]]),
                       "W2": np.array([[1.0, 0.5], [-0.5, 1.0]]), "W3": np.array([1.0, -2.0])},
    "cnn_softmax_layer": _softmax_layer(),
    "cnn_convolution": {"Image": IMAGE, "Filtre": CENTRE},
    "cnn_convolution_zeros": {"Image": IMAGE, "Filtre": np.zeros((1, 1, 3, 3))},
    "cnn_max_pooling": {"input": np.array([[[[1.0, 6.0, 2.0, 3.0],
                                              [4.0, 2.0, 8.0, 1.0],
                                              [0.0, 5.0, 3.0, 9.0],
                                              [7.0, 1.0, 4.0, 2.0]]]]),
                        "upstream": np.array([[[[1.0, 2.0], [3.0, 4.0]]]])},
    "autograd_xor": {"X": np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), "target": np.array([0.0, 1.0, 1.0, 0.0]),
                     "W1": np.array([[1.0, -1.0], [-1.0, 1.0]]), "W2": np.array([1.0, 1.0])},
}


def main(folder: Path) -> None:
    for name, arrays in VALUES.items():
        np.savez(folder / f"{name}.npz", **arrays)
        print(f"wrote {folder / name}.npz")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
