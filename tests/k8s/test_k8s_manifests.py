"""The k8s/ manifests: every overlay renders with kustomize and passes offline validation.

kubernetes-validate checks each object against the Kubernetes API schemas (strict: no unknown fields); it has
no schema for Kubeflow's ``Tensorboard`` custom resource, which is checked by hand here instead. checkov checks
the security posture (restricted pod security, RBAC, resources), and yamllint the sources.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from k8s_overlays import K8S, OVERLAYS, by_kind, documents, render

from hubpipe.pipeline.core.config import load_config

REPO = K8S.parent
KUBERNETES_VERSION = "1.28.0"
#: Kinds without a schema in kubernetes-validate (custom resources), validated by the tests below instead.
CUSTOM_KINDS = {"Tensorboard"}
#: checkov checks the manifests must pass: requests/limits, no latest tag, pull policy, no privileged or host
#: namespaces, non-default namespace, read-only root, no NET_RAW, pod and container security contexts,
#: seccomp, dropped capabilities, no token automount, high UID.
EXPECTED_PASSES = {
    "CKV_K8S_10", "CKV_K8S_11", "CKV_K8S_12", "CKV_K8S_13", "CKV_K8S_14", "CKV_K8S_15", "CKV_K8S_16",
    "CKV_K8S_17", "CKV_K8S_18", "CKV_K8S_19", "CKV_K8S_20", "CKV_K8S_21", "CKV_K8S_22", "CKV_K8S_23",
    "CKV_K8S_25", "CKV_K8S_28", "CKV_K8S_29", "CKV_K8S_30", "CKV_K8S_31", "CKV_K8S_37", "CKV_K8S_38",
    "CKV_K8S_40",
}  # fmt: skip
#: Skipped checks, each justified by a checkov.io/skip annotation in the manifest.
EXPECTED_SKIPS = {"CKV_K8S_43"}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, list]:
    text = render(request.param)
    path = tmp_path_factory.mktemp(f"k8s-{request.param}") / "rendered.yaml"
    path.write_text(text, encoding="utf-8")
    return request.param, path, documents(text)


def validate(doc: dict) -> None:
    """kubernetes-validate's strict check (no unknown fields)."""
    import kubernetes_validate

    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_every_object_is_valid_for_the_kubernetes_api(rendered) -> None:
    import kubernetes_validate

    _, _, docs = rendered
    without_schema = set()
    for doc in docs:
        try:
            validate(doc)
        except kubernetes_validate.SchemaNotFoundError:
            without_schema.add(doc["kind"])
    assert without_schema == CUSTOM_KINDS
    kinds = {doc["kind"] for doc in docs}
    assert {"ServiceAccount", "PersistentVolumeClaim", "Job", "ConfigMap", "NetworkPolicy"} <= kinds
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}  # hubpipe never calls the API


def test_hubpipe_pods_get_no_ingress_and_no_route_to_the_cloud_metadata_address(rendered) -> None:
    import ipaddress

    _, _, docs = rendered
    (policy,) = by_kind(docs, "NetworkPolicy")
    (job,) = by_kind(docs, "Job")
    selected = policy["spec"]["podSelector"]["matchLabels"]
    assert selected.items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy["spec"]
    metadata = [ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")]
    for rule in policy["spec"]["egress"]:
        assert rule.get("to"), "a rule without 'to' allows every destination"
        for peer in rule["to"]:
            block = peer["ipBlock"]
            excepted = [ipaddress.ip_network(cidr) for cidr in block.get("except", [])]
            for address in metadata:
                if address in ipaddress.ip_network(block["cidr"]):
                    assert any(address in network for network in excepted), (block, address)
    reachable = ipaddress.ip_address("8.8.8.8")
    assert any(
        reachable in ipaddress.ip_network(p["ipBlock"]["cidr"]) for r in policy["spec"]["egress"] for p in r["to"]
    )


def test_the_job_has_a_deadline(rendered) -> None:
    _, _, docs = rendered
    (job,) = by_kind(docs, "Job")
    assert 0 < job["spec"]["activeDeadlineSeconds"] <= 7 * 24 * 3600


def test_validation_catches_an_unknown_field() -> None:
    import kubernetes_validate

    job = by_kind(documents(render("cpu")), "Job")[0]
    job["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(job)


def test_pods_run_at_the_restricted_level(rendered) -> None:
    _, _, docs = rendered
    (job,) = by_kind(docs, "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]
        assert "persistentVolumeClaim" in volumes[mounts["/mnt/hubpipe"]]


def test_the_gpu_overlay_asks_for_a_gpu_and_the_cpu_overlay_does_not(rendered) -> None:
    overlay, _, docs = rendered
    (job,) = by_kind(docs, "Job")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    gpus = container["resources"]["limits"].get("nvidia.com/gpu")
    tolerations = pod.get("tolerations", [])
    if overlay == "gpu":
        assert gpus == "1"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
        assert container["image"] == "ghcr.io/hubpipe/hubpipe:0.1.0"
    else:
        assert gpus is None and not tolerations
        assert container["image"] == "ghcr.io/hubpipe/hubpipe:0.1.0-cpu"


def test_the_job_config_is_valid_and_matches_the_tensorboard(rendered, tmp_path: Path) -> None:
    _, _, docs = rendered
    (config_map,) = by_kind(docs, "ConfigMap")
    (job,) = by_kind(docs, "Job")
    (tensorboard,) = by_kind(docs, "Tensorboard")
    (pvc,) = by_kind(docs, "PersistentVolumeClaim")
    pod = job["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert "/etc/hubpipe/config.yaml" in pod["containers"][0]["args"]
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_map["data"]["config.yaml"], encoding="utf-8")
    config = load_config(config_file)
    assert config.train.backbones == ("efficientnet_lite0",)
    assert config.publish.root.startswith("/mnt/hubpipe/")
    assert config.publish.pvc_name == pvc["metadata"]["name"]
    assert config.publish.namespace == tensorboard["metadata"]["namespace"] == job["metadata"]["namespace"]
    assert tensorboard["apiVersion"] == "tensorboard.kubeflow.org/v1alpha1"
    assert tensorboard["spec"]["logspath"] == f"pvc://{config.publish.pvc_name}/{config.publish.pvc_path}"


def checkov_command() -> list[str] | None:
    """checkov from $HUBPIPE_CHECKOV, the lint-tools environment (.venv-tools, `make setup`) or PATH.

    checkov runs in its own environment: its pins conflict with the TensorFlow stack (constraints-tools.txt).
    """
    for candidate in (os.environ.get("HUBPIPE_CHECKOV"), str(REPO / ".venv-tools" / "bin" / "checkov")):
        if candidate and Path(candidate).is_file():
            return [candidate]
    found = shutil.which("checkov")
    return [found] if found else None


def test_checkov_passes_the_pinned_checks(rendered, missing_tool) -> None:
    overlay, path, _ = rendered
    command = checkov_command()
    if command is None:
        missing_tool("checkov not found: run `make setup` (it builds .venv-tools) or set HUBPIPE_CHECKOV")
    result = subprocess.run(
        [*command, "-f", str(path), "--framework", "kubernetes", "-o", "json", "--skip-download"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    results = (report if isinstance(report, dict) else report[0])["results"]
    failed = [(row["check_id"], row["resource"]) for row in results["failed_checks"]]
    assert failed == [], f"{overlay}: {failed}"
    passed = {row["check_id"] for row in results["passed_checks"]}
    assert passed >= EXPECTED_PASSES, sorted(EXPECTED_PASSES - passed)
    assert {row["check_id"] for row in results["skipped_checks"]} == EXPECTED_SKIPS


def test_yamllint_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-c", str(K8S / ".yamllint"), str(K8S)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
