"""podman for the container tests and benchmarks: the project's settings, the image, and the Docker-compatible
API socket that kfp.local's DockerRunner talks to."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: podman's settings for this kind of machine (see container/containers.conf), never /etc.
CONTAINERS_CONF = REPO / "container" / "containers.conf"
#: The image `make image` builds; HUBPIPE_IMAGE names another.
DEFAULT_IMAGE = "localhost/hubpipe:dev"
#: The non-root user the image runs as (Dockerfile, k8s/base/job.yaml).
IMAGE_UID = 10001


def image_name() -> str:
    return os.environ.get("HUBPIPE_IMAGE", DEFAULT_IMAGE)


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, check: bool = True, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
    """Runs podman with the project's settings; output captured as text."""
    return subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, check=check, timeout=timeout, **kwargs
    )


def missing_prerequisite() -> str | None:
    """Why the container tests cannot run here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed (make container-tools)"
    if podman("image", "exists", image_name(), check=False).returncode != 0:
        return f"image {image_name()} does not exist (make image)"
    return None


@contextlib.contextmanager
def docker_api_socket(timeout: float = 60) -> Iterator[str]:
    """``podman system service`` on a socket of its own for the duration; yields the DOCKER_HOST URL."""
    folder = Path(tempfile.mkdtemp(prefix="hubpipe-podman-"))
    socket = folder / "podman.sock"
    url = f"unix://{socket}"
    log = (folder / "service.log").open("w")
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", url], env=podman_env(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_for_api(url, service, timeout)
        yield url
    finally:
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_api(url: str, service: subprocess.Popen, timeout: float) -> None:
    import docker

    deadline = time.monotonic() + timeout
    while True:
        if service.poll() is not None:
            raise RuntimeError(f"podman system service exited with {service.returncode}")
        with contextlib.suppress(Exception):
            docker.DockerClient(base_url=url).ping()
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"podman's API did not answer on {url} within {timeout:.0f} s")
        time.sleep(0.3)


@contextlib.contextmanager
def docker_host(url: str) -> Iterator[None]:
    """DOCKER_HOST set for the docker SDK (kfp.local.DockerRunner calls docker.from_env())."""
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = url
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """kfp.local creates the run folders on the host with the process umask; the image's user must write there."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def run_in_image(args: Sequence[str], *options: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``podman run --rm [options] IMAGE args...``."""
    return podman("run", "--rm", *options, image_name(), *args, check=False, timeout=timeout)


@contextlib.contextmanager
def new_containers(image: str) -> Iterator[Callable[[], list[dict]]]:
    """Yields a lister of the image's containers made inside the block (kfp.local leaves them); removes them after."""
    import json

    def listed() -> list[dict]:
        found = podman("ps", "--all", "--filter", f"ancestor={image}", "--format", "json").stdout
        return json.loads(found or "[]")

    before = {entry["Id"] for entry in listed()}
    try:
        yield lambda: [entry for entry in listed() if entry["Id"] not in before]
    finally:
        made = [entry["Id"] for entry in listed() if entry["Id"] not in before]
        if made:
            podman("rm", "--force", *made, check=False)
