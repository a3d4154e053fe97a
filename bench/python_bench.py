#!/usr/bin/env python3
"""The Python layer's overhead (issue: `import ggswarm`).

    PYTHONPATH=build/python python3 bench/python_bench.py [--model M.gguf] [--cli build/ggswarm]

1. Generation: Bridge.generate against `ggswarm run` on the same model, threads and greedy
   sampling. Both as llama.cpp counts tg: tokens after the first, over their time — for
   `run`, its own --json figure; for Python, (t(n) - t(1)) / (n - 1) from generate() calls of
   n and 1 tokens. Median of --runs, alternating the two.
2. get_tensor("token_embd.weight") against the Python prototype's way: NumPy dequantizing
   the same Q8_0 blocks (fp16 scale × int8 quants) read from the file; both checked equal.

Without --model it makes a tinyllama-1.1b-shaped Q8_0 model with `ggswarm synth` in /tmp.
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import numpy as np

import ggswarm


def run_cli(cli, model, n, threads):
    out = subprocess.run([cli, "run", model, "-p", "Once upon a time", "-n", str(n), "--temp",
                          "0", "--ignore-eos", "-t", str(threads), "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["timings"]["generation_tokens_per_s"]


def timed(fn):
    t0 = time.perf_counter()
    r = fn()
    return time.perf_counter() - t0, r


def numpy_q8_0(raw_bytes, rows, cols):
    """The prototype's dequantization: blocks of 34 bytes, an fp16 scale then 32 int8."""
    blocks = np.frombuffer(raw_bytes, dtype=np.uint8).reshape(-1, 34)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(rows, cols)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--cli", default="build/ggswarm")
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    model = a.model
    if not model:
        model = "/tmp/ggswarm-bench-tinyllama-q8_0.gguf"
        if not os.path.exists(model):
            subprocess.run([a.cli, "synth", model, "--preset", "tinyllama-1.1b", "--type", "Q8_0"],
                           check=True)
    print(f"model {model}, {a.threads} threads, {a.n} tokens, {a.runs} runs")

    bridge = ggswarm.Bridge(model, threads=a.threads)
    prompt = "Once upon a time"
    gen = lambda n: bridge.generate(prompt, max_tokens=n, temperature=0, ignore_eos=True)
    gen(8)  # warm-up: weights paged in
    run_cli(a.cli, model, 8, a.threads)
    cli_tps, py_tps = [], []
    for _ in range(a.runs):
        cli_tps.append(run_cli(a.cli, model, a.n, a.threads))
        t1, _ = timed(lambda: gen(1))
        tn, _ = timed(lambda: gen(a.n))
        py_tps.append((a.n - 1) / (tn - t1))
    c, p = statistics.median(cli_tps), statistics.median(py_tps)
    print(f"tg: ggswarm run {c:.2f} tok/s, Bridge.generate {p:.2f} tok/s "
          f"({100 * (p / c - 1):+.1f}%)  runs: cli {[round(x, 1) for x in cli_tps]} "
          f"python {[round(x, 1) for x in py_tps]}")

    m = ggswarm.load_model(model)
    info = next(t for t in m.tensors if t.name == "token_embd.weight")
    if info.type != "Q8_0":
        print(f"token_embd.weight is {info.type}: the NumPy comparison needs Q8_0")
        return
    with open(model, "rb") as f:
        f.seek(info.offset)
        file_bytes = f.read(info.n_bytes)
    rows, cols = info.shape
    ours, ref = [], []
    for _ in range(a.runs):
        t, got = timed(lambda: m.get_tensor("token_embd.weight"))
        ours.append(t)
        t, want = timed(lambda: numpy_q8_0(file_bytes, rows, cols))
        ref.append(t)
    assert np.array_equal(got, want), "NumPy's dequantization differs"
    t, _ = timed(lambda: m.get_tensor("token_embd.weight", rows=slice(1000, 1001)))
    print(f"get_tensor(token_embd.weight) {rows}x{cols} Q8_0: {1e3 * statistics.median(ours):.0f} ms, "
          f"NumPy from the blocks {1e3 * statistics.median(ref):.0f} ms "
          f"({statistics.median(ref) / statistics.median(ours):.1f}x); one row: {1e3 * t:.2f} ms")


if __name__ == "__main__":
    main()
