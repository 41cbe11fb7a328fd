"""Notebook 02 run by hand, as in JupyterLab: interrupted in training, it resumes and leaves the batch
run alone (its batch smoke checks are part of the pipeline test)."""

from __future__ import annotations

import pytest


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
    (tmp_path / "no-data").mkdir()  # an empty data folder: the embedded images, whatever CI's HYRES_DATA
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
