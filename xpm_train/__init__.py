"""xpm-train: typed, cached, resumable JAX language-model training on experimaestro.

Importing this package is cheap: jax, flax, optax and orbax are only imported by the modules that
run inside jobs (the model implementation, the training loop), never by the Config classes that an
experiment builds while planning.
"""

__version__ = "0.1.0"
