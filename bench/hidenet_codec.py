"""Encode/decode time of the hideNet codec per Kodak image, beside PNG measured in the same run.

    .venv/bin/python bench/hidenet_codec.py [--checkpoint CKPT | fixed predictor] [--mode lossless]
                                            [--images 24] [--levels L] [--repeat 1] [--data-root DIR]

Times cover the whole codec on 8-bit images (prediction, quantisation, rANS, container;
decode includes the checksum), best of ``--repeat`` after one warm-up image. The codec always
runs its predictor on one CPU thread (bit-identical predictions on both sides, see
``hyreslib.hidenet.codec``), so there is no thread option. PNG is Pillow's
default level-6 encoder/decoder from :mod:`hyreslib.baselines`. Uses Kodak when present, else
the embedded test images.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hyreslib import data
from hyreslib.hidenet.codec import DEFAULT_LEVELS, HidenetCodec
from hyreslib.hidenet.evaluate import timings
from hyreslib.hidenet.predictors import FixedPredictor
from hyreslib.hidenet.training import load_predictor


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="learned predictor (default: the fixed predictor)")
    p.add_argument("--mode", choices=["lossless", "generative"], default="lossless")
    p.add_argument("--images", type=int, default=0, help="first N images (0: all)")
    p.add_argument("--levels", type=int, default=None)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--data-root", default=None, help="data folder (default: $HYRES_DATA, else the project's data/)")
    args = p.parse_args(argv)
    pred = load_predictor(args.checkpoint) if args.checkpoint else FixedPredictor()
    levels = args.levels or pred.levels or DEFAULT_LEVELS
    images = data.test_set(root=args.data_root).subset(args.images or None)
    print(f"{images.describe()}; predictor {pred.kind}, {args.mode}, {levels} levels")
    HidenetCodec(pred, args.mode, levels=min(levels, 6)).encode(images[0][1][:, :64, :64])   # warm-up
    rows = timings(images, pred, levels, args.mode, args.repeat)
    print(f"{'image':12s} {'bpsp':>6s} {'enc s':>7s} {'dec s':>7s} {'PNG enc':>8s} {'PNG dec':>8s} "
          f"{'enc/PNG':>8s} {'dec/PNG':>8s}")
    for r in rows:
        print(f"{r['image']:12s} {r['bpsp']:6.3f} {r['encode_s']:7.3f} {r['decode_s']:7.3f} {r['png_encode_s']:8.3f} "
              f"{r['png_decode_s']:8.3f} {r['encode_s'] / r['png_encode_s']:8.1f} {r['decode_s'] / r['png_decode_s']:8.1f}")
    med = {k: statistics.median(r[k] for r in rows) for k in ("encode_s", "decode_s", "png_encode_s", "png_decode_s")}
    print(f"{'median':12s} {'':6s} {med['encode_s']:7.3f} {med['decode_s']:7.3f} {med['png_encode_s']:8.3f} "
          f"{med['png_decode_s']:8.3f} {med['encode_s'] / med['png_encode_s']:8.1f} "
          f"{med['decode_s'] / med['png_decode_s']:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
