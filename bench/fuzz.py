"""Fuzz both decoders with hostile files, each decode in a forked child with memory and time limits.

    .venv/bin/python bench/fuzz.py [--codec hyres hidenet] [--cases 10000] [--seed 0]
                                   [--memory-mb 2048] [--timeout 20] [--save DIR] [--json OUT]

Seed files are small images coded by small models (HyRES: an untrained N=16 codec; hideNet: the
fixed predictor in lossless, near-lossless and generative mode). Each case mutates one of them:

* ``chunk:<name>`` (structure-aware): one chunk of the container is bit-flipped, overwritten,
  truncated, extended, replaced by random bytes or by a run of 0xFF (up to 1 MiB), or a header
  field is set to an extreme value; the container is re-packed with a valid CRC, so the decoder's
  own checks are what is tested;
* ``chunks``: chunks dropped, duplicated or swapped, re-packed with a valid CRC;
* ``raw`` / ``raw+crc``: bytes of the file flipped, inserted, deleted or truncated, with the
  original CRC (caught by it) or with the CRC recomputed.

Outcomes: ``clean error`` (a ``ValueError``: ``CorruptStreamError``, ``LimitError``), ``same image``
(the mutation did not change the picture, e.g. an informational header field), ``wrong image``
(decoded without error to another picture), ``other exception``, ``crash`` (the child died of a
signal), ``hang`` (no answer within ``--timeout``), ``memory`` (an allocation failed under the
child's ``RLIMIT_AS``). Everything but the first two is a bug; ``--save`` keeps those files.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import random
import resource
import select
import signal
import struct
import sys
import time
import warnings
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hyreslib.codecs.container import pack, unpack  # noqa: E402

OUTCOMES = ("clean error", "same image", "wrong image", "other exception", "crash", "hang", "memory")
BAD = ("wrong image", "other exception", "crash", "hang", "memory")
EXTREMES = (0, 1, 2, 255, 256, 4095, 8192, 13000, 65535, 65536, 2**31 - 1, 2**32 - 1)


@dataclass
class Target:
    """A decoder, the files it is fuzzed from, and what each decodes to."""

    name: str
    magic: bytes
    version: int
    seeds: list[bytes]
    references: list[np.ndarray]
    decode: Callable[[bytes], np.ndarray]
    header_format: str


def hyres_target() -> Target:
    from hyreslib.hyres import HyresCodec, JpegSettings, ResidualCodec, ResidualConfig
    from hyreslib.hyres import bitstream

    torch.manual_seed(0)
    residual = ResidualCodec(ResidualConfig(N=16, M=24, depth=4, scale_levels=64))
    with torch.no_grad():
        residual.g_a[-2].weight.mul_(30.0)  # an untrained latent rounds to zeros; give it spread
    codec = HyresCodec(residual, JpegSettings(quality=10))
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 40, 56, generator=g), torch.rand(3, 64, 64, generator=g).cumsum(-1).div(64)]
    seeds = [codec.encode(x) for x in images]
    decode = lambda data: codec.decode(data).numpy()  # noqa: E731
    return Target("hyres", bitstream.MAGIC, bitstream.VERSION, seeds, [decode(s) for s in seeds], decode, bitstream.HEADER_FORMAT)


def hidenet_target() -> Target:
    from hyreslib.hidenet import bitstream
    from hyreslib.hidenet.codec import HidenetCodec
    from hyreslib.hidenet.predictors import FixedPredictor
    from hyreslib.core.images import from_uint8

    rng = np.random.default_rng(0)
    image = from_uint8((rng.random((36, 44, 3)) * 60 + np.linspace(0, 180, 44)[None, :, None]).astype(np.uint8))
    seeds = [HidenetCodec(levels=4).encode(image),
             HidenetCodec(None, "near-lossless", step=5, levels=3).encode(image),
             HidenetCodec(None, "generative", levels=4).encode(image),
             HidenetCodec(FixedPredictor("ycocg-r", conditional=False), levels=3).encode(image)]
    codec = HidenetCodec()          # decodes the files of every fixed predictor
    decode = lambda data: codec.decode(data).numpy()  # noqa: E731
    return Target("hidenet", bitstream.MAGIC, bitstream.VERSION, seeds, [decode(s) for s in seeds], decode,
                  bitstream.HEADER_FORMAT)


TARGETS = {"hyres": hyres_target, "hidenet": hidenet_target}


# --- mutations -------------------------------------------------------------------------------------

def mutate_bytes(b: bytes, rng: random.Random) -> bytes:
    """One random edit of a byte string."""
    b = bytearray(b)
    op = rng.randrange(9)
    i = rng.randrange(len(b) + 1)
    if op == 0 and b:
        j = min(i, len(b) - 1)
        b[j] ^= 1 << rng.randrange(8)
    elif op == 1 and b:
        j = min(i, len(b) - 1)
        b[j] = rng.choice((0, 0xFF, rng.randrange(256)))
    elif op == 2:
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 7))))
    elif op == 3:
        del b[i:i + rng.choice((1, 2, 4, 9))]
    elif op == 4:
        del b[i:]
    elif op == 5:
        b += bytes([rng.choice((0, 0xFF))]) * rng.choice((1, 4, 64, 4096))
    elif op == 6:
        b = bytearray(rng.randbytes(len(b)))
    elif op == 7:
        b = bytearray(b"\xff" * rng.choice((4, 1024, 65536, 1 << 20)))
    else:
        for _ in range(rng.randrange(2, 12)):
            if b:
                b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def mutate_header(raw: bytes, fmt: str, rng: random.Random) -> bytes:
    """Set one field of a header struct to an extreme or random value (bytes fields: random)."""
    st = struct.Struct(fmt)
    if len(raw) != st.size:
        return mutate_bytes(raw, rng)
    fields = list(st.unpack(raw))
    k = rng.randrange(len(fields))
    if isinstance(fields[k], bytes):
        fields[k] = rng.randbytes(len(fields[k]))
    else:
        code = fmt[1:].replace("8s", "s")[k]
        bits = {"B": 8, "H": 16, "I": 32}[code]
        fields[k] = rng.choice([v for v in EXTREMES if v < 2**bits] + [rng.randrange(2**bits)])
    return st.pack(*fields)


def mutate(target: Target, seed: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One mutated file and the kind of mutation."""
    _, chunks = unpack(seed, target.magic, [target.version])
    kind = rng.random()
    if kind < 0.7:
        k = rng.randrange(len(chunks))
        name = f"chunk:{k}"
        if k == 0 and rng.random() < 0.5:
            chunks[0] = mutate_header(chunks[0], target.header_format, rng)
        else:
            chunks[k] = mutate_bytes(chunks[k], rng)
        return name, pack(target.magic, target.version, chunks)
    if kind < 0.8:
        i, j = rng.randrange(len(chunks)), rng.randrange(len(chunks))
        op = rng.randrange(3)
        if op == 0:
            del chunks[i]
        elif op == 1:
            chunks.insert(i, chunks[j])
        else:
            chunks[i], chunks[j] = chunks[j], chunks[i]
        return "chunks", pack(target.magic, target.version, chunks)
    data = mutate_bytes(seed, rng)
    if rng.random() < 0.5 and len(data) > 4:
        return "raw+crc", data[:-4] + zlib.crc32(data[:-4]).to_bytes(4, "little")
    return "raw", data


# --- one decode in a forked child ----------------------------------------------------------------

def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _classify(target: Target, data: bytes, reference: np.ndarray) -> tuple[str, str]:
    try:
        image = target.decode(data)
    except MemoryError as exc:
        return "memory", repr(exc)[:200]
    except ValueError as exc:
        return "clean error", str(exc)[:200]
    except RuntimeError as exc:
        return ("memory" if "alloc" in str(exc) else "other exception"), repr(exc)[:200]
    except Exception as exc:  # noqa: BLE001 - recording every other failure is the point
        return "other exception", repr(exc)[:200]
    return ("same image" if image.shape == reference.shape and np.array_equal(image, reference)
            else "wrong image"), ""


def decode_in_child(target: Target, data: bytes, reference: np.ndarray, memory: int,
                    timeout: float) -> tuple[str, str]:
    """Decode ``data`` in a forked child under ``RLIMIT_AS`` (current size + ``memory`` bytes)."""
    limit = _vm_size() + memory
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        faulthandler.disable()  # a crash is recorded by the parent, not dumped by the child
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            signal.alarm(int(timeout) + 5)
            outcome, detail = _classify(target, data, reference)
            os.write(w, json.dumps([outcome, detail]).encode())
        finally:
            os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], timeout)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
        return "hang", f"no answer in {timeout} s"
    chunks = []
    while block := os.read(r, 65536):
        chunks.append(block)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return ("hang" if sig == signal.SIGALRM else "crash"), f"signal {signal.Signals(sig).name}"
    if not chunks:
        return "crash", f"child exited with status {os.WEXITSTATUS(status)} without an answer"
    outcome, detail = json.loads(b"".join(chunks))
    return outcome, detail


def run(name: str, cases: int, seed: int = 0, memory: int = 2 << 30, timeout: float = 20.0,
        save: Path | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Fuzz one codec; returns ``{"outcomes": Counter, "by_kind": {kind: Counter}, "examples": {...}}``."""
    target = TARGETS[name]()
    rng = random.Random(seed)
    outcomes: Counter = Counter()
    by_kind: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list[str]] = defaultdict(list)
    t0 = time.perf_counter()
    for case in range(cases):
        s = rng.randrange(len(target.seeds))
        kind, data = mutate(target, target.seeds[s], rng)
        outcome, detail = decode_in_child(target, data, target.references[s], memory, timeout)
        outcomes[outcome] += 1
        by_kind[kind][outcome] += 1
        if outcome in BAD:
            if len(examples[outcome]) < 5:
                examples[outcome].append(f"case {case} ({kind}): {detail}")
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                (save / f"{name}-{case}-{outcome.replace(' ', '_')}.bin").write_bytes(data)
        if log and (case + 1) % 1000 == 0:
            log(f"{name}: {case + 1}/{cases} cases, {time.perf_counter() - t0:.0f} s, {dict(outcomes)}")
    return {"codec": name, "cases": cases, "seconds": time.perf_counter() - t0, "outcomes": outcomes,
            "by_kind": dict(by_kind), "examples": dict(examples),
            "chunks": len(unpack(target.seeds[0], target.magic, [target.version])[1])}


def table(results: list[dict]) -> str:
    """A markdown table of outcome counts, one row per codec."""
    lines = ["| codec | cases | " + " | ".join(OUTCOMES) + " | s |", "|---" * (len(OUTCOMES) + 3) + "|"]
    for r in results:
        lines.append(f"| {r['codec']} | {r['cases']} | " + " | ".join(str(r["outcomes"][o]) for o in OUTCOMES)
                     + f" | {r['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    p.add_argument("--cases", type=int, default=10000, help="cases per codec")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-mb", type=int, default=2048, help="address space a child may add (RLIMIT_AS)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds before a decode counts as a hang")
    p.add_argument("--save", type=Path, help="keep the files of bad outcomes here")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)  # no OpenMP pool in the parent: forking after one started can deadlock
    results = []
    for name in args.codec:
        results.append(run(name, args.cases, args.seed, args.memory_mb << 20, args.timeout, args.save,
                           log=lambda s: print(s, flush=True)))
        for kind, counts in sorted(results[-1]["by_kind"].items()):
            print(f"  {kind:10s} {dict(counts)}")
        for outcome, lines in results[-1]["examples"].items():
            print(f"  {outcome}: " + "; ".join(lines))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=dict))
    return 1 if any(r["outcomes"][o] for r in results for o in BAD) else 0


if __name__ == "__main__":
    sys.exit(main())
