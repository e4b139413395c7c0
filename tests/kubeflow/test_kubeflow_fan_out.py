"""The train stage's fan-out on Kubeflow, without KFP runs: which tasks a configuration gives, how a task narrows
the configuration (and refuses one it was not compiled for), and the collect component's generated function."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import pytest

from hubpipe.pipeline.core.config import load_config, to_dict
from hubpipe.pipeline.core.errors import UsageError
from hubpipe.pipeline.kubeflow.fan_out import TrainPart, input_names, narrow_to_part, train_parts


def config_of(backbones: list[str], baseline: bool = True):
    return load_config(overrides={"train.backbones": backbones, "train.baseline": baseline})


def test_one_part_per_backbone_in_order_then_the_baseline() -> None:
    config = config_of(["efficientnet_lite1", "EfficientNet-Lite0", "/models/my.backbone"])
    assert train_parts(config.train) == [
        TrainPart("efficientnet_lite1", ("efficientnet_lite1",), False),
        TrainPart("efficientnet_lite0", ("EfficientNet-Lite0",), False),
        TrainPart("my.backbone", ("/models/my.backbone",), False),
        TrainPart("scratch_cnn", (), True),
    ]
    assert [part.model for part in train_parts(config_of(["efficientnet_lite0"], baseline=False).train)] == [
        "efficientnet_lite0"
    ]


def test_backbones_whose_models_would_share_a_name_are_refused_when_compiling() -> None:
    with pytest.raises(UsageError, match="backbone /b/model would train a model named model like an earlier"):
        train_parts(config_of(["/a/model", "/b/model"]).train)
    with pytest.raises(UsageError, match="unknown backbone 'no-such-preset'"):
        train_parts(config_of(["no-such-preset"]).train)


def test_a_task_trains_only_its_part() -> None:
    config = config_of(["efficientnet_lite0", "efficientnet_lite1"])
    first, second, baseline = (part.argument(config.train) for part in train_parts(config.train))
    narrowed = narrow_to_part(config, second)
    assert (narrowed.train.backbones, narrowed.train.baseline) == (("efficientnet_lite1",), False)
    narrowed = narrow_to_part(config, baseline)
    assert (narrowed.train.backbones, narrowed.train.baseline) == ((), True)
    assert narrowed.train.epochs == config.train.epochs and narrowed.data == config.data
    assert first["compiled_backbones"] == ["efficientnet_lite0", "efficientnet_lite1"]


@pytest.mark.parametrize(
    ("backbones", "baseline", "asked"),
    [
        (["efficientnet_lite0"], True, "efficientnet_lite0 with the from-scratch baseline"),
        (["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"], True, "efficientnet_lite2 with"),
        (["efficientnet_lite0", "efficientnet_lite1"], False, "efficientnet_lite1 without the from-scratch"),
    ],
)
def test_a_run_asking_for_other_backbones_than_compiled_is_one_line(backbones, baseline, asked: str) -> None:
    compiled = config_of(["efficientnet_lite0", "efficientnet_lite1"])
    part = train_parts(compiled.train)[0].argument(compiled.train)
    with pytest.raises(UsageError) as raised:
        narrow_to_part(config_of(backbones, baseline), part)
    message = str(raised.value)
    assert message.startswith(
        "this pipeline was compiled with one train task per backbone for efficientnet_lite0, efficientnet_lite1 "
        "with the from-scratch baseline, but the run's configuration asks for "
    )
    assert asked in message and "compile it again" in message and "\n" not in message


def test_a_train_task_given_another_configuration_exits_2_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The launcher narrows before the stage starts: no folder is written, one line, exit code 2."""
    from kfp import dsl

    from hubpipe.pipeline.kubeflow import launcher
    from hubpipe.pipeline.kubeflow.launcher import launch

    monkeypatch.setattr(launcher, "configure_logging", lambda debug: None)
    compiled = config_of(["efficientnet_lite0", "efficientnet_lite1"])
    part = train_parts(compiled.train)[0].argument(compiled.train)
    submitted = to_dict(config_of(["efficientnet_lite2"]))
    output = dsl.Model(name="model", uri=str(tmp_path / "model"))
    with caplog.at_level(logging.ERROR, "hubpipe.kubeflow"), pytest.raises(SystemExit) as stopped:
        launch("train", submitted, {}, output=output, narrow=lambda config: narrow_to_part(config, part))
    assert stopped.value.code == 2
    assert "compiled with one train task per backbone" in caplog.text
    assert not (tmp_path / "model").exists()


def test_collect_inputs_are_named_after_the_parts_when_they_can_be() -> None:
    parts = ["efficientnet_lite0", "my.backbone", "2nd", "model", "class", "my_backbone", "scratch_cnn"]
    assert input_names(parts) == [
        "efficientnet_lite0", "my_backbone", "part_3", "part_4", "part_5", "part_6", "scratch_cnn"
    ]  # fmt: skip


def test_the_collect_function_is_a_lightweight_component_with_one_input_per_part() -> None:
    """KFP embeds the generated source (inspect.getsource) and reads its inputs from the signature."""
    from kfp import dsl

    from hubpipe.components.train.kfp_component import COLLECT, collect_function

    function = collect_function(["efficientnet_lite0", "my.backbone", "scratch_cnn"])
    assert inspect.getsource(function).startswith(f"def {COLLECT}(")
    component = dsl.component(base_image="x", install_kfp_package=False)(function)
    inputs = component.component_spec.inputs
    assert list(inputs) == ["config", "efficientnet_lite0", "my_backbone", "scratch_cnn"]
    assert inputs["my_backbone"].type == "system.Model@0.0.1"
    assert inputs["config"].type == "String"  # the configuration as JSON text (integers stay integers)
    assert list(component.component_spec.outputs) == ["model", "report", "summary", "metrics", "mlpipeline_ui_metadata"]
    command = "\n".join(component.component_spec.implementation.container.command)
    assert "[('efficientnet_lite0', efficientnet_lite0), ('my.backbone', my_backbone)" in command
    assert inputs["my_backbone"].description == "The folder of the train task of my.backbone."


@pytest.mark.parametrize(
    ("parts", "collect_for", "message"),
    [
        ([("a", {"nonsense": 1})], ["a"], "the component of stage train has no input nonsense"),
        ([("a", {}), ("b", {})], ["a"], "the collect component of stage train takes 1 folders, not 2"),
    ],
)
def test_a_fan_out_that_does_not_fit_its_components_is_refused_when_compiling(parts, collect_for, message) -> None:
    """The wiring checks a shell's fan-out against its components (the toy stages of kfp_fake_stages)."""
    from types import SimpleNamespace

    import kfp_fake_stages

    from hubpipe.components.train.kfp_component import collect_function
    from hubpipe.pipeline.core.errors import StageError
    from hubpipe.pipeline.kubeflow.options import KubeflowOptions
    from hubpipe.pipeline.kubeflow.pipeline_definition import create_pipeline

    train = kfp_fake_stages.SHELLS["train"]
    shells = {
        **kfp_fake_stages.SHELLS,
        "train": SimpleNamespace(
            OUTPUT=train.OUTPUT,
            component_function=train.component_function,
            fan_out=lambda config: parts,
            collect_function=lambda names: collect_function(collect_for),
        ),
    }
    with pytest.raises(StageError, match=message):
        create_pipeline(load_config(), KubeflowOptions(), list(kfp_fake_stages.SPECS.values()), shells)
