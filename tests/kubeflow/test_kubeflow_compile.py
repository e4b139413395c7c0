"""`hubpipe compile`: the pipeline YAML of the registered stages loads back with kfp and carries the config as
parameter defaults, one train task per backbone and one for the baseline with a collect task, the resources,
the accelerator with its toleration, retries, caching and the volume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hubpipe.pipeline.cli import main
from hubpipe.pipeline.core.config import setting_of
from hubpipe.pipeline.core.errors import StageError
from hubpipe.pipeline.kubeflow.options import KubeflowOptions
from hubpipe.pipeline.kubeflow.parameters import BY_NAME, CONFIG_PARAMETER, PARAMETERS
from hubpipe.pipeline.kubeflow.pipeline_definition import load_shell
from hubpipe.pipeline.stages import registered_stages


def hubpipe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hubpipe.pipeline.cli", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """The pipeline compiled by the CLI with a config file, flags and a volume; its two YAML documents."""
    folder = tmp_path_factory.mktemp("compile")
    config = folder / "config.yaml"
    config.write_text("train:\n  epochs: 7\n  batch_size: 16\nevaluate:\n  min_accuracy: 0.8\n")
    path = folder / "pipeline.yaml"
    result = hubpipe(
        "compile", "-o", str(path), "--config", str(config), "--percent", "25", "--pvc", "hubpipe-data",
        "--backbone", "efficientnet_lite0", "--backbone", "efficientnet_lite1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert str(path) in result.stdout
    pipeline, platform = yaml.safe_load_all(path.read_text())
    return path, pipeline, platform


#: The tasks of the compiled pipeline (two backbones and the baseline): name -> the stage whose resources and
#: pod label it has.
TASKS = {
    "ingest": "ingest",
    "validate": "validate",
    "train": "train",
    "train-2": "train",
    "train-3": "train",
    "train-collect": "train-collect",
    "evaluate": "evaluate",
    "publish": "publish",
}
TRAIN_TASKS = {"train": "efficientnet_lite0", "train-2": "efficientnet_lite1", "train-3": "scratch_cnn"}


def executor(pipeline: dict, task: str) -> dict:
    return pipeline["deploymentSpec"]["executors"][f"exec-{task}"]["container"]


def test_the_yaml_loads_back_with_kfp_and_has_one_task_per_stage_and_backbone(compiled) -> None:
    from kfp import components

    path, _, _ = compiled
    component = components.load_component_from_file(str(path))
    tasks = component.pipeline_spec.root.dag.tasks
    assert set(tasks) == set(TASKS)
    for task, model in TRAIN_TASKS.items():
        assert tasks[task].task_info.name == f"train: {model}"
        assert set(tasks[task].dependent_tasks) == {"ingest", "validate"}
        assert tasks[task].inputs.artifacts["examples"].task_output_artifact.producer_task == "ingest"
    collect = tasks["train-collect"]
    assert collect.task_info.name == "train: collect"
    assert set(collect.dependent_tasks) == set(TRAIN_TASKS)
    assert {
        name: (spec.task_output_artifact.producer_task, spec.task_output_artifact.output_artifact_key)
        for name, spec in collect.inputs.artifacts.items()
    } == {model: (task, "model") for task, model in TRAIN_TASKS.items()}
    for downstream in ("evaluate", "publish"):
        assert tasks[downstream].inputs.artifacts["model"].task_output_artifact.producer_task == "train-collect"
    assert "train-collect" in tasks["evaluate"].dependent_tasks


def test_each_train_task_gets_its_part_as_a_constant(compiled) -> None:
    _, pipeline, _ = compiled
    tasks = pipeline["root"]["dag"]["tasks"]
    parts = {task: tasks[task]["inputs"]["parameters"]["part"]["runtimeValue"]["constant"] for task in TRAIN_TASKS}
    compiled_for = {"compiled_backbones": ["efficientnet_lite0", "efficientnet_lite1"], "compiled_baseline": True}
    assert parts == {
        "train": {
            "model": "efficientnet_lite0",
            "backbones": ["efficientnet_lite0"],
            "baseline": False,
            **compiled_for,
        },
        "train-2": {
            "model": "efficientnet_lite1",
            "backbones": ["efficientnet_lite1"],
            "baseline": False,
            **compiled_for,
        },
        "train-3": {"model": "scratch_cnn", "backbones": [], "baseline": True, **compiled_for},
    }
    collect_parameters = tasks["train-collect"]["inputs"]["parameters"]
    assert collect_parameters == {"config": {"componentInputParameter": "config"}}


def test_baseline_off_and_one_backbone_gives_one_train_task_and_the_collect_task(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    assert main(["compile", "-o", str(path), "--set", "train.baseline=false"]) == 0
    pipeline, *_ = yaml.safe_load_all(path.read_text())
    tasks = pipeline["root"]["dag"]["tasks"]
    assert {name for name in tasks if name.startswith("train")} == {"train", "train-collect"}
    assert tasks["train"]["taskInfo"]["name"] == "train: efficientnet_lite0"
    assert tasks["train"]["inputs"]["parameters"]["part"]["runtimeValue"]["constant"]["baseline"] is False


def test_the_config_becomes_the_parameter_defaults(compiled) -> None:
    _, pipeline, _ = compiled
    parameters = pipeline["root"]["inputDefinitions"]["parameters"]
    assert parameters["epochs"]["parameterType"] == "NUMBER_INTEGER" and parameters["epochs"]["defaultValue"] == 7
    assert parameters["percent"]["defaultValue"] == 25.0
    assert parameters["min_accuracy"]["defaultValue"] == 0.8
    assert "backbones" not in parameters  # fixed when compiling: one train task per backbone
    assert parameters["publish_root"]["defaultValue"] == "/mnt/hubpipe/published"
    assert parameters["run_name"]["defaultValue"] == "" and parameters["gate_rule"]["defaultValue"] == "interval"
    whole = parameters[CONFIG_PARAMETER]
    assert whole["parameterType"] == "STRING"
    assert json.loads(whole["defaultValue"])["train"]["batch_size"] == 16
    assert json.loads(whole["defaultValue"])["train"]["backbones"] == ["efficientnet_lite0", "efficientnet_lite1"]
    assert json.loads(whole["defaultValue"])["publish"]["pvc_path"] == "published/tensorboard"


def test_integer_settings_stay_integers_in_the_yaml(compiled) -> None:
    """KFP keeps numbers as doubles: a struct default showed epochs as 5.0. The configuration is JSON text and
    the integer parameters' defaults are written as integers, in the spec, the components and the header."""
    path, pipeline, _ = compiled
    parameters = pipeline["root"]["inputDefinitions"]["parameters"]
    integers = [name for name, spec in parameters.items() if spec["parameterType"] == "NUMBER_INTEGER"]
    assert {"epochs", "batch_size", "fine_tune_layers"} <= set(integers)
    assert all(type(parameters[name]["defaultValue"]) is int for name in integers)
    assert (parameters["epochs"]["defaultValue"], parameters["batch_size"]["defaultValue"]) == (7, 16)
    text = path.read_text()
    assert "#    epochs: int [Default: 7]\n" in text and "[Default: 16.0]" not in text
    from kfp import components

    spec = components.load_component_from_file(str(path)).pipeline_spec  # what the KFP backend reads
    config = json.loads(spec.root.input_definitions.parameters[CONFIG_PARAMETER].default_value.string_value)
    assert type(config["train"]["epochs"]) is int and config["train"]["epochs"] == 7
    assert type(config["data"]["max_pixels"]) is int


def test_the_parameters_carry_the_help_of_hubpipe_run(compiled) -> None:
    """Each parameter's description is its setting's help, the same text `hubpipe run --help` shows."""
    from hubpipe.pipeline.commands.run import run

    _, pipeline, _ = compiled
    described = {name: spec["description"] for name, spec in pipeline["root"]["inputDefinitions"]["parameters"].items()}
    flags = {option.opts[0]: option.help for option in run.params}
    assert described["epochs"] == flags["--epochs"] == "Training epochs of each classifier head."
    assert described["data_source"] == flags["--data"]
    assert described["percent"] == flags["--percent"]
    assert all(described[p.name] == setting_of(p.key).help for p in PARAMETERS if p.name in described)
    shown = " ".join(hubpipe("run", "--help").stdout.split())
    assert all(" ".join(flags[flag].split()) in shown for flag in ("--epochs", "--data", "--backbone"))
    train = pipeline["components"]["comp-train"]["inputDefinitions"]["parameters"]
    assert train["epochs"]["description"] == described["epochs"]  # the component's docstring, generated


def parameters_for(sections: tuple[str, ...]) -> set[str]:
    """The named parameters of the settings of the config sections ``sections``."""
    return {parameter.name for parameter in PARAMETERS if parameter.key.split(".", 1)[0] in sections}


def test_parameters_belong_to_sections() -> None:
    assert parameters_for(("publish",)) == {"publish_root"}
    assert parameters_for(("data",)) == {"data_source", "percent"}


def test_each_component_takes_the_parameters_of_its_stage_sections() -> None:
    """A stage's component receives exactly the named parameters of the config sections the stage reads, except
    those fixed when compiling (the train stage's backbones: one task each, told its part by a constant input)."""
    from kfp import dsl

    fixed = set()
    for spec in registered_stages():
        shell = load_shell(spec)
        component = dsl.component(base_image="x", install_kfp_package=False)(shell.component_function())
        inputs = set(component.component_spec.inputs)
        upstream = {load_shell(s).OUTPUT for s in registered_stages() if s.name in spec.upstream}
        extra = set(getattr(shell, "EXTRA_PARAMETERS", ()))
        part = {shell.PART_INPUT} if hasattr(shell, "PART_INPUT") else set()
        compiled = set(getattr(shell, "COMPILED_PARAMETERS", ()))
        parameters = parameters_for(spec.sections) - compiled
        assert inputs == {CONFIG_PARAMETER} | parameters | upstream | extra | part, spec.name
        fixed |= compiled
    assert fixed == {"backbones"} and fixed <= set(BY_NAME)


def test_tasks_run_the_pinned_image_and_install_nothing(compiled) -> None:
    _, pipeline, _ = compiled
    for task in TASKS:
        container = executor(pipeline, task)
        assert container["image"] == "ghcr.io/hubpipe/hubpipe:0.1.0"
        command = " ".join(container["command"])
        assert "pip install" not in command
        assert "kfp.dsl.executor_main" in command


def test_resources_accelerator_and_toleration(compiled) -> None:
    _, pipeline, platform = compiled
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for task in TRAIN_TASKS:  # every backbone's task and the baseline's: a GPU each
        train = executor(pipeline, task)["resources"]
        assert train["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert train["accelerator"]["resourceCount"] == "1"
        assert (train["resourceCpuRequest"], train["resourceCpuLimit"]) == ("4", "8")
        assert (train["resourceMemoryRequest"], train["resourceMemoryLimit"]) == ("16Gi", "32Gi")
        toleration = {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}
        assert k8s[f"exec-{task}"]["tolerations"] == [toleration]
    for task, stage in TASKS.items():
        resources = executor(pipeline, task)["resources"]
        assert {"resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest", "resourceMemoryLimit"} <= set(
            resources
        )
        assert ("accelerator" in resources) == (stage == "train")
        assert ("tolerations" in k8s[f"exec-{task}"]) == (stage == "train")
    collect = executor(pipeline, "train-collect")["resources"]
    assert (collect["resourceCpuLimit"], collect["resourceMemoryLimit"]) == ("1", "2Gi")


def test_task_pods_carry_the_labels_the_network_policy_selects(compiled) -> None:
    _, _, platform = compiled
    policy = yaml.safe_load((Path(__file__).parents[2] / "k8s" / "base" / "networkpolicy.yaml").read_text())
    selected = policy["spec"]["podSelector"]["matchLabels"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(k8s) == {f"exec-{task}" for task in TASKS}
    for task, stage in TASKS.items():
        labels = k8s[f"exec-{task}"]["podMetadata"]["labels"]
        assert selected.items() <= labels.items()
        assert labels["app.kubernetes.io/component"] == stage


def test_caching_retries_and_volume(compiled) -> None:
    _, pipeline, platform = compiled
    tasks = pipeline["root"]["dag"]["tasks"]
    for name, task in tasks.items():
        assert task["cachingOptions"] == {"enableCache": True}
        assert ("retryPolicy" in task) == (name in ("ingest", "publish"))
    assert tasks["ingest"]["retryPolicy"]["maxRetryCount"] == 2
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for task in TASKS:
        (mount,) = k8s[f"exec-{task}"]["pvcMount"]
        assert (mount["constant"], mount["mountPath"]) == ("hubpipe-data", "/mnt/hubpipe")
        env = {item["name"]: item["value"] for item in executor(pipeline, task)["env"]}
        assert env["HUBPIPE_CACHE_DIR"] == "/mnt/hubpipe/cache"


def test_cpu_only_compile_uses_the_cpu_image_and_no_accelerator(tmp_path: Path, capsys) -> None:
    path = tmp_path / "cpu.yaml"
    assert main(["compile", "-o", str(path), "--accelerators", "0", "--no-caching", "--retries", "0"]) == 0
    pipeline, *_ = yaml.safe_load_all(path.read_text())
    for task in pipeline["root"]["dag"]["tasks"]:
        container = executor(pipeline, task)
        assert container["image"] == "ghcr.io/hubpipe/hubpipe:0.1.0-cpu"
        assert "accelerator" not in container["resources"]
    for task in pipeline["root"]["dag"]["tasks"].values():
        assert task["cachingOptions"] == {}
        assert "retryPolicy" not in task
    assert "publish.root is empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pvc", "Not_A_Name"], "PVC name must be a lowercase DNS label"),
        (["--pvc-mount", "relative/path"], "PVC mount path must be absolute"),
        (["--image", "two words"], "image must be a container image reference"),
        (["--set", "train.epochs=0"], "train.epochs must be between 1 and 1000"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = hubpipe("compile", "-o", str(tmp_path / "p.yaml"), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "p.yaml").exists()


def test_a_local_data_path_warns_that_pods_will_not_see_it(tmp_path: Path, capsys) -> None:
    data = tmp_path / "images"
    data.mkdir()
    path = str(tmp_path / "p.yaml")
    assert main(["compile", "-o", path, "--data", str(data)]) == 0
    err = capsys.readouterr().err
    assert f"data.source {data} is a path: the pipeline's pods will not see it unless it is on a volume" in err
    on_volume = ["--pvc", "data", "--pvc-mount", "/mnt/hubpipe"]
    assert main(["compile", "-o", path, "--data", "/mnt/hubpipe/images", *on_volume]) == 0
    assert main(["compile", "-o", path, "--data", "gs://bucket/images"]) == 0
    assert main(["compile", "-o", path, "--data", str(data), *on_volume]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "pods will not see it" in line]
    assert len(warnings) == 1 and "unless it is on the volume mounted at /mnt/hubpipe (--pvc data)" in warnings[0]


def test_a_stage_without_a_component_is_named() -> None:
    from hubpipe.pipeline.core.stage import StageSpec

    with pytest.raises(StageError, match=r"stage extra has no Kubeflow component: hubpipe\.components\.nowhere"):
        load_shell(StageSpec("extra", "hubpipe.components.nowhere.executor:run"))


def test_compile_is_light_enough_to_import_nothing_heavy(tmp_path: Path) -> None:
    """Compiling imports kfp but neither TensorFlow nor Beam nor TFDV (the components are only described)."""
    probe = (
        "import sys\nfrom hubpipe.pipeline.cli import main\n"
        f"code = main(['compile', '-o', {str(tmp_path / 'p.yaml')!r}])\n"
        "heavy = [m for m in ('tensorflow', 'apache_beam', 'tensorflow_data_validation') if m in sys.modules]\n"
        "print('HEAVY', heavy)\nsys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def test_options_give_each_stage_its_resources() -> None:
    options = KubeflowOptions(accelerator_count=2, accelerator_stages=("train", "evaluate"))
    assert options.accelerated("evaluate") and not options.accelerated("ingest")
    assert options.resources_for("publish").memory_limit == "2Gi"
    assert options.resources_for("unknown-stage").cpu_request == "1"
    assert KubeflowOptions(accelerator_count=0).accelerated("train") is False
