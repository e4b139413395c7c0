# Two entry points for a fresh machine: `make run` and `make test` set up the virtual environment when needed
# (pinned install from constraints.txt), then run the pipeline on the embedded sample dataset, or the tests.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hubpipe-installed
TOOLS_VENV ?= .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.tools-installed
PYTEST_ARGS ?=

.PHONY: setup run test lint format lock clean

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

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

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
