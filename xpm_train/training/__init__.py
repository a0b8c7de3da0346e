"""The training loop shared by every stage: mesh, state, objective, jitted step, checkpoints."""
