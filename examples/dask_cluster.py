"""The digits MLP trained on a Dask array chunked over the examples, on a dask.distributed cluster.

Each step's loss and gradients are computed chunk by chunk on the workers and summed (full-batch
gradient descent: data-parallel), while the params stay NumPy arrays on the client; the generated
module is the same file that trains on NumPy. The run trains the same model on NumPy too and prints
both, so that the results can be compared. Without --scheduler it starts a LocalCluster; with the
address of a real cluster's scheduler the same code runs there.

Run: python examples/dask_cluster.py [--scheduler tcp://host:8786] [--chunks 4] [--epochs 40]
Needs: pip install 'dask[array]' distributed array-api-compat
"""
import argparse
import time
from pathlib import Path

import numpy as np

import graphcomp as gc
from graphcomp.frontend.spec import load

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduler", help="a running cluster's scheduler address (default: a LocalCluster)")
    parser.add_argument("--chunks", type=int, default=4, help="chunks of examples, computed in parallel")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=0.5)
    args = parser.parse_args()

    import dask.array as da
    from dask.distributed import Client, LocalCluster

    spec = load(HERE / "digits.toml")
    module = gc.compile(spec.graph, loss=spec.loss).load()
    with np.load(HERE / "data" / "digits.npz") as stored:
        data = {name: stored[name].astype(np.float64) for name in stored.files}
    examples = len(data["x"])
    settings = dict(epochs=args.epochs, lr=args.lr, batch_size=examples, optimizer="sgd")  # full batch

    started = time.perf_counter()
    want, want_losses = module.train(module.init_params(0), data, **settings)
    numpy_seconds = time.perf_counter() - started

    cluster = None if args.scheduler else LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                       dashboard_address=None)
    with Client(args.scheduler or cluster) as client:
        rows = -(-examples // args.chunks)
        chunked = {name: da.from_array(value, chunks=(rows,) + value.shape[1:]) for name, value in data.items()}
        started = time.perf_counter()
        got, got_losses = module.train(module.init_params(0), chunked, **settings)
        dask_seconds = time.perf_counter() - started
        workers = len(client.scheduler_info()["workers"])
    if cluster is not None:
        cluster.close()

    difference = max(float(np.max(np.abs(got[name] - want[name]))) for name in want)
    print(f"{examples} examples in {args.chunks} chunks of {rows} on {workers} workers, {args.epochs} epochs "
          "of full-batch gradient descent")
    print(f"NumPy: loss {want_losses[0]:.4f} -> {want_losses[-1]:.4f} in {numpy_seconds:.2f} s")
    print(f"Dask:  loss {got_losses[0]:.4f} -> {got_losses[-1]:.4f} in {dask_seconds:.2f} s")
    print(f"largest difference between the trained params: {difference:.2e}")


if __name__ == "__main__":
    main()
