PYTHON ?= python3

.PHONY: install browser test bench clean

# The Python package with its extras (siglip, video, lpips) and dev tools (pytest, Playwright), and
# Chromium for the browser tests.
install: browser
	$(PYTHON) -m pip install -q -e '.[dev,siglip,video,lpips]'

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

test:
	$(PYTHON) -m pytest -q

bench:
	$(PYTHON) -m clipstyler_opt bench

clean:
	rm -rf build dist *.egg-info .pytest_cache
