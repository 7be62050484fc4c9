"""The faces on a user's own CNN, opened with ``--model-file`` as a user would.

- **dashboard**: wall time from starting ``interp dashboard --model-file ... --no-zoo``
  (a fresh process: imports, the model file, the Subject's check) to the first graph
  drawn in headless Chromium (Debian's, as the browser tests use); target ≤ 5 s.
- **report, cold**: ``interp report --model-file ...`` in a fresh process with an empty
  store (every section computed: collection, saliency, LRP, sensitivity's test-set
  runs, UMAP with numba compiling); target ≤ 30 s.

The CNN is tests/own_models.py's (batch-norm, in-place ReLU; 96 samples of 1×12×12),
trained here in a second, written as safetensors weights and npz data.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .harness import Result

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_TARGET_S = 5.0
REPORT_TARGET_S = 30.0


def _files(folder: Path) -> list[str]:
    import numpy as np
    from safetensors.torch import save_file

    sys.path.insert(0, str(ROOT))
    from tests import own_models as om

    model, data, names = om.trained()["image_cnn"]
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "w.safetensors"))
    np.savez(folder / "d.npz", **{k: v.numpy() for k, v in data.items()})
    (folder / "names.json").write_text(json.dumps({**names, "name": "my-cnn"}))
    return ["--model-file", f"{om.__file__}:image_cnn", "--weights", str(folder / "w.safetensors"),
            "--data", str(folder / "d.npz"), "--names", str(folder / "names.json")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium() -> str | None:
    for path in (os.environ.get("INTERP_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if path and os.path.exists(path):
            return path
    return None


def _dashboard_seconds(args: list[str], cache: Path) -> float | None:
    chromium = _chromium()
    if chromium is None:
        return None
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page()
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "interp.cli", "dashboard", *args, "--no-zoo", "--port",
                                 str(port), "--cache", str(cache)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            while True:  # poll the way a user reloads: until the page answers
                try:
                    page.goto(url, timeout=2000)
                    break
                except Exception:  # noqa: BLE001  (not serving yet)
                    if proc.poll() is not None or time.perf_counter() - start > 120:
                        raise RuntimeError("the dashboard did not start") from None
                    time.sleep(0.05)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=120_000)
            return time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(10)
            browser.close()


def run() -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        args = _files(folder)
        start = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "interp.cli", "report", *args, "--out", str(folder / "out"),
                            "--cache", str(folder / "report-cache"), "--quiet"], cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
        report_s = time.perf_counter() - start
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        dashboard_s = _dashboard_seconds(args, folder / "dashboard-cache")
    out = [Result("interp report --model-file, a user's CNN (96 samples), cold: fresh process, empty store",
                  report_s, REPORT_TARGET_S, "absolute (wall time of the command)", unit="s")]
    if dashboard_s is None:
        print("bench_faces: no chromium (tools/ensure-chromium installs it); dashboard time not measured",
              file=sys.stderr)
    else:
        out.append(Result("interp dashboard --model-file, a user's CNN: start to first graph drawn in Chromium",
                          dashboard_s, DASHBOARD_TARGET_S, "absolute (wall time from starting the command)",
                          unit="s"))
    return out
