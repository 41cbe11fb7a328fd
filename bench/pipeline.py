"""Time the notebook pipeline, notebook by notebook.

    python bench/pipeline.py [--profile quick] [--set name=value ...]

Runs ``hyres run`` in-process into a scratch folder (so it never touches runs/<profile>) and prints
each notebook's wall time, its share of the total, and the total against the 10-minute budget of
the quick profile on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from hyreslib.pipeline.runner import run_pipeline

QUICK_BUDGET_S = 600.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick", choices=["quick", "full"])
    ap.add_argument("--only", nargs="+")
    ap.add_argument("--set", nargs="+", default=[])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = run_pipeline(args.profile, args.only, args.set, runs_root=Path(tmp))
    total = sum(r.seconds for r in results)
    print(f"\npipeline '{args.profile}' on {os.cpu_count()} CPU core(s), "
          f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}")
    print(f"{'notebook':<32}{'seconds':>9}{'share':>8}")
    for r in results:
        print(f"{r.name:<32}{r.seconds:>9.1f}{r.seconds / total:>8.0%}")
    print(f"{'total':<32}{total:>9.1f}")
    if args.profile == "quick":
        print(f"quick budget {QUICK_BUDGET_S:.0f} s: total / budget = {total / QUICK_BUDGET_S:.2f}")


if __name__ == "__main__":
    main()
