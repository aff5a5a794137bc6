// The Workflow target; see ../../README.md and DESIGN.md.
