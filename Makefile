# Two entry points for a fresh machine: `make run` and `make test` set up the virtual environment when needed
# (pinned install from constraints.txt), then run the pipeline on the embedded sample dataset, or the tests.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hubpipe-installed
PYTEST_ARGS ?=

.PHONY: setup run test lint format lock clean

setup: $(STAMP)

$(STAMP): setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: setup
	$(BIN)/hubpipe run

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-resolve the complete pin set (needs uv: pip install uv). Commit the result.
lock:
	uv pip compile setup.py --extra test --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--no-header --no-annotate -o constraints.body.txt
	{ head -n 2 constraints.txt; cat constraints.body.txt; } > constraints.new && mv constraints.new constraints.txt
	rm -f constraints.body.txt

clean:
	rm -rf hubpipe-output build *.egg-info .pytest_cache .ruff_cache
