"""Experiment reports: tables and plots gathered from the jobs of an experiment."""
