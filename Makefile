# The two commands of the README: `make demo` (set up, build, run the main job) and `make test`.
SWIFT ?= swift
RELEASE_FLAGS = -c release
TEST_FLAGS = -c release -Xswiftc -enable-testing

.PHONY: demo test build setup

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build $(RELEASE_FLAGS)

demo: build
	$(SWIFT) run $(RELEASE_FLAGS) cogflow bench kernels

test: setup
	$(SWIFT) test $(TEST_FLAGS)
