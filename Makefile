# The two commands of the README, plus helpers. Each target does its own set-up.
#   make book   build the HTML book, executing every chapter at quick scale (the main job)
#   make test   run every test: unit tests, every chapter under nbval, the claims registry
#   make lab    open the chapters in JupyterLab
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.linattn-installed
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: book test lab install vendor clean bench reproduce

install: $(STAMP)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: an open range would pull a multi-GB CUDA build on a CPU machine
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[book,test]"
	touch $(STAMP)

vendor: _vendor/.vendored-v2
_vendor/.vendored-v2: scripts/vendor_js.sh
	bash scripts/vendor_js.sh

book: install vendor
	# jupyter-book with kernel replies polled in 1 s slices: a missed wake-up stalled about 1 execution in 12 (issue 16)
	# LINATTN_CHECK_FIGURES=1: a cell that draws an axis without a label fails (linattn.figures)
	LINATTN_CHECK_FIGURES=1 $(BIN)/python scripts/nbclient_wakeup.py build . --keep-going -W
	@echo "open _build/html/index.html; check it: make check-pages"

# every page of the built book in headless Chromium with the network cut (needs Debian's chromium):
# console errors, requests off the machine, clipped tables/equations/code, shrunk figures, dead widgets
.PHONY: check-pages
check-pages: install
	$(BIN)/python -m linattn.pagecheck _build/html --screenshots _build/screenshots --json _build/pagecheck.json

test: install
	$(BIN)/python -m pytest -ra

lab: install
	$(BIN)/jupyter lab book/

bench: install
	$(BIN)/python benchmarks/bench_ntk.py
	$(BIN)/python benchmarks/bench_influence.py

# every chapter's student notebook, instructor notebook and grading spec, and a student copy of the book
# (book/teaching.md); executes each chapter once
.PHONY: assignments
assignments: install
	$(BIN)/linattn assign --out _build/assignments --book-dir _build/assignments/student-book

clean:
	rm -rf _build
