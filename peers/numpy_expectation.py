"""NumPy peer of nexus-lab's exact expectation engine (`expectation_bench`).

Computes E[pg] for Nexus with K normalized inner steps over N quadratic sources
L_s(x) = 1/2 (x - c_s)^T H_s (x - c_s), sampling with replacement, by enumerating all N^K index
sequences, in one of two ways a NumPy user would write:

  depth-first  prefixes shared, one matrix-vector product per node (the issue's peer);
  level        the nodes of one depth as the columns of a matrix, one matrix product per source
               and depth, split into column groups when a level would exceed 16 MiB (the same
               algorithm as nexus-lab's engine).

Also measures NumPy's dgemm rate (best of 5 products of 2000 x 2000 matrices), from which the
benchmark derives the floor: the engine's floating-point operations at that rate.

Input: a folder written by `expectation_bench` with `meta.json` ({"n", "d", "k", "gamma"}) and
`tasks.bin` (float64, little-endian: N Hessians d x d column-major, N centres, then x).
Timing: with --stream S, one untimed run, then runs back to back until S seconds have passed
(at least one); "seconds" lists the timed runs. Without it, --repeats runs, all timed.

Output: one JSON line on stdout: {"seconds": [...], "mean": [...], "dgemm_gflops": ...}.
"""

import argparse
import json
import os
import time

import numpy as np

FRONTIER_BYTES = 16 << 20


def load(folder):
    meta = json.load(open(os.path.join(folder, "meta.json")))
    n, d = meta["n"], meta["d"]
    raw = np.fromfile(os.path.join(folder, "tasks.bin"), dtype="<f8")
    hess = raw[: n * d * d].reshape(n, d, d).transpose(0, 2, 1).copy()  # column-major in
    centres = raw[n * d * d : n * d * d + n * d].reshape(n, d)
    x = raw[n * d * d + n * d :]
    return meta, hess, centres, x


def directions(h, c, xs, gamma):
    g = h @ (xs - c[:, None])
    norms = np.sqrt(np.einsum("ij,ij->j", g, g))
    scale = np.divide(gamma, norms, out=np.zeros_like(norms), where=norms > 0)
    return g * scale


def depth_first(hess, centres, x, k, gamma):
    n, d = centres.shape
    total = np.zeros(d)

    def walk(y, disp, depth):
        nonlocal total
        for s in range(n):
            g = hess[s] @ (y - centres[s])
            norm = np.sqrt(g @ g)
            step = g * (gamma / norm) if norm > 0 else np.zeros(d)
            if depth + 1 == k:
                total += disp + step
            else:
                walk(y - step, disp + step, depth + 1)

    walk(x, np.zeros(d), 0)
    return total / n**k


def level(hess, centres, x, k, gamma):
    n, d = centres.shape
    capacity = max(1, FRONTIER_BYTES // (8 * d))

    def walk(xs, disp, depth):
        m, growth = xs.shape[1], n ** (k - 1 - depth)
        if m > 1 and m * growth > capacity:
            per = max(1, capacity // growth)
            return sum(walk(xs[:, i : i + per], disp[:, i : i + per], depth) for i in range(0, m, per))
        if depth + 1 == k:
            acc = np.zeros(d)
            for s in range(n):
                acc += disp.sum(axis=1) + directions(hess[s], centres[s], xs, gamma).sum(axis=1)
            return acc
        kids_x, kids_d = [], []
        for s in range(n):
            step = directions(hess[s], centres[s], xs, gamma)
            kids_x.append(xs - step)
            kids_d.append(disp + step)
        return walk(np.concatenate(kids_x, axis=1), np.concatenate(kids_d, axis=1), depth + 1)

    return walk(x[:, None].copy(), np.zeros((d, 1)), 0) / n**k


def dgemm_gflops():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2000, 2000)), rng.standard_normal((2000, 2000))
    a @ b
    best = min(timed(lambda: a @ b)[0] for _ in range(5))
    return 2 * 2000**3 / best / 1e9


def timed(f):
    start = time.perf_counter()
    out = f()
    return time.perf_counter() - start, out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True)
    p.add_argument("--mode", choices=["depth-first", "level"], required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--stream", type=float, default=0.0,
                   help="after one untimed run, time runs back to back for this many seconds")
    p.add_argument("--dgemm", action="store_true", help="also measure the dgemm rate")
    a = p.parse_args()
    meta, hess, centres, x = load(a.input)
    run = depth_first if a.mode == "depth-first" else level
    def once():
        return timed(lambda: run(hess, centres, x, meta["k"], meta["gamma"]))

    seconds, mean = [], None
    if a.stream > 0:
        once()
        while sum(seconds) < a.stream:
            t, mean = once()
            seconds.append(t)
    else:
        for _ in range(a.repeats):
            t, mean = once()
            seconds.append(t)
    out = {"seconds": seconds, "mean": mean.tolist(), "numpy": np.__version__}
    if a.dgemm:
        out["dgemm_gflops"] = dgemm_gflops()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
