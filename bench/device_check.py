"""One-shot device check: the kit's benches at a budget that fits a few minutes of a lent machine,
and whether a file encoded on this machine's accelerator decodes on its CPU.

    .venv/bin/python bench/device_check.py [--budget-s 480] [--threads 0]

On a CUDA machine (paper scale, N 128 / M 192):
  1. JPEG base layer: nvJPEG against the CPU codec, agreement and throughput (jpeg_throughput.py);
  2. training images/s of the kit's engine and of a plain loop around CompressAI's
     Cheng2020AnchorCheckerboard, fp32 and bf16 (train_throughput.py);
  3. encode / decode latency on a 768x512 image against bmshj2018-hyperprior, Cheng2020's
     checkerboard and mbt2018, synchronised (codec_latency.py);
  4. a .hyr written on the GPU by the default shipped model, decoded on the CPU: same latent
     symbols, or the reason it fails.
On a CPU-only machine the same sections run at CPU scale (fewer steps, bf16 skipped, no section 4).
Each section runs as its own process with the time left; one that overruns is stopped and
reported, the rest still run. Everything printed is measured in this run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from hyreslib.core.device import describe_device  # noqa: E402


def sections(cuda: bool, threads: int) -> list[tuple[str, list[str]]]:
    """(title, bench command line) in the order they run."""
    device = ["--device", "cuda" if cuda else "cpu"]
    thr = ["--threads", str(threads)] if threads else []
    train = ["--steps", "10" if cuda else "2", "--warmup", "2" if cuda else "1", "--batch", "8"]
    rows = [("JPEG base layer: nvJPEG vs CPU", ["jpeg_throughput.py", "--repeats", "5", *thr]),
            ("training images/s, fp32", ["train_throughput.py", *device, *train, *thr])]
    if cuda:
        rows.append(("training images/s, bf16 autocast", ["train_throughput.py", *device, *train, "--amp", "bf16"]))
    rows.append(("encode / decode latency, 768x512", ["codec_latency.py", *device, "--repeat", "3" if cuda else "1",
                                                     *thr]))
    return rows


def run_section(title: str, argv: list[str], seconds: float) -> bool:
    print(f"\n=== {title} ({' '.join(argv)}) ===", flush=True)
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(BENCH / argv[0]), *argv[1:]], timeout=max(1.0, seconds))
        ok = done.returncode == 0
    except subprocess.TimeoutExpired:
        print(f"stopped: over the {seconds:.0f} s left", flush=True)
        ok = False
    print(f"--- {time.perf_counter() - t0:.0f} s", flush=True)
    return ok


def gpu_to_cpu_decode() -> str:
    """Encode a photo with the kit's default shipped model on the GPU (latent mode, so there are
    symbols to disagree on), decode the file with the same model on the CPU."""
    from hyreslib.datasets import data
    from hyreslib.pipeline import models

    photo = data.test_set()[0][1][:, :512, :768]
    encoded = models.load(device="cuda").encode_detailed(photo, mode="latent")
    try:
        decoded = models.load(device="cpu").decode_detailed(encoded.data)
    except ValueError as exc:
        return f"does NOT decode on the CPU: {exc}"
    same = torch.equal(decoded.y_hat.cpu(), encoded.y_hat.cpu())
    return f"{models.default_name()}: decodes on the CPU, latent symbols " + ("identical" if same else "DIFFERENT")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-s", type=float, default=480, help="stop starting sections after this many seconds")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads for the CPU sections (0: default)")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    print(f"device: {describe_device(dev)}; torch {torch.__version__}; budget {args.budget_s:.0f} s")
    start, failed = time.perf_counter(), []
    for title, cmd in sections(cuda, args.threads):
        left = args.budget_s - (time.perf_counter() - start)
        if left < 20 or not run_section(title, cmd, left):
            failed.append(title)
    print("\n=== GPU-encoded file decoded on the CPU ===")
    print(gpu_to_cpu_decode() if cuda else "no CUDA GPU: not checked")
    print(f"\ndone in {time.perf_counter() - start:.0f} s; "
          + (f"incomplete: {', '.join(failed)}" if failed else "every section finished"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
