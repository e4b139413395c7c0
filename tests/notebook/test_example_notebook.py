"""The example notebook runs headless from the first cell to the last (nbclient, the ipykernel from PyPI): the
three offline extractors it compares (EfficientNet-Lite0/1/2, real ImageNet weights) on the tiny dataset; any
cell error fails the test, and the TensorBoard cell must not block."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import pytest
from notebook_fixtures import tiny_config_file
from test_api_output import LIBRARY_NOISE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "feature_extraction.ipynb"
CELL_TIMEOUT_S = 600


def _stop_tensorboards(logdir_root: Path) -> list[int]:
    """Stops the TensorBoard servers the notebook started (those serving logs under ``logdir_root``)."""
    from tensorboard import manager

    stopped = []
    for info in manager.get_all():
        if str(logdir_root) in (info.logdir or ""):
            os.kill(info.pid, signal.SIGTERM)
            stopped.append(info.pid)
    return stopped


def test_notebook_runs_headless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (parameters,) = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    config = tiny_config_file(tmp_path)
    parameters.source += f"\n\n# the test's tiny run\nSETTINGS = {{'config': {str(config)!r}}}\nOUTPUT = 'tiny-run'"
    parameters.source += "\nDATA = EPOCHS = None"  # the notebook's own BACKBONES: the three real extractors
    # A kernel started from the environment's python (as Jupyter starts it) without its bin folder on PATH: the
    # TensorBoard cell must find the environment's TensorBoard anyway.
    monkeypatch.setenv("PATH", _path_without(Path(sys.executable).parent))
    monkeypatch.delenv("TENSORBOARD_BINARY", raising=False)
    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    try:
        client.execute()  # raises CellExecutionError on any cell error
    finally:
        stopped = _stop_tensorboards(tmp_path)
    outputs = {index: cell.get("outputs", []) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"}
    html = [o["data"]["text/html"] for cells in outputs.values() for o in cells if "text/html" in o.get("data", {})]
    assert any('class="hubpipe-run"' in part for part in html)  # the Run's notebook view
    assert any("<table" in part and "scratch_cnn" in part for part in html)  # the models table and predictions
    pictures = [o for cells in outputs.values() for o in cells if "image/png" in o.get("data", {})]
    assert len(pictures) >= 3  # the training curves, the confusion matrix and the misclassified images
    (curves,) = [cell for cell in notebook.cells if "run.history" in cell.source and cell.cell_type == "code"]
    assert any("image/png" in o.get("data", {}) for o in curves.outputs)  # plotted inline
    (models,) = [cell for cell in notebook.cells if cell.source == "run.models"]
    table = models.outputs[0]["data"]["text/html"]
    assert all(name in table for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"))
    (gate,) = [cell for cell in notebook.cells if 'run.blessing.get("checks"' in cell.source]
    assert "max_drop_vs_blessed" in gate.outputs[0]["data"]["text/html"]  # the checks with their intervals
    (board,) = [cell for cell in notebook.cells if cell.source.startswith("run.tensorboard(")]
    shown = "".join(o.get("data", {}).get("text/html", "") for o in board.outputs)
    assert "<iframe" in shown and "const port = " in shown, board.outputs  # TensorBoard started, on its own port
    assert not stopped  # and the kernel's shutdown stopped it
    assert (tmp_path / "tiny-run" / "run.json").is_file()
    (run_cell,) = [cell for cell in notebook.cells if "hubpipe.run(" in cell.source and "RUN_ONLINE" not in cell.source]
    printed = "".join(o.get("text", "") for o in run_cell.outputs if o.get("output_type") == "stream")
    assert "[train] running" in printed and "scratch_cnn epoch 1/1" in printed
    assert re.search(r"features: embedding \d+ of \d+ images", printed)  # the extraction's progress has its total
    noise = [line for line in printed.splitlines() if any(word in line for word in LIBRARY_NOISE)]
    assert not noise, noise


def _path_without(folder: Path) -> str:
    """PATH without ``folder`` (however it is spelled there)."""
    kept = [part for part in os.environ["PATH"].split(os.pathsep) if part and Path(part).resolve() != folder.resolve()]
    return os.pathsep.join(kept)
