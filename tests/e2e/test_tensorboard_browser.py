"""TensorBoard on a finished tiny run, opened in headless Chromium: runs, HParams and images are served.

The run is the hand-built world of tests/evaluate (fake ingest and train, the real evaluate and publish stages
under the local runner). ``hubpipe tensorboard`` serves the published logs; Chromium loads the HParams
dashboard and, from inside the page, fetches TensorBoard's data endpoints (driven over the DevTools protocol
with websocket-client). Screenshots go to $HUBPIPE_TEST_ARTIFACTS (else the test's temporary folder).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fake_upstream
import pytest
from fake_run import FakeWorld, shared_world
from processes import free_port

from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.local_runner import run_pipeline

pytestmark = pytest.mark.e2e

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--window-size=1280,800",
    "--remote-debugging-port=0",
)
STARTUP_S = 90
#: Collects the text of a page, shadow roots included (TensorBoard's dashboards are web components).
DEEP_TEXT = """(() => { const out = []; const walk = (node) => { if (!node) return;
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const child of node.childNodes || []) {
    if (child.nodeType === 3) out.push(child.textContent); else if (child.nodeName !== 'STYLE') walk(child); } };
  walk(document.body); return out.join(' '); })()"""
#: The text of the first element named NAME (shadow roots included), or null: what that part of the page shows.
ELEMENT_TEXT = """((name) => { const find = (node) => { if (!node) return null;
  if (node.nodeName && node.nodeName.toLowerCase() === name) return node;
  for (const child of [...(node.shadowRoot ? [node.shadowRoot] : []), ...(node.children || [])]) {
    const found = find(child); if (found) return found; } return null; };
  const out = []; const walk = (node) => { if (!node) return; if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes || []) {
      if (child.nodeType === 3) out.push(child.textContent); else if (child.nodeName !== 'STYLE') walk(child); } };
  const element = find(document.body); if (!element) return null; walk(element); return out.join(' '); })"""


def wait_for(check: Any, what: str, timeout: float = STARTUP_S, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def artifacts_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("HUBPIPE_TEST_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class DevTools:
    """A minimal DevTools-protocol client for one page."""

    def __init__(self, websocket_url: str):
        import websocket

        self.socket = websocket.create_connection(websocket_url, timeout=60, suppress_origin=True)
        self.last_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        self.socket.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def fetch_json(self, path: str, body: dict | None = None) -> Any:
        """Fetches ``path`` from inside the page (same origin), as the dashboards do."""
        options = (
            f"{{method: 'POST', headers: {{'Content-Type': 'application/json'}}, body: {json.dumps(json.dumps(body))}}}"
            if body is not None
            else "{}"
        )
        return self.evaluate(f"fetch({json.dumps(path)}, {options}).then(r => r.json())")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        wait_for(lambda: self.evaluate("document.readyState") == "complete", f"{url} to load")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path


@pytest.fixture
def published_logs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    world: FakeWorld = shared_world(lambda: tmp_path_factory.mktemp("fake-world"))
    monkeypatch.setenv("FAKE_INGEST", str(world.ingest))
    monkeypatch.setenv("FAKE_TRAIN", str(world.train_good_and_weak))
    monkeypatch.setenv("FAKE_CACHE", str(world.cache))
    root = tmp_path_factory.mktemp("published")
    run_pipeline(load_config(overrides={"publish.root": str(root)}), root.parent / "run", fake_upstream.stages())
    return root / "tensorboard"


@pytest.fixture
def run_file(published_logs: Path) -> dict[str, Any]:
    return json.loads((published_logs.parent.parent / "run" / "run.json").read_text())


def _runs_served(url: str) -> list[str] | None:
    try:
        with urllib.request.urlopen(f"{url}/data/runs", timeout=5) as response:
            runs = json.load(response)
    except OSError:
        return None
    return runs or None


@pytest.fixture
def tensorboard_url(published_logs: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "tensorboard.log").open("w")
    command = [sys.executable, "-m", "hubpipe.pipeline.cli", "tensorboard", "--logdir", str(published_logs)]
    server = subprocess.Popen([*command, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    try:
        wait_for(lambda: server.poll() is not None or _runs_served(url), "TensorBoard to serve the runs")
        assert server.poll() is None, (tmp_path / "tensorboard.log").read_text()[-3000:]
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def browser(tmp_path: Path, missing_tool) -> Iterator[DevTools]:
    if CHROMIUM is None:
        missing_tool("chromium is not installed (CI installs Debian's chromium; locally: apt-get install chromium)")
    pytest.importorskip("websocket", reason="websocket-client drives Chromium over the DevTools protocol")
    profile = tmp_path / "chromium-profile"
    process = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        wait_for(lambda: port_file.is_file() and len(port_file.read_text().split()) >= 2, "Chromium's DevTools port")
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            page = next(target for target in json.load(response) if target["type"] == "page")
        client = DevTools(page["webSocketDebuggerUrl"])
        yield client
        client.socket.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_tensorboard_serves_runs_hparams_and_images_to_chromium(
    tensorboard_url: str, browser: DevTools, run_file: dict[str, Any], tmp_path: Path
) -> None:
    browser.open(f"{tensorboard_url}/#hparams")
    assert browser.evaluate("document.title") == "TensorBoard"

    runs = browser.fetch_json("/data/runs")
    (run_id,) = {run.split("/")[0] for run in runs}
    # runs read by the run name (the run folder's name and the date: the folder is called run), not an evaluation id
    evaluation_id = run_file["links"]["evaluation_id"]
    assert run_id == run_file["name"] and re.fullmatch(r"run-\d{4}-\d{2}-\d{2}", run_id), run_id
    assert not any(evaluation_id in run for run in runs)
    for model in ("good", "weak", "scratch_cnn"):
        assert {f"{run_id}/{model}/train", f"{run_id}/{model}/evaluation"} <= set(runs)
    plugins = browser.fetch_json("/data/plugins_listing")
    assert all(plugins[name]["enabled"] for name in ("hparams", "scalars", "images", "text"))

    experiment = browser.fetch_json("/data/plugin/hparams/experiment", {"experimentName": ""})
    assert {"model", "backbone", "mode", "run"} <= {info["name"] for info in experiment["hparamInfos"]}
    metrics = {(m["name"]["group"], m["name"]["tag"]) for m in experiment["metricInfos"]}
    assert {("evaluation", "test_accuracy"), ("evaluation", "blessed"), ("validation", "epoch_accuracy")} <= metrics
    request = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN"], "colParams": [], "startIndex": 0}
    groups = browser.fetch_json("/data/plugin/hparams/session_groups", {**request, "sliceSize": 100})
    accuracy = {
        group["name"]: next(m["value"] for m in group["metricValues"] if m["name"]["tag"] == "test_accuracy")
        for group in groups["sessionGroups"]
    }
    assert accuracy == pytest.approx({f"{run_id}/good": 5 / 6, f"{run_id}/weak": 0.0, f"{run_id}/scratch_cnn": 1 / 3})
    projected = sorted(browser.fetch_json("/data/plugin/projector/runs"))
    assert projected == [f"{run_id}/good/evaluation", f"{run_id}/weak/evaluation"]

    wait_for(lambda: "scratch_cnn" in browser.evaluate(DEEP_TEXT), "the HParams table to show the models", 60)
    table = browser.evaluate(f"{ELEMENT_TEXT}('tf-hparams-table-view')")
    for column in ("test accuracy", "test macro-F1", "test log loss", "test top-5 accuracy"):  # ticked by default
        assert column in table, table[:2000]
    assert f"{run_id}/good" in table and evaluation_id not in table, table[:2000]  # the rows' names
    assert "training loss per epoch" not in table  # the sixth and later metrics are left for the user to tick
    shots = artifacts_dir(tmp_path)
    hparams_png = browser.screenshot(shots / "tensorboard_hparams.png")

    images = browser.fetch_json("/data/plugin/images/tags")
    assert "confusion_matrix" in images[f"{run_id}/good/evaluation"]
    browser.open(f"{tensorboard_url}/#images")
    wait_for(lambda: "confusion_matrix" in browser.evaluate(DEEP_TEXT), "the images dashboard", 60)
    images_png = browser.screenshot(shots / "tensorboard_images.png")
    for shot in (hparams_png, images_png):
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
