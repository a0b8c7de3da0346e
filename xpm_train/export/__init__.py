"""Export of trained components to Hugging Face files."""
