"""Models: typed configurations and their flax.nnx implementations."""
