// The Models target; see ../../README.md and DESIGN.md.
