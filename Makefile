PYTHON ?= python3

.PHONY: install test bench clean

install:
	$(PYTHON) -m pip install -e '.[dev]'

test:
	$(PYTHON) -m pytest -q

bench:
	$(PYTHON) -m clipstyler_opt bench

clean:
	rm -rf build dist *.egg-info .pytest_cache
