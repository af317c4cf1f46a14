#!/usr/bin/env python3
"""Compares the loss curves of two cairn-train runs (their --metrics JSON lines).

    compare_runs.py REFERENCE.jsonl OTHER.jsonl TOLERANCE

Prints one line: the number of common steps, the largest relative loss difference and where, the
final losses, and PASS when every common step is within TOLERANCE (relative), else FAIL.
Exit status 0 on PASS, 1 on FAIL, 2 when a file is missing or has no common step.
"""
import json
import sys


def losses(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    out[r["step"]] = r["loss"]
    except OSError:
        pass
    return out


def main():
    ref, other, tol = losses(sys.argv[1]), losses(sys.argv[2]), float(sys.argv[3])
    steps = sorted(set(ref) & set(other))
    if not steps:
        print(f"FAIL: no common step ({len(ref)} and {len(other)} steps)")
        return 2
    worst, at = 0.0, steps[0]
    for s in steps:
        d = abs(other[s] - ref[s]) / max(abs(ref[s]), 1e-9)
        if d > worst:
            worst, at = d, s
    last = steps[-1]
    verdict = "PASS" if worst <= tol else "FAIL"
    print(f"{verdict}: {len(steps)} steps, max relative loss difference {worst:.2e} at step {at} "
          f"(tolerance {tol:g}); final {ref[last]:.4f} vs {other[last]:.4f}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
