"""Planning an experiment: strict configuration, checks before submission, job outcomes."""
