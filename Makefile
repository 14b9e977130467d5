PYTHON ?= python3

.PHONY: install browser lint test bench clean

# The Python package with its extras (siglip, video, lpips, studio, fid) and dev tools (pytest, Playwright), and
# Chromium for the browser tests. ArtFID's authors' package, art-fid, declares numpy<2 but runs on numpy 2:
# it is installed without its dependencies (the fid extra carries the others); pip may then report the
# unmet numpy<2 pin.
install: browser
	$(PYTHON) -m pip install -q -e '.[dev,siglip,video,lpips,studio,fid]'
	$(PYTHON) -m pip install -q --no-deps 'art-fid==0.0.2'

# Playwright drives the system Chromium (its own browser download needs the internet).
# As root on Debian/Ubuntu it is installed with apt-get; otherwise this says what to install.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium with apt-get (for the browser tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
			|| { echo "error: apt-get install chromium failed" >&2; exit 1; }; \
	else \
		echo "note: the browser tests need Chromium; install it with: sudo apt-get install chromium" \
			"(Debian/Ubuntu), or put a 'chromium' executable on PATH. They are skipped without it" \
			"(and fail under CI=true)."; \
	fi

# ruff (style and common bugs) and mypy (types), configured in pyproject.toml; mypy keeps its
# cache in .mypy_cache, so a second run takes seconds.
lint:
	$(PYTHON) -m ruff check clipstyler_opt tests examples
	$(PYTHON) -m mypy

# Lint first, then the tests and the package's doctests.
test: lint
	$(PYTHON) -m pytest -q

bench:
	$(PYTHON) -m clipstyler_opt bench

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
