"""The command line: start-up cost, exit codes, one-line errors, config show, data sample."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hubpipe.pipeline.cli import COMMANDS, main


def hubpipe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hubpipe.pipeline.cli", *args], capture_output=True, text=True, check=False
    )


def test_help_lists_commands_without_importing_heavy_libraries() -> None:
    probe = (
        "import sys\nfrom hubpipe.pipeline.cli import main\n"
        "code = main(['--help'])\n"
        "heavy = [m for m in ('tensorflow', 'apache_beam', 'tensorflow_data_validation', 'kfp') if m in sys.modules]\n"
        "print('HEAVY', heavy)\nsys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    for name in COMMANDS:
        assert name in result.stdout


def test_every_subcommand_help_is_light() -> None:
    for name in COMMANDS:
        result = hubpipe(name, "--help")
        assert result.returncode == 0, (name, result.stderr)
        assert "Usage: hubpipe" in result.stdout


def test_config_show_prints_the_resolved_config(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\n")
    result = hubpipe("config", "show", "--config", str(path), "--backbone", "mobilenetv2", "--percent", "10")
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["train"]["epochs"] == 3
    assert shown["train"]["backbones"] == ["mobilenetv2"]
    assert shown["data"]["percent"] == 10.0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["config", "show", "--set", "train.epochs=0"], 2, "error: train.epochs must be between 1 and 1000, got 0"),
        (["config", "show", "--set", "epochs"], 2, "error: --set expects SECTION.KEY=VALUE"),
        (["config", "show", "--config", "/nonexistent/c.yaml"], 2, "error: cannot read config file"),
        (["run", "--until", "nowhere"], 2, "Invalid value for '--until'"),
        (["no-such-command"], 2, "No such command"),
    ],
)
def test_user_mistakes_give_one_line_and_exit_code(args: list[str], code: int, message: str) -> None:
    result = hubpipe(*args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_main_maps_unexpected_errors_to_exit_1(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from hubpipe.pipeline.commands import config as config_command

    def explode(config):
        raise KeyError("bug")

    monkeypatch.setattr(config_command, "to_yaml", explode)
    assert main(["config", "show"]) == 1
    err = capsys.readouterr().err
    assert "KeyError" in err and "--debug" in err
    with pytest.raises(KeyError):
        main(["--debug", "config", "show"])


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.jpg")}


def test_data_sample_is_deterministic(tmp_path: Path) -> None:
    args = ["data", "sample", "--train-per-class", "3", "--test-per-class", "2"]
    assert main([*args, str(tmp_path / "a")]) == 0
    assert main([*args, str(tmp_path / "b")]) == 0
    first, second = _tree_digest(tmp_path / "a"), _tree_digest(tmp_path / "b")
    assert len(first) == 10 * 5
    assert first == second
    assert main([*args, "--seed", "1", str(tmp_path / "c")]) == 0
    assert _tree_digest(tmp_path / "c") != first
    assert main([*args, str(tmp_path / "a")]) == 2  # not empty


def test_a_failing_beam_steps_own_traceback_is_not_shown_without_debug(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beam logs a failing step's traceback before it raises; the command then prints the error in one line."""
    import logging

    from hubpipe.pipeline.core.log_setup import configure_logging

    for name in ("", "hubpipe", "apache_beam"):  # restored after the test
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", list(logger.handlers))
        monkeypatch.setattr(logger, "level", logger.level)
    configure_logging(debug=False)
    logging.getLogger("apache_beam.runners.common").error("OSError: [Errno 28] No space left on device", exc_info=False)
    logging.getLogger("hubpipe.ingest").warning("shown")
    assert capsys.readouterr().err == "shown\n"
    logging.getLogger("apache_beam").setLevel(logging.NOTSET)  # as in a new process
    configure_logging(debug=True)
    logging.getLogger("apache_beam.runners.common").error("shown with --debug")
    assert "shown with --debug" in capsys.readouterr().err
