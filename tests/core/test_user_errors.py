"""Errors that say what to do, with one rule for exit codes and one exception hierarchy (issue 24, item 6)."""

from __future__ import annotations

import fake_stages
import pytest

import hubpipe
from hubpipe.pipeline.cli import main
from hubpipe.pipeline.core import errors
from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.core.stage import StageSpec
from hubpipe.pipeline.local_runner import run_pipeline

#: A backbone URL nothing answers (the discard port of the loopback address): refused at once, offline too.
UNREACHABLE = "http://127.0.0.1:9/no/model/1"


def test_one_hierarchy_exported_by_hubpipe_with_the_bad_input_rule() -> None:
    for name in ("HubpipeError", "ConfigError", "UsageError", "DataError", "DataRejected", "StageError"):
        assert getattr(hubpipe, name) is getattr(errors, name)
    assert issubclass(errors.UsageError, errors.ConfigError)  # `except hubpipe.ConfigError` catches a misused call
    bad_input = (errors.ConfigError, errors.UsageError, errors.DataError)
    assert {error.exit_code for error in bad_input} == {2}
    assert errors.StageError.exit_code == errors.HubpipeError.exit_code == 1


def test_an_unknown_set_key_suggests_the_closest_names(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--set", "train.batchsize=16"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown setting train.batchsize; did you mean train.batch_size?"
    with pytest.raises(hubpipe.ConfigError, match=r"unknown setting zzz\.qqq; `hubpipe config show` lists"):
        load_config(overrides={"zzz.qqq": 1})
    with pytest.raises(hubpipe.ConfigError, match=r"unknown setting trian\.epochs; did you mean train\.epochs\?"):
        load_config(overrides={"trian.epochs": 1})


def test_a_bad_yaml_file_gives_the_parsers_reason(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 3\n batch_size: 8\n")
    with pytest.raises(hubpipe.ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(f"config file {path} is not valid YAML at line 3, column 2: ")
    assert "expected <block end>, but found '<block mapping start>'" in message


def test_a_misspelled_backbone_is_a_config_error_from_the_api_before_any_stage(tmp_path) -> None:
    with pytest.raises(hubpipe.ConfigError, match="unknown backbone 'efficientnet_lite9'; did you mean"):
        hubpipe.run(backbones=["efficientnet_lite9"], output=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_unreachable_backbone_url_stops_the_run_before_any_stage(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["run", "--backbone", UNREACHABLE, "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: backbone {UNREACHABLE} cannot be reached ({UNREACHABLE}: ")
    assert err.endswith(f"`hubpipe models pull {UNREACHABLE} --to DIR`, then use DIR as the backbone")
    assert not out.exists()  # no stage ran: not even the run folder was made
    with pytest.raises(hubpipe.ConfigError, match="cannot be reached"):
        hubpipe.run(backbones=[UNREACHABLE], output=out)
    assert not out.exists()


def test_a_rejection_names_the_setting_that_accepts_the_data_and_the_report(tmp_path, counts) -> None:
    stages = (fake_stages.CHAIN[0], StageSpec("validate", "fake_stages:reject_with_report", upstream=("ingest",)))
    with pytest.raises(errors.DataRejected) as raised:
        run_pipeline(load_config(), tmp_path / "run", stages)
    assert str(raised.value) == f"class 'x' missing (report: {tmp_path / 'run' / 'validate' / 'report.html'})"
    with pytest.raises(errors.DataRejected, match=r"\(report: .*report\.html\)$"):  # and when cached
        run_pipeline(load_config(), tmp_path / "run", stages)


def test_the_validate_stage_says_how_to_go_on() -> None:
    from hubpipe.components.validate.checks import Anomaly
    from hubpipe.components.validate.core import _rejection

    message = _rejection([Anomaly("error", "class_missing", "label", "class 'x' has no images", "test")], "fail")
    assert "rerun with --set validate.policy=warn" in message and "validate={'policy': 'warn'}" in message
