"""One training step of the same generated module on NumPy arrays and on PyTorch CPU tensors.

Run: python benchmarks/bench_backends.py [--repeat 7] [--dtype float64|float32]
The large MLP of bench_step.py (784-512-256-10, sigmoid, batch 256), compiled once; its train() runs
one epoch on NumPy (backend None) and one with backend="torch", interleaved; the median time per step
of each and their ratio. Needs PyTorch and array-api-compat (`pip install -e '.[bench,arrays]'`).
"""
import argparse
import statistics
import time

import numpy as np

import graphcomp as gc
from bench_step import build

SIZES, BATCH, STEPS = (784, 512, 256, 10), 256, 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(2)
    module = gc.compile(build(SIZES, "sigmoid"), loss="loss", dtype=args.dtype).load()
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(BATCH * STEPS, SIZES[0])),
            "labels": rng.integers(0, SIZES[-1], size=BATCH * STEPS).astype(float)}
    tensors = {name: torch.asarray(value.astype(args.dtype)) for name, value in data.items()}
    params = module.init_params(0)
    runs = {"NumPy": lambda: module.train(params, data, epochs=1, lr=0.01, batch_size=BATCH),
            "PyTorch CPU": lambda: module.train(params, tensors, epochs=1, lr=0.01, batch_size=BATCH)}
    times = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) / STEPS)
            time.sleep(0.2)  # PyTorch's worker threads spin for a while after their last call
    numpy_ms, torch_ms = (1000 * statistics.median(times[name]) for name in runs)
    print(f"MLP 784-512-256-10 sigmoid, batch 256, {args.dtype}: one step of the same generated module")
    print(f"NumPy {numpy_ms:.2f} ms, PyTorch CPU {torch_ms:.2f} ms: PyTorch / NumPy = {torch_ms / numpy_ms:.2f}")


if __name__ == "__main__":
    main()
