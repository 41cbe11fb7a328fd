"""``hyres run``: execute the ordered notebooks with papermill into ``runs/<profile>/``.

For each notebook (``notebooks/NN_name.ipynb``, in order) the runner builds its parameters from
the profile, the run location and ``--set`` overrides, **refuses names the notebook does not
declare** (papermill itself only warns), runs it with the kernel of this environment and the
notebooks folder as working directory, and stops at the first failure with a message naming the
notebook and the failing cell. Timings go to ``runs/<profile>/timings.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..core.fileio import atomic_write_json
from ..core.roots import PROJECT_ROOT, data_root
from ..results import manifest
from .profiles import CELL_TIMEOUT, PROFILES, profile_params

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
# Injected into every notebook that declares them; `interactive=False` keeps widget state out of
# executed notebooks (their static figures show the comparison instead).
BATCH_PARAMS = {"interactive": False}


class PipelineError(RuntimeError):
    """A notebook failed, timed out, lost its kernel, or was given parameters it does not declare."""


@dataclass
class NotebookResult:
    name: str
    output: Path
    seconds: float


def discover(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The pipeline's notebooks: ``NN_*.ipynb`` sorted by number."""
    found = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no notebooks NN_*.ipynb in {notebooks_dir}")
    return found


def select(notebooks: Sequence[Path], only: Sequence[str] | None) -> list[Path]:
    """Keep the notebooks named in ``only`` (full stem or its number prefix, e.g. ``02``)."""
    if not only:
        return list(notebooks)
    chosen = []
    for key in only:
        match = [p for p in notebooks if p.stem == key or p.stem.split("_")[0] == key]
        if not match:
            raise ValueError(f"no notebook matches {key!r}; have {[p.stem for p in notebooks]}")
        chosen += [p for p in match if p not in chosen]
    return sorted(chosen)


def parse_overrides(pairs: Sequence[str]) -> dict[str | None, dict[str, Any]]:
    """``name=value`` (every notebook declaring ``name``) or ``NN.name=value`` (one notebook).

    Values are YAML, so ``steps=5``, ``lambdas=[0.045,0.032]`` and ``device=cuda`` all work.
    """
    out: dict[str | None, dict[str, Any]] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects name=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        target, _, name = key.rpartition(".")
        out.setdefault(target or None, {})[name.strip()] = yaml.safe_load(raw)
    return out


def declared_parameters(path: Path) -> set[str]:
    import papermill as pm

    return set(pm.inspect_notebook(str(path)))


def run_name(profile: str, smoke: bool = False) -> str:
    """The run's folder under ``runs/`` and the profile its notebooks record: a smoke run is not the
    profile's run, so it never writes where that run's results (or its committed figures) go."""
    return f"{profile}-smoke" if smoke else profile


def build_parameters(path: Path, profile: str, run_dir: Path,
                     overrides: dict[str | None, dict[str, Any]], smoke: bool = False) -> dict[str, Any]:
    """Parameters for one notebook; unknown names raise :class:`PipelineError`."""
    declared = declared_parameters(path)
    params: dict[str, Any] = {"profile": run_name(profile, smoke), "run_dir": str(run_dir)}
    params.update({k: v for k, v in BATCH_PARAMS.items() if k in declared})
    params.update(profile_params(profile, path.stem, smoke))
    params.update({k: v for k, v in overrides.get(None, {}).items() if k in declared})
    for target, values in overrides.items():
        if target is not None and (path.stem == target or path.stem.split("_")[0] == target):
            params.update(values)
    unknown = sorted(set(params) - declared)
    if unknown:
        raise PipelineError(f"{path.name}: unknown parameter(s) {unknown}; its parameters cell declares "
                            f"{sorted(declared)}")
    return params


def check_global_overrides(paths: Sequence[Path], overrides: dict[str | None, dict[str, Any]]) -> None:
    """A global ``--set name=...`` must be declared by at least one selected notebook."""
    names = set(overrides.get(None, {}))
    declared = set().union(*(declared_parameters(p) for p in paths)) if paths else set()
    unknown = sorted(names - declared)
    if unknown:
        raise PipelineError(f"no selected notebook declares parameter(s) {unknown}")
    for target in (t for t in overrides if t is not None):
        if not any(p.stem == target or p.stem.split("_")[0] == target for p in paths):
            raise PipelineError(f"--set names notebook {target!r}, which is not selected")


def _ipc_kernel_manager() -> type:
    """A kernel manager whose kernels talk over local IPC sockets instead of TCP ports: nothing to
    eavesdrop on, and no "running over TCP without encryption" warning from every kernel."""
    from jupyter_client import AsyncKernelManager

    class IpcKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"

    return IpcKernelManager


def execute(path: Path, output: Path, params: dict[str, Any], timeout: int | None, log_output: bool) -> None:
    """Run one notebook; translate papermill/nbclient failures into :class:`PipelineError`."""
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    try:
        pm.execute_notebook(str(path), str(output), parameters=params,
                            kernel_name=os.environ.get("HYRES_KERNEL", "python3"), cwd=str(path.parent),
                            progress_bar=not log_output, log_output=log_output, execution_timeout=timeout,
                            request_save_on_cell_execute=True, kernel_manager_class=_ipc_kernel_manager())
    except pm.PapermillExecutionError as exc:
        raise PipelineError(f"{path.name} failed in cell {exc.exec_count} (index {exc.cell_index}): "
                            f"{exc.ename}: {exc.evalue}\n  executed notebook with the traceback: {output}") from None
    except CellTimeoutError as exc:
        raise PipelineError(f"{path.name}: a cell ran past the {timeout} s limit ({exc}); "
                            f"partial notebook: {output}") from None
    except DeadKernelError as exc:
        raise PipelineError(f"{path.name}: the kernel died (out of memory?): {exc}; partial notebook: {output}") from None


def run_pipeline(profile: str = "quick", only: Sequence[str] | None = None, overrides: Sequence[str] = (),
                 runs_root: Path = PROJECT_ROOT / "runs", notebooks_dir: Path = NOTEBOOKS_DIR,
                 log_output: bool = False, timeout: int | None = None, smoke: bool = False) -> list[NotebookResult]:
    """Execute the selected notebooks in order; returns their timings. ``smoke``: the profile's code
    path with its budgets capped (:data:`~.profiles.SMOKE`), into ``runs/<profile>-smoke``."""
    profile_params(profile, "")  # validates the profile name
    if os.environ.get("HYRES_DATA"):  # the kernels run in notebooks/: a relative path must mean the caller's
        os.environ["HYRES_DATA"] = str(data_root())
    paths = select(discover(notebooks_dir), only)
    parsed = parse_overrides(overrides)
    check_global_overrides(paths, parsed)
    run_dir = (runs_root / run_name(profile, smoke)).resolve()
    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = [(p, build_parameters(p, profile, run_dir, parsed, smoke)) for p in paths]  # validate all first
    timeout = timeout if timeout is not None else CELL_TIMEOUT["quick" if smoke else profile]
    results = []
    for path, params in plans:
        print(f"[hyres run] {path.stem} ({run_dir.name})", flush=True)
        t0 = time.perf_counter()
        execute(path, out_dir / path.name, params, timeout, log_output)
        results.append(NotebookResult(path.stem, out_dir / path.name, time.perf_counter() - t0))
        print(f"[hyres run] {path.stem} done in {results[-1].seconds:.1f} s", flush=True)
    atomic_write_json(run_dir / "timings.json", {r.name: round(r.seconds, 2) for r in results})
    return results


def summary(run_dir: Path) -> list[str]:
    """The headline of a run, from its manifests: each codec's BD-rate and BD-PSNR against JPEG (or
    why there are none), hideNet's lossless rate beside the classical lossless formats, and where the
    figures are."""
    done = manifest.available(run_dir)
    lines = []
    if "05_rd_curves" in done:
        m = manifest.load(run_dir, "05_rd_curves")
        rows = [r for r in m.metrics["bd_table"] if r["anchor"] == "jpeg"]
        lines.append(f"Against JPEG 4:2:0 on {len(m.metrics['images'])} test images "
                     "(BD-rate: negative = fewer bits; BD-PSNR: positive = better):")
        width = max((len(r["codec"]) for r in rows), default=0)
        lines.append(f"  {'codec':<{width}}  {'BD-rate':>9}  {'BD-PSNR':>9}")
        for r in rows:
            rate = "n/a" if r["bd_rate_pct"] is None else f"{r['bd_rate_pct']:+.1f} %"
            gain = "n/a" if r.get("bd_psnr_db") is None else f"{r['bd_psnr_db']:+.2f} dB"
            note = f"  ({r['note']})" if r.get("note") else ""
            lines.append(f"  {r['codec']:<{width}}  {rate:>9}  {gain:>9}{note}")
        figures = {(m.run_dir / a["path"]).resolve().parent for n, a in m.record["artifacts"].items()
                   if n.endswith(".png")}
        lines += [f"RD figures and BD table: {f}" for f in sorted(figures)]
    if "01_pixel_splitting" in done:
        bpsp = manifest.load(run_dir, "01_pixel_splitting").metrics["lossless_bpsp"]
        lines.append("lossless, bits per sub-pixel: " + ", ".join(f"{k} {v:.2f}" for k, v in bpsp.items()))
    if lines:
        lines.append(f"every notebook's own figures: {run_dir}/<notebook>/")
    return lines


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        results = run_pipeline(args.profile, args.only, args.set, log_output=args.log_output,
                               timeout=args.cell_timeout, smoke=args.smoke)
    except PipelineError as exc:
        print(f"hyres run: {exc}", file=sys.stderr)
        return 1
    run_dir = PROJECT_ROOT / "runs" / run_name(args.profile, args.smoke)
    total = sum(r.seconds for r in results)
    print(f"\n{len(results)} notebook(s) in {total:.1f} s")
    for r in results:
        print(f"  {r.seconds:7.1f} s  {r.name}")
    print(f"executed notebooks: {run_dir / 'notebooks'}")
    print(f"results and figures: {run_dir}/<notebook>/ (manifest.json in each)")
    print("\n".join(["", *summary(run_dir)]))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="execute the notebook pipeline with papermill")
    p.add_argument("--profile", choices=list(PROFILES), default="quick")
    p.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="notebook stems or numbers, e.g. 00 02")
    p.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                   help="override a parameter (NN.name=value for one notebook); values are YAML")
    p.add_argument("--log-output", action="store_true", help="stream cell output to the terminal")
    p.add_argument("--cell-timeout", type=int, default=None, help="seconds per cell (profile default)")
    p.add_argument("--smoke", action="store_true",
                   help="the profile's models and code path with steps and images capped (minutes on a CPU), "
                        "into runs/<profile>-smoke")
    p.set_defaults(func=_cmd_run)
