"""The limit of batch-1 decoding on a CPU: memory bandwidth, and the bytes a new
token must read (imported by `real_size_serving.py`).

A decoding step reads every weight once (the head included: a tied embedding is
read in full to score the vocabulary) and the keys and values cached for every
earlier position, while its arithmetic is two FLOPs per weight and row. At batch
1 that is far below what the cores compute, so the step cannot be faster than
`bytes_per_step / bandwidth`, whatever the implementation.

    python benchmarks/memory_bandwidth.py [--gib 1.5] [--passes 7]
"""

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ROW = 4096  # Floats per row of the 2-D views (16 KiB: rows stream, sums stay in L1).

# How a pass reads a part: each reads every byte once and computes little.
KERNELS = {
    # What the issue names: NumPy's pairwise sum (on this CPU partly compute-bound).
    "sum": np.add.reduce,
    # Column sums of a (n, ROW) view: vector adds over rows streamed in order.
    "column_sums": lambda part: np.add.reduce(part.reshape(-1, ROW), axis=0),
    # What decoding at batch 1 does with a weight matrix: a matrix-vector product.
    "matvec": lambda part: part.reshape(-1, ROW) @ np.ones(ROW, np.float32),
}


def _read_seconds(kernel, parts, pool):
    """Seconds to read every element of `parts` with `kernel`, a part per thread."""
    start = time.perf_counter()
    if pool is None:
        kernel(parts[0])
    else:
        list(pool.map(kernel, parts))  # NumPy releases the GIL in these loops.
    return time.perf_counter() - start


def measure_bandwidth(gib=1.5, passes=7):
    """Streaming-read bandwidth in GB/s (1e9 bytes/s) over a float32 buffer of
    `gib` GiB (far larger than the 32 MiB L3), with each of `KERNELS` on one
    thread and on two (each reading half; the matrix-vector product on one
    Python thread uses BLAS's own threads). Best and median over `passes` passes;
    `limit_gb_per_s` is the best of all: what this machine's memory delivered.
    """
    data = np.ones(int(gib * 2**30) // 4 // ROW * ROW, np.float32)  # Pages exist.
    halves = [rows.reshape(-1) for rows in np.array_split(data.reshape(-1, ROW), 2)]
    result = {"buffer_bytes": int(data.nbytes), "passes": passes}
    with ThreadPoolExecutor(2) as pool:
        for kernel_name, kernel in KERNELS.items():
            for threads, parts, workers in ((1, [data], None), (2, halves, pool)):
                if kernel_name == "matvec" and threads == 2:
                    continue  # BLAS threads already.
                _read_seconds(kernel, parts, workers)  # Warm-up.
                rates = [
                    data.nbytes / _read_seconds(kernel, parts, workers) / 1e9 for _ in range(passes)
                ]
                result[f"{kernel_name}_{threads}_thread"] = {
                    "best_gb_per_s": round(max(rates), 2),
                    "median_gb_per_s": round(statistics.median(rates), 2),
                }
    result["limit_gb_per_s"] = max(
        value["best_gb_per_s"] for value in result.values() if isinstance(value, dict)
    )
    return result


def weight_bytes_per_step(variables, skip=("position",)):
    """Bytes of `variables` a decoding step reads: all of them but position
    tables (a step reads one row of those), at their stored dtype (int8 kernels
    count one byte per weight, their float scales four)."""
    total = 0
    for variable in variables:
        path = getattr(variable, "path", variable.name)
        if any(word in path for word in skip):
            continue
        total += int(np.prod(variable.shape)) * np.dtype(variable.dtype).itemsize
    return total


def kv_cache_bytes(num_layers, hidden_dim, positions, batch, itemsize=4):
    """Bytes of cached keys and values a step reads at `positions` earlier positions."""
    return 2 * num_layers * hidden_dim * positions * batch * itemsize


def limit_ms(bytes_per_step, gb_per_s):
    """The fastest a step reading `bytes_per_step` can be, in ms."""
    return bytes_per_step / (gb_per_s * 1e9) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.5)
    parser.add_argument("--passes", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(measure_bandwidth(args.gib, args.passes), indent=2))


if __name__ == "__main__":
    main()
