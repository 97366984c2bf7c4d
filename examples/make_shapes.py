"""Write out/shapes.npz: 1,600 generated 12x12 images of five shapes, for examples/cnn.toml.

Run: python examples/make_shapes.py [output file]
"""
import sys
from pathlib import Path

import numpy as np

from example_data import shape_images

if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "out/shapes.npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    x, labels = shape_images(1600, 12, seed=0)
    np.savez_compressed(path, x=x, labels=labels)
    print(f"wrote {path}: x {x.shape}, labels {labels.shape}")
