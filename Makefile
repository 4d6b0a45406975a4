# The two commands of the README: `make demo` and `make test` (the test suite, then the wheel smoke test).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test smoke install bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[test,fast,ray]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/psl demo

test: $(STAMP)
	$(PY) -m pytest -n 2 tests
	PYTHON=$(PYTHON) .ci/wheel-smoke

# build the wheel, install it into a fresh virtualenv and run psl from outside the repository
smoke:
	PYTHON=$(PYTHON) .ci/wheel-smoke

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
