"""Speed of the kit's bounds-checked entropy coder (:mod:`hyreslib.codecs.ans`, constriction's ANS) next to
the CompressAI rANS path it replaced, on the same symbols and tables, in one run.

    .venv/bin/python bench/entropy_coder.py [--repeat 5] [--json OUT]

Workloads: the y latent of a 768x512 image for the HyRES residual codec (M = 192 channels at 1/16
resolution, 128-level scale table, scales log-uniform in [0.11, 8], values drawn from those
Gaussians), and one hideNet level of the same image (half its sub-pixels, 1024-entry Laplace
table). The old path is what the codecs called before: CompressAI's ``RansEncoder`` /
``RansDecoder`` with Python lists of the used table entries, the string padded with zeros
(``zero_tail``, 16 bytes per symbol) before decoding. Times are medians of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hyreslib.codecs import ans  # noqa: E402


def old_encode(symbols: np.ndarray, indexes: np.ndarray, tables: ans.Tables) -> bytes:
    from compressai.ans import RansEncoder

    used, local = np.unique(indexes, return_inverse=True)
    cdfs = [tables.cdfs[i, :tables.lengths[i]].tolist() for i in used]
    return RansEncoder().encode_with_indexes(symbols.tolist(), local.astype(np.int32).tolist(), cdfs,
                                             tables.lengths[used].tolist(), tables.offsets[used].tolist())


def old_decode(data: bytes, indexes: np.ndarray, tables: ans.Tables) -> np.ndarray:
    from compressai.ans import RansDecoder

    used, local = np.unique(indexes, return_inverse=True)
    cdfs = [tables.cdfs[i, :tables.lengths[i]].tolist() for i in used]
    padded = data + bytes(16 * len(indexes) + 64)  # the former zero_tail guard
    return np.asarray(RansDecoder().decode_with_indexes(padded, local.astype(np.int32).tolist(), cdfs,
                                                        tables.lengths[used].tolist(), tables.offsets[used].tolist()))


def hyres_workload(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, ans.Tables]:
    from hyreslib.hyres.entropy import NearestScaleGaussianConditional, scale_table

    gc = NearestScaleGaussianConditional()
    gc.update_scale_table(scale_table(128), force=True)
    n = 192 * 32 * 48
    scales = torch.from_numpy(np.exp(rng.uniform(np.log(0.11), np.log(8.0), n))).float()
    indexes = gc.build_indexes(scales).numpy().astype(np.int64)
    symbols = np.round(rng.normal(0.0, scales.numpy())).astype(np.int64)
    return symbols, indexes, ans.tables_of(gc)


def hidenet_workload(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, ans.Tables]:
    from hyreslib.hidenet import entropy

    n = 768 * 512 * 3 // 2
    scale = torch.from_numpy(np.exp(rng.uniform(np.log(0.5), np.log(20.0), n))).float()
    offset = torch.from_numpy(rng.uniform(-0.5, 0.5, n)).float()
    symbols = np.round(rng.laplace(offset.numpy(), scale.numpy())).astype(np.int64)
    return symbols, entropy.table_index(scale, offset).numpy(), entropy.cdf_table()


def timed(fn, repeat: int):
    fn()
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'workload':10s} {'coder':28s} {'symbols':>9s} {'bytes':>9s} {'enc ms':>8s} {'dec ms':>8s} "
          f"{'dec Msym/s':>10s}")
    for name, make in (("hyres y", hyres_workload), ("hidenet", hidenet_workload)):
        symbols, indexes, tables = make(rng)
        for coder, enc, dec in (("compressai rANS (old)", old_encode, old_decode),
                                ("hyreslib.codecs.ans / constriction", ans.encode, ans.decode)):
            enc_s, data = timed(lambda: enc(symbols, indexes, tables), args.repeat)
            dec_s, out = timed(lambda: dec(data, indexes, tables), args.repeat)
            if not np.array_equal(out, symbols):
                raise SystemExit(f"{coder} did not decode {name} exactly")
            rows.append({"workload": name, "coder": coder, "symbols": int(symbols.size), "bytes": len(data),
                         "encode_s": enc_s, "decode_s": dec_s})
            print(f"{name:10s} {coder:28s} {symbols.size:9d} {len(data):9d} {enc_s * 1e3:8.1f} {dec_s * 1e3:8.1f} "
                  f"{symbols.size / dec_s / 1e6:10.2f}")
        old, new = rows[-2], rows[-1]
        print(f"{name:10s} new/old: encode time {new['encode_s'] / old['encode_s']:.2f}x, decode time "
              f"{new['decode_s'] / old['decode_s']:.2f}x, size {new['bytes'] / old['bytes']:.4f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
