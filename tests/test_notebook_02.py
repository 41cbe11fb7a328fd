"""Smoke test: notebook 02 runs through the runner with tiny settings and records real-file results."""

from __future__ import annotations

import json

import pytest
import torch

from hyreslib import manifest
from hyreslib.hyres import HyresCodec
from hyreslib.runner import run_pipeline

TINY = ["02.steps=4", "02.N=16", "02.M=24", "02.crop=64", "02.batch=2", "02.val_images=1", "02.test_images=1",
        "02.show_images=1", "02.base_qualities=[1]", "02.log_every=2", "02.workers=0"]


@pytest.mark.notebook
def test_notebook_02_smoke(tmp_path):
    run_pipeline(profile="quick", only=["02"], overrides=TINY, runs_root=tmp_path)
    m = manifest.load(tmp_path / "quick", "02_residual_training")
    metrics = m.metrics
    assert metrics["latents_exact"] is True
    assert metrics["bpp"] == pytest.approx(metrics["bpp_jpeg"] + metrics["bpp_z"] + metrics["bpp_y"]
                                           + metrics["bpp_container"])
    assert metrics["psnr"] > 10 and 0 < metrics["ms_ssim"] <= 1
    assert metrics["train"]["steps"] == 4 and metrics["phases"][0]["lambda"] == 0.045
    codec = HyresCodec.load(m.artifact("codec"))
    results = json.loads(m.artifact("results").read_text())
    name = results["per_image"][0]["name"]
    hyr = m.run_dir / "02_residual_training" / "files" / f"{name}.hyr"
    assert codec.decode(hyr.read_bytes()).shape[0] == 3
    assert any(k.startswith("recon:") for k in m.record["artifacts"])
    # resumable: the training state is kept (the engine's tests show running again resumes from it)
    states = list((m.run_dir / "02_residual_training").glob("train_state-*.pt"))
    assert len(states) == 1 and torch.load(states[0], weights_only=False)["step"] == 4


@pytest.mark.slow
def test_interactive_notebook_02_interrupted_resumes_and_leaves_the_batch_run_alone(tmp_path):
    """Notebook 02 run by hand (as in JupyterLab: a kernel in notebooks/, default run_dir), interrupted
    during training: one-line message, no manifest left behind, the batch run untouched; running the
    cell again resumes and every step is logged exactly once."""
    import hashlib
    import os
    import queue
    import shutil
    import time
    from pathlib import Path

    import nbformat
    from jupyter_client.manager import start_new_kernel

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "notebooks").mkdir()
    shutil.copy(root / "notebooks" / "02_residual_training.ipynb", tmp_path / "notebooks")
    batch = tmp_path / "runs" / "quick" / "02_residual_training"
    batch.mkdir(parents=True)
    (batch / "train_log.csv").write_text("step,loss\n1,2.0\n")
    before = hashlib.sha256((batch / "train_log.csv").read_bytes()).hexdigest()
    cells = [c.source for c in nbformat.read(tmp_path / "notebooks" / "02_residual_training.ipynb", 4).cells
             if c.cell_type == "code"]
    tiny = "\nsteps = 300\nN = 16\nM = 24\ncrop = 64\nbatch = 2\nval_images = 1\nlog_every = 10\nworkers = 0\n"
    env = {**os.environ, "PYTHONPATH": str(root), "HYRES_DATA": str(tmp_path / "no-data"), "MPLBACKEND": "Agg"}
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path / "notebooks"), env=env)
    interactive = tmp_path / "runs" / "interactive" / "02_residual_training"

    def run(code: str, interrupt_when=None, timeout: float = 300) -> str:
        msg_id, out, sent, end = kc.execute(code), [], False, time.monotonic() + timeout
        while time.monotonic() < end:
            if interrupt_when and not sent and interrupt_when():
                km.interrupt_kernel()
                sent = True
            try:
                msg = kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error":
                out.append("\n".join(content["traceback"]))
            elif kind == "stream" and content["name"] == "stdout" and code.startswith("print"):
                out.append(content["text"])
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out)
        raise AssertionError(f"cell did not finish in {timeout} s")

    def logged_rows() -> int:
        log = interactive / "train_log.csv"
        return len(log.read_text().splitlines()) - 1 if log.is_file() else 0

    try:
        assert run(cells[0] + tiny + "\n" + cells[1]) == ""
        message = run(cells[3], interrupt_when=lambda: logged_rows() >= 2)
        assert message.startswith("TrainingInterrupted: interrupted at step") and "\n" not in message
        assert "run the cell again to resume" in message
        assert not (interactive / "manifest.json").exists()
        assert run(cells[3]) == ""
        stopped_at = int(message.split("resume from step ")[1])
        assert run("print(hist.resumed_from)").strip() == str(stopped_at)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    steps = [int(line.split(",")[0]) for line in (interactive / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == list(range(10, 301, 10))  # resumed: nothing lost, nothing logged twice
    assert hashlib.sha256((batch / "train_log.csv").read_bytes()).hexdigest() == before
    assert sorted(p.name for p in batch.iterdir()) == ["train_log.csv"]
