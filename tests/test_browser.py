"""A real browser on the comparison viewer: JupyterLab started here on 127.0.0.1 (a free port, a
token), driven by headless Chromium through Selenium, on a tiny run made by the test.

It opens notebook 06 as a user would (an interactive run: it reads the batch run beside it), runs
every cell, and checks what the page shows: the controls, two pictures, the caption; then it
changes image, B, mode, wipe and zoom and checks that the pictures change and that the A/B choice
survives. The browser console and the notebook's outputs must hold no error.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and the dev extra
(selenium, jupyterlab); without the browser binaries the test is skipped and says why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hyreslib.codecs import jpeg
from hyreslib.datasets import data
from hyreslib.results import manifest, metrics, recons

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "06_compare_reconstructions.ipynb"
IMAGES = ("chelsea", "coffee")  # embedded test images: no dataset needed
# label -> (curve, JPEG quality of the test's stand-in reconstruction); real JPEG files, real bpp
STAND_INS = {"JPEG base q1": ("JPEG base", 1), "HyRES λ=0.045 (stand-in)": ("HyRES", 20),
             "HyRES λ=0.002 (stand-in)": ("HyRES", 60)}
TIMEOUT = 120.0  # seconds for the kernel to start and run the notebook on a loaded 2-core CPU

pytestmark = pytest.mark.browser


def _binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("needs chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)")
    pytest.importorskip("selenium", reason="selenium missing: pip install -e '.[dev]'")
    pytest.importorskip("jupyterlab", reason="jupyterlab missing: pip install -e '.[dev]'")
    return chromium, driver


def make_tiny_run(project: Path) -> None:
    """runs/quick with a notebook's worth of reconstructions of two embedded images."""
    run = manifest.start(project / "runs" / "quick", "03_lambda_phases", profile="quick", seed=0, device="cpu")
    test = data.embedded("test")
    originals = {name: x for name, x in (test[i] for i in range(len(test))) if name in IMAGES}
    for label, (curve, quality) in STAND_INS.items():
        items = []
        for name, x in originals.items():
            rt = jpeg.roundtrip(x, quality)
            y = rt.decoded[0]
            items.append((name, y, metrics.bpp(rt.nbytes[0], *x.shape[-2:]), metrics.psnr(x, y), None))
        recons.save(run, label, items, curve=curve)
    run.save()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path) -> Iterator[tuple[str, Path]]:
    """(base URL with token, project folder) of a JupyterLab serving a copy of the project layout."""
    _binaries()
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, project / "notebooks" / NOTEBOOK)
    make_tiny_run(project)
    port, token = _free_port(), "hyres-browser-test"
    (tmp_path / "no-data").mkdir()  # an empty data folder: the embedded images, whatever CI's HYRES_DATA
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "HYRES_DATA": str(tmp_path / "no-data"), "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--ServerApp.port={port}",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={project}",
           "--ServerApp.port_retries=0", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _ok(f"{base}/api/status?token={token}") or server.poll() is not None, 60, "JupyterLab start")
        assert server.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
        yield f"{base}/lab/tree/notebooks/{NOTEBOOK}?token={token}", project
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _wait(cond: Callable[[], object], timeout: float, what: str):
    """Poll ``cond`` until truthy; elements re-rendered under our feet (stale) count as not yet."""
    from selenium.common.exceptions import StaleElementReferenceException

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = cond()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = _binaries()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1200"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


# Pixels of every viewer picture (the <img> elements under the widget box), read back through a canvas;
# None for a picture that is hidden or not loaded yet.
PICTURES_JS = """
return Array.from(document.querySelectorAll('.hyres-viewer img.widget-image')).map(img => {
  if (!img.complete || img.naturalWidth === 0 || img.offsetParent === null) return null;
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  c.getContext('2d').drawImage(img, 0, 0);
  return c.toDataURL('image/png');
});
"""


class Viewer:
    """The rendered widget, found by CSS class, as a user sees it."""

    def __init__(self, driver):
        from selenium.webdriver.common.by import By

        self.d, self.By = driver, By

    def find(self, css: str):
        return self.d.find_elements(self.By.CSS_SELECTOR, f".hyres-viewer {css}")

    def selects(self):
        from selenium.webdriver.support.ui import Select

        return [Select(s) for s in self.find(".widget-dropdown select")]

    def chosen(self) -> list[str]:
        return [s.first_selected_option.text for s in self.selects()]

    def pictures(self) -> list[str | None]:
        return self.d.execute_script(PICTURES_JS)

    def caption(self) -> str:
        return " ".join(e.text for e in self.find(".widget-html-content"))

    def slider(self, description: str):
        for box in self.find(".widget-slider"):
            if box.find_elements(self.By.CSS_SELECTOR, ".widget-label")[0].text.strip() == description:
                return box
        raise AssertionError(f"no slider {description!r}")

    def readout(self, description: str) -> str:
        box = self.slider(description)
        return box.find_elements(self.By.CSS_SELECTOR, ".widget-readout")[0].text.strip()

    def nudge(self, description: str, key: str, times: int) -> None:
        handle = self.slider(description).find_elements(self.By.CSS_SELECTOR, ".noUi-handle")[0]
        handle.click()
        for _ in range(times):
            handle.send_keys(key)

    def until(self, check: Callable[[list], bool], what: str, timeout: float = 20.0) -> list:
        """The pictures once ``check(pictures)`` holds (the two pictures update one after the other)."""
        return _wait(lambda: (lambda p: p if check(p) else None)(self.pictures()), timeout, what)


def run_all_cells(browser) -> list[str]:
    """Run > Run All Cells, as a user would; retried while the freshly opened notebook ignores it.
    A dialog in the way (e.g. kernel selection while the kernel is slow to start) is accepted,
    which keeps the notebook's own kernel; returns the dialogs' texts."""
    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def started() -> bool:
        prompts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]
        return any(p.strip() not in ("", "[ ]:") for p in prompts)

    dialogs = []
    for _ in range(8):
        try:
            for dialog in browser.find_elements(By.CSS_SELECTOR, ".jp-Dialog"):
                dialogs.append(dialog.text)
                dialog.find_element(By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept").click()
            browser.find_element(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell").click()
            browser.find_element(By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']").click()
            _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "li[data-command='runmenu:run-all']"), 10,
                  "the Run menu")[0].click()
            _wait(started, 10, "the cells to start")
            return dialogs
        except (AssertionError, StaleElementReferenceException, ElementClickInterceptedException):
            continue
    raise AssertionError(f"Run All Cells did not start the notebook; dialogs seen: {dialogs}")


def _act(action: Callable[[], object], what: str) -> None:
    """Do ``action`` once it finds live elements: a control re-rendered between finding and using it
    (stale) is found again. Only for idempotent actions (choosing an option, clicking a mode button)."""
    _wait(lambda: action() or True, 10, what)


def test_notebook_06_viewer_in_a_real_browser(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    t0 = time.monotonic()
    url, project = lab
    browser.get(url)
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), 60, "the notebook to open")
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']")
          or "Idle" in browser.find_element(By.CSS_SELECTOR, "body").text, 60, "the kernel")
    dialogs = run_all_cells(browser)

    v = Viewer(browser)
    try:
        _wait(lambda: len(v.selects()) == 3 and None not in v.pictures()[:2] and len(v.pictures()) == 2, TIMEOUT,
              "the viewer with two pictures")
    except AssertionError as exc:
        outputs = "\n".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))
        status = [e.get_attribute("data-status") for e in browser.find_elements(
            By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator")]
        raise AssertionError(f"{exc}; kernel status {status}; cell outputs:\n{outputs[-3000:]}") from None
    # controls: image / A / B dropdowns, three mode buttons, zoom and centre sliders (wipe hidden)
    # each read is retried while the widget re-renders under it (a stale element is "not yet", not a failure)
    image, left, right = _wait(v.chosen, 10, "the chosen image and pair")
    assert _wait(lambda: [o.text for o in v.selects()[0].options], 10, "the image list") == list(IMAGES)
    assert image == IMAGES[0]
    assert (left, right) == ("JPEG base q1", "HyRES λ=0.002 (stand-in)")  # the default pair: base vs best HyRES
    assert _wait(lambda: [b.text for b in v.find(".widget-toggle-button")], 10, "the mode buttons") == [
        "side by side", "wipe", "difference ×4"]
    assert len(_wait(lambda: [s for s in v.find(".widget-slider") if s.is_displayed()], 10, "the sliders")) == 3
    assert "bpp" in v.caption() and "dB" in v.caption() and image in v.caption()
    pics = v.pictures()
    assert pics[0] != pics[1]

    # B: another reconstruction; the second picture changes, A's stays
    _act(lambda: v.selects()[2].select_by_visible_text("HyRES λ=0.045 (stand-in)"), "choosing B")
    after_b = v.until(lambda p: p[1] not in (None, pics[1]), "picture B to change")
    assert after_b[0] == pics[0]
    _wait(lambda: "λ=0.045" in v.caption(), 10, "the caption to name the new B")
    chosen = _wait(v.chosen, 10, "the new choice")[1:]

    # image: both pictures change, the A/B choice survives
    _act(lambda: v.selects()[0].select_by_visible_text(IMAGES[1]), "choosing the image")
    v.until(lambda p: None not in p and p[0] != after_b[0] and p[1] != after_b[1], "both pictures of the new image")
    assert _wait(v.chosen, 10, "the choice") == [IMAGES[1], *chosen]
    _wait(lambda: IMAGES[1] in v.caption(), 10, "the caption to name the new image")

    # mode: wipe shows one picture and the wipe slider; moving the cut changes it
    _act(lambda: next(b for b in v.find(".widget-toggle-button") if b.text == "wipe").click(), "the wipe button")
    wiped = v.until(lambda p: p[0] is not None and p[1] is None, "the single wipe picture")
    assert _wait(lambda: v.readout("wipe"), 10, "the wipe readout") == "0.50"
    v.nudge("wipe", Keys.ARROW_LEFT, 20)
    _wait(lambda: v.readout("wipe") != "0.50", 10, "the wipe slider to move")
    v.until(lambda p: p[0] not in (None, wiped[0]), "the wipe cut to move")

    # zoom: back to side by side, zoom 3; both pictures change, the choice still holds
    _act(lambda: next(b for b in v.find(".widget-toggle-button") if b.text == "side by side").click(),
         "the side-by-side button")
    side = v.until(lambda p: None not in p, "two pictures again")
    v.nudge("zoom ×", Keys.ARROW_RIGHT, 2)
    _wait(lambda: v.readout("zoom ×") == "3", 10, "zoom 3")
    v.until(lambda p: None not in p and p[0] != side[0] and p[1] != side[1], "both pictures zoomed")
    assert _wait(v.chosen, 10, "the choice") == [IMAGES[1], *chosen]

    # no error anywhere: notebook outputs, browser console; the interactive run kept to its own folder
    stderr = browser.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.stderr']")
    errors = [e.text for e in stderr if "Error" in e.text or "Traceback" in e.text]
    assert not errors, errors
    console = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not console, console
    assert (project / "runs" / "interactive" / "06_compare_reconstructions" / "manifest.json").is_file()
    assert not (project / "runs" / "quick" / "06_compare_reconstructions").exists()
    print(f"browser test: {time.monotonic() - t0:.1f} s in the browser; dialogs accepted: {dialogs}")
