// The ModelIO target; see ../../README.md and DESIGN.md.
