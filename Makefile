# Drawdown — two commands: `make demo` and `make test`.
# Each installs what it needs first (Debian packages), then builds.

SWIFT        ?= swift
APT_PACKAGES := librdkafka-dev libzstd-dev pkg-config
SWIFT_FLAGS  ?=

.PHONY: deps build release demo test bench clean

# Installs the C libraries when pkg-config cannot find them.
deps:
	@if pkg-config --exists rdkafka libzstd 2>/dev/null; then :; else \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "missing: $(APT_PACKAGES) (run as root, or: sudo apt-get install -y $(APT_PACKAGES))" >&2; exit 1; \
	  fi; \
	  echo "installing $(APT_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi
	@command -v $(SWIFT) >/dev/null || { echo "missing: a Swift 6.1+ toolchain on PATH" >&2; exit 1; }

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

release: deps
	$(SWIFT) build -c release $(SWIFT_FLAGS)

# The main job on the embedded default: a local dev broker and a local ledger.
demo: release
	.build/release/drawdown demo

# Every test: unit, property and end-to-end (the built binary against a real dev broker).
test: deps
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	$(SWIFT) test --skip-build $(SWIFT_FLAGS)

bench: deps
	cd benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark

clean:
	rm -rf .build benchmarks/.build
