# The two commands of the README: `make demo` (set up, build, run the main job) and `make test`.
SWIFT ?= swift
RELEASE_FLAGS = -c release
TEST_FLAGS = -c release -Xswiftc -enable-testing

# OpenBLAS falls back to generic kernels on CPUs newer than itself; pick the right family for the test
# process (the cogflow binary does the same by itself). See Sources/Tensor/BLASCore.swift.
BLAS_CORE := $(shell bash scripts/blas-core.sh)
ifneq ($(BLAS_CORE),)
ifeq ($(origin OPENBLAS_CORETYPE),undefined)
export OPENBLAS_CORETYPE := $(BLAS_CORE)
endif
endif

.PHONY: demo test build setup

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build $(RELEASE_FLAGS)

demo: build
	$(SWIFT) run $(RELEASE_FLAGS) cogflow bench kernels

test: setup
	$(SWIFT) test $(TEST_FLAGS)
