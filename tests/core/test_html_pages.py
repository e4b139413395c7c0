"""hubpipe's three kinds of HTML page (run report, validation report, Kubeflow UI page) share one stylesheet."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from hubpipe.components.common.html_parts import OFFLINE_POLICY, STYLE
from hubpipe.components.validate.report import ReportData, render_report
from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.core.stage import StageResult, StageSpec
from hubpipe.pipeline.kubeflow.ui_outputs import Launched, html_report
from hubpipe.pipeline.report.page import render_report as render_run_report


def stylesheets(page: str) -> list[str]:
    return re.findall(r"<style>(.*?)</style>", page, flags=re.S)


def kubeflow_page(tmp_path: Path) -> str:
    (tmp_path / "summary.json").write_text('{"best": "b0"}')
    stage = Launched(
        StageSpec("train", "x:y"),
        StageResult(artifacts={"summary": "summary.json"}),
        {},
        tmp_path,
        "gs://b/t",
        {},
        load_config(),
    )
    target = SimpleNamespace(path=str(tmp_path / "report.html"))
    html_report("Training", "summary")(stage, target)
    return Path(target.path).read_text()


def test_the_three_pages_use_the_one_stylesheet_and_the_offline_policy(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    validation = ReportData("passed", "fail", "/data", "inferred", [], {"cat": {"train": 1, "test": 1}})
    pages = {
        "run report": render_run_report(tmp_path / "run"),
        "validation report": render_report(validation),
        "kubeflow page": kubeflow_page(tmp_path),
    }
    for name, page in pages.items():
        assert stylesheets(page) == [STYLE], name
        assert OFFLINE_POLICY in page, name
    assert "<th>best</th><td>b0</td>" in pages["kubeflow page"]
