"""The project image: size, cold build, source-only rebuild, and the containerized pipeline against the
subprocess one on the same tiny data, measured side by side in one run.

* cold build: `make image` in a copy of the project, with an empty podman storage of its own that holds only the
  base image (`make base-image` first), as on a fresh machine;
* rebuild: the same, with one source file changed (in the copy; the work tree is not touched), with the layer
  cache of the cold build: only the last layers rebuild. The image is then moved to podman's usual storage;
* pipelines: the tests' tiny pipeline through kfp.local's DockerRunner (one container per stage, over podman's
  Docker-compatible socket) and through its SubprocessRunner (one process per stage), alternated.

    python benchmarks/image.py [--skip-build] [--repeats N]
    # ends with: RESULT image_mb=... cold_build_s=... rebuild_s=... container_pipeline_s=... subprocess_pipeline_s=...
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "container"), str(REPO / "tests" / "kubeflow")]

from podman import docker_api_socket, docker_host, new_containers, podman, podman_env, umask  # noqa: E402
from tiny_pipeline import run_through_kfp, tiny_config  # noqa: E402

CONTEXT = (
    *("Makefile", "container", ".dockerignore", "Dockerfile"),
    *("setup.py", "constraints.txt", "README.md", "pipeline", "components", "data"),
)
CHANGED_SOURCE = "components/train/core.py"
BASE_IMAGE = "localhost/hubpipe-base:bookworm"  # the Makefile's default


def build(context: Path, tag: str, env: dict[str, str]) -> float:
    """`make image` in a copy of the project (the build CI and users run), with podman's ``env``."""
    started = time.perf_counter()
    subprocess.run(["make", "-C", str(context), "image", f"IMAGE={tag}"], check=True, timeout=3600, env=env)
    return time.perf_counter() - started


def transfer(tag: str, source: dict[str, str], destination: dict[str, str]) -> None:
    """Copies image ``tag`` from one podman storage to another (``podman save | podman load``)."""
    save = subprocess.Popen(["podman", "save", tag], stdout=subprocess.PIPE, env=source)
    subprocess.run(["podman", "load"], stdin=save.stdout, check=True, capture_output=True, env=destination)
    save.stdout.close()
    if save.wait() != 0:
        raise RuntimeError(f"podman save {tag} failed")


@contextlib.contextmanager
def empty_storage(folder: Path, base: str) -> Iterator[dict[str, str]]:
    """podman's environment for a storage of its own under ``folder`` that holds only ``base``."""
    folder.mkdir(parents=True)
    conf = folder / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{folder / "graph"}"\nrunroot = "{folder / "run"}"\n')
    env = {**podman_env(), "CONTAINERS_STORAGE_CONF": str(conf)}
    try:
        transfer(base, podman_env(), env)
        yield env
    finally:
        subprocess.run(["podman", "rmi", "--all", "--force"], env=env, capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def copy_context(dest: Path) -> None:
    dest.mkdir(parents=True)
    for name in CONTEXT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest / name)


def image_mb(tag: str) -> float:
    (inspected,) = json.loads(podman("image", "inspect", tag).stdout)
    return inspected["Size"] / 1e6


def pipeline_seconds(runner, root: Path, image: str) -> float:
    from hubpipe.pipeline.kubeflow.options import KubeflowOptions

    root.mkdir(parents=True)
    root.chmod(0o777)
    config = tiny_config(root, root / "published")
    started = time.perf_counter()
    with umask(0):
        run_through_kfp(runner, root, config, KubeflowOptions(image=image))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="localhost/hubpipe:bench")
    parser.add_argument("--skip-build", action="store_true", help="time the pipelines only (image must exist)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    from kfp import local

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hubpipe-image-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_build:
            copy_context(work / "context")
            with empty_storage(work / "storage", BASE_IMAGE) as fresh:
                figures["cold_build_s"] = build(work / "context", args.image, fresh)
                with (work / "context" / CHANGED_SOURCE).open("a") as changed:
                    changed.write("\n# a source-only change\n")
                figures["rebuild_s"] = build(work / "context", args.image, fresh)
                transfer(args.image, fresh, podman_env())
        figures["image_mb"] = image_mb(args.image)
        container, subprocess_ = [], []
        with new_containers(args.image), docker_api_socket() as url, docker_host(url):
            for repeat in range(args.repeats):
                container.append(pipeline_seconds(local.DockerRunner(), work / f"docker-{repeat}", args.image))
                runner = local.SubprocessRunner(use_venv=False)
                subprocess_.append(pipeline_seconds(runner, work / f"subprocess-{repeat}", args.image))
        figures["container_pipeline_s"] = min(container)
        figures["subprocess_pipeline_s"] = min(subprocess_)
    if "rebuild_s" in figures:
        figures["rebuild_ratio"] = figures["rebuild_s"] / figures["cold_build_s"]
    figures["container_vs_subprocess"] = figures["container_pipeline_s"] / figures["subprocess_pipeline_s"]
    print(
        "RESULT "
        + " ".join(f"{name}={value:.3f}" if value < 10 else f"{name}={value:.1f}" for name, value in figures.items())
    )


if __name__ == "__main__":
    main()
