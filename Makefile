# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs from the registries.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sknngp-installed
NT_VENV ?= .nt-venv
SKNTK_VENV ?= .skntk-venv
PYTEST_WORKERS ?= 2

.PHONY: demo demo-kernels test test-slow docs bench bench-fit bench-finite gpu-check nt-reference clean

$(STAMP): pyproject.toml constraints-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints-dev.txt -e ".[torch,dask,dev,docs]"
	touch $(STAMP)

# The paper's comparisons on digits (sized for < 10 minutes on 2 cores).
demo: $(STAMP)
	$(PY) -m sknngp study --preset demo --out study_out
	@echo "Report: study_out/report.md (table: study_out/results.md, plots: study_out/*.png)"

# NNGP / NTK accuracy and kernel time per architecture, in a minute or two.
demo-kernels: $(STAMP)
	$(PY) examples/demo_kernels.py

test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -q

# Documentation (Sphinx + numpydoc + sphinx-gallery); warnings are errors.
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "Docs: docs/_build/html/index.html"

test-slow: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -q -m slow

# The neural-tangents oracle lives in its own venv: it does not import on current JAX.
$(NT_VENV)/.installed:
	test -x $(NT_VENV)/bin/python || $(PYTHON) -m venv $(NT_VENV)
	$(NT_VENV)/bin/python -m pip install -q --upgrade pip
	$(NT_VENV)/bin/python -m pip install -q neural-tangents==0.6.5 jax==0.5.3 jaxlib==0.5.3 tf2jax==0.3.6
	touch $@

nt-reference: $(NT_VENV)/.installed
	$(NT_VENV)/bin/python tests/reference/make_nt_reference.py

bench: $(STAMP) $(NT_VENV)/.installed
	$(PY) benchmarks/bench_kernels.py --nt-python $(NT_VENV)/bin/python

# The fit-cost benchmark's peer, scikit-ntk, in its own venv.
$(SKNTK_VENV)/.installed:
	test -x $(SKNTK_VENV)/bin/python || $(PYTHON) -m venv $(SKNTK_VENV)
	$(SKNTK_VENV)/bin/python -m pip install -q --upgrade pip
	$(SKNTK_VENV)/bin/python -m pip install -q scikit-ntk==1.2.1
	touch $@

# Estimator fit/predict cost against its floor and against scikit-ntk.
# Finite networks with default parameters on digits and Fashion-MNIST (a few minutes).
bench-finite: $(STAMP)
	$(PY) benchmarks/bench_finite.py

bench-fit: $(STAMP) $(SKNTK_VENV)/.installed
	$(PY) benchmarks/bench_fit.py --skntk-python $(SKNTK_VENV)/bin/python

# On a GPU machine: GPU tests, kernel throughput, n=20,000 fits, a finite epoch (~8 min).
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) $(NT_VENV) $(SKNTK_VENV) .pytest_cache
