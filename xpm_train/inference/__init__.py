"""Using trained models: generation and sampling from a checkpoint."""
