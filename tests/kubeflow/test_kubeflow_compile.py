"""`hubpipe compile`: the pipeline YAML of the registered stages loads back with kfp and carries the config as
parameter defaults, the resources, the accelerator with its toleration, retries, caching and the volume."""

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
from hubpipe.pipeline.kubeflow.parameters import CONFIG_PARAMETER, PARAMETERS
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
        "compile", "-o", str(path), "--config", str(config), "--percent", "25", "--pvc", "hubpipe-data"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert str(path) in result.stdout
    pipeline, platform = yaml.safe_load_all(path.read_text())
    return path, pipeline, platform


def executor(pipeline: dict, stage: str) -> dict:
    return pipeline["deploymentSpec"]["executors"][f"exec-{stage}"]["container"]


def test_the_yaml_loads_back_with_kfp_and_has_one_task_per_stage(compiled) -> None:
    from kfp import components

    path, _, _ = compiled
    component = components.load_component_from_file(str(path))
    tasks = component.pipeline_spec.root.dag.tasks
    assert set(tasks) == {stage.name for stage in registered_stages()}
    assert set(tasks["train"].dependent_tasks) == {"ingest", "validate"}
    assert tasks["train"].inputs.artifacts["examples"].task_output_artifact.producer_task == "ingest"


def test_the_config_becomes_the_parameter_defaults(compiled) -> None:
    _, pipeline, _ = compiled
    parameters = pipeline["root"]["inputDefinitions"]["parameters"]
    assert parameters["epochs"]["parameterType"] == "NUMBER_INTEGER" and parameters["epochs"]["defaultValue"] == 7
    assert parameters["percent"]["defaultValue"] == 25.0
    assert parameters["min_accuracy"]["defaultValue"] == 0.8
    assert parameters["backbones"]["parameterType"] == "LIST"
    assert parameters["backbones"]["defaultValue"] == ["efficientnet_lite0"]
    assert parameters["publish_root"]["defaultValue"] == "/mnt/hubpipe/published"
    whole = parameters[CONFIG_PARAMETER]
    assert whole["parameterType"] == "STRING"
    assert json.loads(whole["defaultValue"])["train"]["batch_size"] == 16
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
    assert described["backbones"] == flags["--backbone"]
    assert described["percent"] == flags["--percent"]
    assert all(described[p.name] == setting_of(p.key).help for p in PARAMETERS)
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
    """A stage's component receives exactly the named parameters of the config sections the stage reads."""
    from kfp import dsl

    for spec in registered_stages():
        shell = load_shell(spec)
        component = dsl.component(base_image="x", install_kfp_package=False)(shell.component_function())
        inputs = set(component.component_spec.inputs)
        upstream = {load_shell(s).OUTPUT for s in registered_stages() if s.name in spec.upstream}
        extra = set(getattr(shell, "EXTRA_PARAMETERS", ()))
        expected = {CONFIG_PARAMETER} | parameters_for(spec.sections) | upstream | extra
        assert inputs == expected, spec.name


def test_tasks_run_the_pinned_image_and_install_nothing(compiled) -> None:
    _, pipeline, _ = compiled
    for stage in registered_stages():
        container = executor(pipeline, stage.name)
        assert container["image"] == "ghcr.io/hubpipe/hubpipe:0.1.0"
        command = " ".join(container["command"])
        assert "pip install" not in command
        assert "kfp.dsl.executor_main" in command


def test_resources_accelerator_and_toleration(compiled) -> None:
    _, pipeline, platform = compiled
    train = executor(pipeline, "train")["resources"]
    assert train["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert train["accelerator"]["resourceCount"] == "1"
    assert (train["resourceCpuRequest"], train["resourceCpuLimit"]) == ("4", "8")
    assert (train["resourceMemoryRequest"], train["resourceMemoryLimit"]) == ("16Gi", "32Gi")
    for stage in registered_stages():
        resources = executor(pipeline, stage.name)["resources"]
        assert {"resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest", "resourceMemoryLimit"} <= set(
            resources
        )
        assert ("accelerator" in resources) == (stage.name == "train")
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert k8s["exec-train"]["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    assert "tolerations" not in k8s["exec-ingest"]


def test_task_pods_carry_the_labels_the_network_policy_selects(compiled) -> None:
    _, _, platform = compiled
    policy = yaml.safe_load((Path(__file__).parents[2] / "k8s" / "base" / "networkpolicy.yaml").read_text())
    selected = policy["spec"]["podSelector"]["matchLabels"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for stage in registered_stages():
        labels = k8s[f"exec-{stage.name}"]["podMetadata"]["labels"]
        assert selected.items() <= labels.items()
        assert labels["app.kubernetes.io/component"] == stage.name


def test_caching_retries_and_volume(compiled) -> None:
    _, pipeline, platform = compiled
    tasks = pipeline["root"]["dag"]["tasks"]
    for name, task in tasks.items():
        assert task["cachingOptions"] == {"enableCache": True}
        assert ("retryPolicy" in task) == (name in ("ingest", "publish"))
    assert tasks["ingest"]["retryPolicy"]["maxRetryCount"] == 2
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for stage in registered_stages():
        (mount,) = k8s[f"exec-{stage.name}"]["pvcMount"]
        assert (mount["constant"], mount["mountPath"]) == ("hubpipe-data", "/mnt/hubpipe")
        env = {item["name"]: item["value"] for item in executor(pipeline, stage.name)["env"]}
        assert env["HUBPIPE_CACHE_DIR"] == "/mnt/hubpipe/cache"


def test_cpu_only_compile_uses_the_cpu_image_and_no_accelerator(tmp_path: Path, capsys) -> None:
    path = tmp_path / "cpu.yaml"
    assert main(["compile", "-o", str(path), "--accelerators", "0", "--no-caching", "--retries", "0"]) == 0
    pipeline, *_ = yaml.safe_load_all(path.read_text())
    for stage in registered_stages():
        container = executor(pipeline, stage.name)
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
