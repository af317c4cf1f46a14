#!/usr/bin/env python3
"""Measures the achieved bf16 GEMM rate of one GPU at several sizes (PyTorch, cuBLAS).

Provenance of the GEMM tables in planner/catalog/clusters.cc (docs/catalog.md). Run on a GPU machine:
    python3 planner/catalog/scripts/measure_gemm.py > gemm.json
Square n x n x n bf16 matmuls on random normal data (zeros run faster and would overstate the rate);
for each size: warm-up, then 7 timed repetitions of back-to-back matmuls lasting ~50 ms each, timed
with CUDA events; the median repetition is reported as TFLOP/s with flops = 2 n^3.
"""
import json
import subprocess
import torch

SIZES = [256, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384]


def rate(n):
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    flops = 2.0 * n ** 3
    for _ in range(10):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        torch.matmul(a, b)
    stop.record()
    stop.synchronize()
    per_call_s = start.elapsed_time(stop) / 1e3 / 10
    iters = max(10, int(0.05 / per_call_s))
    samples = []
    for _ in range(7):
        start.record()
        for _ in range(iters):
            torch.matmul(a, b)
        stop.record()
        stop.synchronize()
        samples.append(start.elapsed_time(stop) / 1e3 / iters)
    samples.sort()
    return flops, flops / samples[len(samples) // 2]


def main():
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    props = torch.cuda.get_device_properties(0)
    out = {"nvidia_smi": smi, "torch": torch.__version__, "total_memory_bytes": props.total_memory,
           "sm_count": props.multi_processor_count, "gemm": []}
    for n in SIZES:
        flops, r = rate(n)
        out["gemm"].append({"n": n, "flops": flops, "tflops_per_s": round(r / 1e12, 1)})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
