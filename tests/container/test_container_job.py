"""The plain Kubernetes Job's contract, tested on the manifests themselves: the cpu overlay rendered with
kustomize, its Job's pod template played as a Pod with `podman kube play` (with the ConfigMap and the volume
claim it names) on the embedded sample, then the run folder checked on the volume.

What is changed from the rendered manifests, and why: the image (the one under test, never pulled), the claim's
name (a volume of the test's own), the pod's network (none: the run must need no network) and CPU limits above
the machine's cores (podman refuses a limit larger than the host). Everything else is as rendered: args, env,
read-only root file system, uid 10001, the config file mounted read-only, emptyDir for /tmp and the home folder.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from k8s_overlays import by_kind, documents, render
from podman import IMAGE_UID, podman

pytestmark = [pytest.mark.container, pytest.mark.e2e, pytest.mark.slow]

JOB_TIMEOUT_S = 1500


@pytest.fixture(scope="module")
def overlay() -> list[dict]:
    """The objects of the cpu overlay, rendered once for the module."""
    return documents(render("cpu"))


def job_as_pod(docs: list[dict], image: str, claim: str) -> tuple[list[dict], dict]:
    """The ConfigMap, the claim and the Job's pod template as a Pod for `podman kube play`; also the Job."""
    (job,) = by_kind(docs, "Job")
    template = job["spec"]["template"]
    spec = json.loads(json.dumps(template["spec"]))
    (container,) = spec["containers"]
    container["image"] = image
    container["imagePullPolicy"] = "Never"
    limits = container.get("resources", {}).get("limits", {})
    if "cpu" in limits and float(limits["cpu"]) > (os.cpu_count() or 1):
        limits["cpu"] = str(os.cpu_count())
    for volume in spec["volumes"]:
        if "persistentVolumeClaim" in volume:
            volume["persistentVolumeClaim"]["claimName"] = claim
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{job['metadata']['name']}-{claim}"}, "spec": spec}
    pod["metadata"]["labels"] = template["metadata"]["labels"]
    (config_map,) = by_kind(docs, "ConfigMap")
    (pvc,) = by_kind(docs, "PersistentVolumeClaim")
    pvc = {**pvc, "metadata": {**pvc["metadata"], "name": claim}}
    return [config_map, pvc, pod], job


@pytest.fixture(scope="module")
def played(image: str, overlay: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The Job's pod played to completion; its container's state, logs and the volume's folder."""
    claim = f"hubpipe-test-{uuid.uuid4().hex[:8]}"
    docs, job = job_as_pod(overlay, image, claim)
    play = tmp_path_factory.mktemp("kube") / "job-pod.yaml"
    play.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    pod_name = docs[-1]["metadata"]["name"]
    container_name = f"{pod_name}-{docs[-1]['spec']['containers'][0]['name']}"
    try:
        podman("kube", "play", "--network", "none", str(play))
        podman("wait", container_name, timeout=JOB_TIMEOUT_S)
        (state,) = json.loads(podman("container", "inspect", container_name).stdout)
        logs = podman("logs", container_name, check=False)
        volume = Path(podman("volume", "inspect", claim, "--format", "{{.Mountpoint}}").stdout.strip())
        copy = tmp_path_factory.mktemp("volume")
        shutil.copytree(volume, copy, dirs_exist_ok=True, symlinks=True)
        owners = {path.stat().st_uid for path in volume.rglob("*")}
        yield {"state": state, "logs": logs.stdout + logs.stderr, "volume": copy, "owners": owners, "job": job}
    finally:
        podman("kube", "down", str(play), check=False)
        podman("volume", "rm", "--force", claim, check=False)


def on_volume(played: dict, in_pod: str) -> Path:
    """A path the pod saw under the volume's mount, in the test's copy of the volume."""
    (mount,) = [
        m["mountPath"]
        for m in played["job"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        if m["name"] == "data"
    ]
    return played["volume"] / Path(in_pod).relative_to(mount)


def job_args(job: dict) -> dict[str, str]:
    """The Job's `hubpipe run` flags: --config and --output."""
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    return dict(zip(args[1::2], args[2::2], strict=True))


def test_the_job_container_succeeds_under_the_restricted_settings(played: dict) -> None:
    state = played["state"]
    assert state["State"]["ExitCode"] == 0, played["logs"][-3000:]
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    assert state["Config"]["User"].split(":")[0] == str(IMAGE_UID)
    mounts = {mount["Destination"]: mount for mount in state["Mounts"]}
    assert {"/mnt/hubpipe", "/etc/hubpipe"} <= set(mounts)
    assert mounts["/etc/hubpipe"]["RW"] is False


def test_the_run_folder_on_the_volume_holds_every_stage(played: dict) -> None:
    run_folder = on_volume(played, job_args(played["job"])["--output"])
    report = json.loads((run_folder / "run.json").read_text())
    assert report["status"] == "succeeded"
    assert [stage["name"] for stage in report["stages"]] == ["ingest", "validate", "train", "evaluate", "publish"]
    assert all(stage["status"] == "ran" for stage in report["stages"])
    assert (run_folder / "resolved_config.yaml").is_file()
    assert played["owners"] == {IMAGE_UID}  # everything on the volume written by the image's user


def test_the_job_publishes_to_the_volume_with_its_tensorboard_resource(played: dict, overlay: list[dict]) -> None:
    (config_map,) = by_kind(overlay, "ConfigMap")
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    published = played["volume"] / Path(config["publish"]["root"]).relative_to("/mnt/hubpipe")
    assert (published / "models" / "LATEST").is_file()
    version = (published / "models" / "LATEST").read_text().strip()
    assert (published / "models" / version / "serving" / "saved_model.pb").is_file()
    assert any((published / "tensorboard").rglob("events.out.tfevents.*"))
    run_folder = on_volume(played, job_args(played["job"])["--output"])
    assert "kind: Tensorboard" in (run_folder / "publish" / "tensorboard.yaml").read_text()
