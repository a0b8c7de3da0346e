"""Objectives: what each stage optimises (loss + what it needs besides the parameters)."""
