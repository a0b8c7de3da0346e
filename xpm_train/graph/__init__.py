"""Experiment graphs from YAML: named stages, their upstream checkpoints, sweeps (docs/yaml.md)."""
