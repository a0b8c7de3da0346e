"""experimaestro tasks: the trainer stages and their checkpoint outputs."""
