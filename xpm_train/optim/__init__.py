"""Optimisation: optimizers and learning-rate schedules."""
