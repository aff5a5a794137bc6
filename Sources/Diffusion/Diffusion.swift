// The Diffusion target; see ../../README.md and DESIGN.md.
