# Two entry points for a fresh machine: `make run` and `make test` set up the virtual environment when needed
# (pinned install from constraints.txt), then run the pipeline on the embedded sample dataset, or the tests.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hubpipe-installed
TOOLS_VENV ?= .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.tools-installed
PYTEST_ARGS ?=

.PHONY: setup run test lint format lock clean container-tools base-image image test-containers

setup: $(STAMP) $(TOOLS_STAMP)

$(STAMP): setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -c constraints.txt -e '.[test,mlflow]'
	touch $(STAMP)

# checkov (manifest security checks in the tests) has pins that conflict with the TensorFlow stack: own venv.
$(TOOLS_STAMP): constraints-tools.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --disable-pip-version-check -c constraints-tools.txt checkov
	touch $(TOOLS_STAMP)

run: $(STAMP)
	$(BIN)/hubpipe run

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Containers, with Debian's podman and no registry: a Debian 12 base bootstrapped from Debian's packages, then the
# project image on it. podman's settings for this kind of machine are the project's file container/containers.conf.
IMAGE ?= localhost/hubpipe:dev
BASE_IMAGE ?= localhost/hubpipe-base:bookworm
PODMAN := CONTAINERS_CONF=$(CURDIR)/container/containers.conf podman
# pip inside the build needs the host's network and, behind a proxy with its own certificate, the host's CA bundle.
HOST_CA ?= $(or $(PIP_CERT),$(shell $(PYTHON) -m pip config list 2>/dev/null | sed -n "s/^global.cert='\(.*\)'$$/\1/p" | head -n 1),/etc/ssl/certs/ca-certificates.crt)
CA_MOUNT := $(if $(wildcard $(HOST_CA)),-v $(HOST_CA):/run/hubpipe-build/ca.crt:ro --build-arg PIP_CA_BUNDLE=/run/hubpipe-build/ca.crt)
IMAGE_BUILD_ARGS ?=

container-tools:
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null || { \
	  echo "installing podman, runc and debootstrap from Debian's packages"; \
	  { [ -n "$$APT_UPDATED" ] || apt-get update -qq; } && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null; }

base-image: container-tools
	container/base-image.sh $(BASE_IMAGE)

image: base-image
	$(PODMAN) build --format docker --network=host $(CA_MOUNT) --build-arg BASE_IMAGE=$(BASE_IMAGE) $(IMAGE_BUILD_ARGS) -t $(IMAGE) .

# The container tests (tests/container): the whole pipeline through kfp.local's DockerRunner over podman's socket,
# the Kubernetes Job's pod played with `podman kube play`, and the image's entry point. They need `make image`.
test-containers: $(STAMP)
	HUBPIPE_IMAGE=$(IMAGE) $(BIN)/python -m pytest -m container tests/container $(PYTEST_ARGS)

# ruff, then the layer contracts of .importlinter (import-linter over a view of the package as installed).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/lint_imports.py

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-resolve the complete pin sets (needs uv: pip install uv). Commit the result.
UV_COMPILE := uv pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header --no-annotate
lock:
	$(UV_COMPILE) setup.py --extra test --extra mlflow -o constraints.body.txt
	{ head -n 2 constraints.txt; cat constraints.body.txt; } > constraints.new && mv constraints.new constraints.txt
	echo checkov | $(UV_COMPILE) - -o constraints.body.txt
	{ head -n 2 constraints-tools.txt; cat constraints.body.txt; } > constraints.new && mv constraints.new constraints-tools.txt
	rm -f constraints.body.txt

clean:
	rm -rf hubpipe-output build *.egg-info .pytest_cache .ruff_cache
