"""Data: tokenizers, datasets, packing into blocks and batch loading."""
