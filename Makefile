# The commands of the README: `make demo`, `make test` and `make test-fast`.
# Each sets up .venv (Python >= 3.10) and installs the project on first use;
# installing llama-cpp-python compiles llama.cpp (several minutes, once: pip caches the wheel).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast install man bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "git-model needs Python >= 3.10, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# a wheel puts the man pages in <venv>/share/man/man1, where `man` looks for a <venv>/bin on PATH;
	@# setuptools' editable wheels leave data files out, so link the committed pages there instead
	@mkdir -p $(VENV)/share/man && ln -sfn $(CURDIR)/man/man1 $(VENV)/share/man/man1
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# the tests not marked slow: no demo checkpoints, no llama.cpp runs
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# rewrite man/man1/ from the click commands (a test fails while a page is out of date)
man: $(STAMP)
	$(BIN)/python scripts/manpages.py

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_eval.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_history.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_rollback.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_gguf_fuzz.py

clean:
	rm -rf $(VENV) build .pytest_cache
