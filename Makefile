# Shortcuts for the README's two commands (scripts/demo.sh and scripts/test.sh do the work, so a machine
# without make needs nothing more).
.PHONY: demo test build setup

setup:
	@bash scripts/setup.sh

build: setup
	swift build -c release

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh
