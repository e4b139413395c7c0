"""Each setting is declared once, in the configuration tree, with its help text and public names; the CLI flags,
the API's shortcuts and the Kubeflow parameters are generated from it."""

from __future__ import annotations

import ast
import inspect
import typing
from collections import Counter
from pathlib import Path

from hubpipe.pipeline.api import keyword_settings, run
from hubpipe.pipeline.commands.options import flagged_settings
from hubpipe.pipeline.commands.run import run as run_command
from hubpipe.pipeline.core.config import settings
from hubpipe.pipeline.kubeflow.parameters import PARAMETERS

REPO = Path(__file__).resolve().parents[2]


def source_strings() -> Counter[str]:
    """Every string constant of the installed source (implicitly concatenated literals as one)."""
    found: Counter[str] = Counter()
    for folder in ("pipeline", "components", "data"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found[node.value] += 1
    return found


def test_every_setting_has_help_and_its_help_is_written_once() -> None:
    strings = source_strings()
    assert [item.key for item in settings() if not item.help.strip()] == []
    assert {item.key: strings[item.help] for item in settings() if strings[item.help] != 1} == {}
    assert strings["Training epochs of each classifier head."] == 1


def test_public_names_are_unique() -> None:
    for kind in ("flag", "keyword", "parameter"):
        names = [getattr(item, kind) for item in settings() if getattr(item, kind)]
        assert len(names) == len(set(names)), kind


def test_the_cli_flags_are_the_declared_ones_with_their_help() -> None:
    options = {option.opts[0]: option for option in run_command.params}
    for item in flagged_settings():
        assert options[item.flag].help == item.help
        assert options[item.flag].multiple == (typing.get_origin(item.type) is tuple)
    assert {"--data", "--backbone", "--epochs", "--percent", "--beam-arg", "--name"} <= set(options)


def test_the_api_shortcuts_are_the_declared_keywords() -> None:
    parameters = inspect.signature(run).parameters
    assert parameters["name"].kind is inspect.Parameter.KEYWORD_ONLY  # the run name is never given by position
    shortcuts = [*list(parameters)[:3], "name"]
    assert shortcuts == list(keyword_settings()) == ["data", "backbones", "epochs", "name"]


def test_the_kubeflow_parameters_are_the_declared_ones() -> None:
    declared = {item.parameter: item for item in settings() if item.parameter}
    assert [p.name for p in PARAMETERS] == list(declared)
    assert all(p.key == declared[p.name].key and p.description == declared[p.name].help for p in PARAMETERS)
