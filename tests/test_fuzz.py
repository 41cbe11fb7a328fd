"""A short run of ``bench/fuzz.py`` (the full run is ≥ 10,000 cases per codec): mutated files,
each decoded in a forked child with memory and time limits, must give a clean error or the
original image, never a wrong image, another exception, a crash, a hang or a memory blow-up."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

spec = importlib.util.spec_from_file_location("fuzz", Path(__file__).resolve().parents[1] / "bench" / "fuzz.py")
fuzz = importlib.util.module_from_spec(spec)
sys.modules["fuzz"] = fuzz
spec.loader.exec_module(fuzz)


@pytest.mark.parametrize("codec", ["hyres", "hidenet"])
def test_short_fuzz_run_has_only_clean_outcomes(codec):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see bench/fuzz.py: no OpenMP pool before forking
    try:
        result = fuzz.run(codec, cases=120, seed=1, timeout=20.0)
    finally:
        torch.set_num_threads(threads)
    outcomes = result["outcomes"]
    assert sum(outcomes.values()) == 120
    assert not any(outcomes[o] for o in fuzz.BAD), (dict(outcomes), result["examples"])
    assert outcomes["clean error"] > 80
    # every chunk of the container was mutated at least once
    assert {k for k in result["by_kind"] if k.startswith("chunk:")} == {f"chunk:{i}" for i in range(result["chunks"])}


def test_the_harness_reports_crashes_hangs_and_wrong_images():
    """The classifier itself: a child killed by a signal is a crash, a slow one a hang, a decode
    to another picture a wrong image."""
    import os
    import signal
    import time

    import numpy as np

    ref = np.zeros(3)
    base = dict(name="t", magic=b"TEST", version=1, seeds=[], references=[], header_format="<I")
    crash = fuzz.Target(decode=lambda d: os.kill(os.getpid(), signal.SIGSEGV), **base)
    hang = fuzz.Target(decode=lambda d: time.sleep(30), **base)
    wrong = fuzz.Target(decode=lambda d: np.ones(3), **base)
    same = fuzz.Target(decode=lambda d: np.zeros(3), **base)
    memory = fuzz.Target(decode=lambda d: bytearray(8 << 30), **base)
    assert fuzz.decode_in_child(crash, b"", ref, 1 << 30, 5)[0] == "crash"
    assert fuzz.decode_in_child(hang, b"", ref, 1 << 30, 0.5)[0] == "hang"
    assert fuzz.decode_in_child(wrong, b"", ref, 1 << 30, 5)[0] == "wrong image"
    assert fuzz.decode_in_child(same, b"", ref, 1 << 30, 5)[0] == "same image"
    assert fuzz.decode_in_child(memory, b"", ref, 1 << 30, 5)[0] == "memory"
