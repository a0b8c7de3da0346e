"""Where training jobs send their metrics besides ``metrics.jsonl``: logger components
(``none``, ``wandb``), the per-job tracking session, and a reader of offline wandb runs."""
