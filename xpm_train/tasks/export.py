"""Export a stage's model as a Hugging Face folder, as a job of the experiment graph:
``stages: {hf_out: {kind: export, checkpoint: dpo}}`` (docs/hf.md)."""

from __future__ import annotations

from pathlib import Path

from experimaestro import Meta, Param, PathGenerator, Task, field

from xpm_train.registry import register
from xpm_train.tasks.checkpoint import Checkpoint
from xpm_train.tasks.versioned import Versioned
from xpm_train.training.processes import other_process


@register("stage", "export")
class Export(Versioned, Task):
    """Write a stage's final checkpoint as a Hugging Face model folder (config.json,
    model.safetensors, tokenizer files) that transformers loads."""

    checkpoint: Param[Checkpoint]
    """The model to export (in YAML: the name of a stage)"""
    folder: Meta[Path] = field(default_factory=PathGenerator("hf"))

    def __validate__(self) -> None:
        from xpm_train.export.model import exportable

        exportable(self.checkpoint.model)

    def planned_output(self) -> Export:
        return self

    def execute(self) -> None:
        self.record_code()
        if other_process():  # started once per SLURM task: the work is done once
            return
        from xpm_train.export.model import export_model

        folder = Path(self.folder)
        if folder.exists():  # a resubmitted job: the previous attempt's folder is replaced
            import shutil

            shutil.rmtree(folder)
        print(f"wrote a Hugging Face model to {export_model(self.checkpoint, folder)}", flush=True)
