"""The digits MLP trained by the same generated module on each array library that is installed.

Every run starts from the same params and the same seed (shuffling and dropout draws are NumPy's), so
the losses must agree to rounding; the seconds show what each library costs on one CPU-sized model.

Run: python examples/backends.py [--epochs 5]
Needs: pip install array-api-compat, and any of torch, jax, 'dask[array]'
"""
import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

import graphcomp as gc
from graphcomp.frontend.spec import load

HERE = Path(__file__).parent
LIBRARIES = {"numpy": "numpy", "torch": "torch", "jax": "jax", "dask": "dask"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    spec = load(HERE / "digits.toml")
    module = gc.compile(spec.graph, loss=spec.loss, predict=spec.predict, target=spec.target).load()
    with np.load(HERE / "data" / "digits.npz") as stored:
        data = {name: stored[name].astype(np.float64) for name in stored.files}
    if importlib.util.find_spec("jax"):
        import jax
        jax.config.update("jax_enable_x64", True)  # float64, as the module's DTYPE
    settings = dict(epochs=args.epochs, lr=0.005, batch_size=32, optimizer="adam")
    print(f"digits MLP, {len(data['x'])} examples, {args.epochs} epochs of Adam (batch 32), float64")
    reference = None
    for backend, package in LIBRARIES.items():
        if not importlib.util.find_spec(package):
            print(f"{backend:>6}: not installed")
            continue
        started = time.perf_counter()
        params, losses = module.train(module.init_params(0), data, backend=backend, **settings)
        seconds = time.perf_counter() - started
        scores = module.evaluate({name: np.asarray(value) for name, value in params.items()}, data)
        reference = reference or losses
        print(f"{backend:>6}: loss {losses[0]:.6f} -> {losses[-1]:.6f}, accuracy {scores['accuracy']:.2%}, "
              f"{seconds:.2f} s, largest loss difference from NumPy {max(abs(a - b) for a, b in zip(losses, reference)):.1e}")


if __name__ == "__main__":
    main()
