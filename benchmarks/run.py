"""The benchmark suite in one command: training steps against hand-written NumPy and the peers that
are installed, compile time against graph size, recurrent nets on gc.scan against hand-written BPTT, the
language-model examples' training steps against PyTorch and JAX, the same module on NumPy and on
PyTorch CPU tensors, and whole Jacobians and Hessians against JAX jit and torch.func.

Run: python benchmarks/run.py [--quick] [--profile NAME]
--profile NAME runs only bench_step.py --profile NAME: the ten slowest generated lines of that workload.
"""
import argparse
import importlib.util
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a 2,500-node largest chain")
    parser.add_argument("--profile", metavar="NAME", help="only the ten slowest generated lines of one of "
                        "bench_step.py's workloads (its name, or a unique part of it)")
    args = parser.parse_args()
    if args.profile is not None:
        repeat = ["--repeat", "3"] if args.quick else []
        return subprocess.call([sys.executable, str(HERE / "bench_step.py"), "--profile", args.profile, *repeat])
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}")
    runs = [["bench_step.py", "--repeat", "3" if args.quick else "7"],
            ["bench_step.py", "--repeat", "3" if args.quick else "7", "--dtype", "float32"],
            ["bench_compile.py", "--largest", "2500" if args.quick else "10000"],
            ["bench_loops.py", "--repeat", "3" if args.quick else "7"],
            ["bench_lm.py", "--repeat", "3" if args.quick else "7"],
            ["bench_lm.py", "--repeat", "3" if args.quick else "7", "--dtype", "float32"]]
    if importlib.util.find_spec("torch") and importlib.util.find_spec("jax"):
        runs.append(["bench_jacobian.py", "--repeat", "3" if args.quick else "7"])
    if importlib.util.find_spec("torch") and importlib.util.find_spec("array_api_compat"):
        runs.append(["bench_backends.py", "--repeat", "3" if args.quick else "7"])
    for script, *options in runs:
        print(f"\n$ python benchmarks/{script} {' '.join(options)}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / script), *options])
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
