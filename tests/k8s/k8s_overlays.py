"""The k8s/ overlays rendered with kustomize (kubectl's built-in, offline): shared by the manifest tests and the
container test that plays the rendered Job with podman."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

K8S = Path(__file__).resolve().parents[2] / "k8s"
OVERLAYS = ("cpu", "gpu")


def render(overlay: str) -> str:
    """The overlay ``k8s/overlays/<overlay>`` rendered as one multi-document YAML text."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render k8s/overlays"
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def documents(text: str) -> list[dict]:
    """The objects of a rendered text (empty documents left out)."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]
