"""The xpm-train experiment: ``experimaestro run-experiment --workdir runs yaml/full.yaml``.

Every job comes from the YAML: ``stages:`` names the training stages, each choosing a registered
stage kind and its upstream stages (any graph, sweeps included); every checkpoint is evaluated on
the held-out part of every text dataset of the graph; a report gathers them (docs/yaml.md).
(No ``from __future__ import annotations`` here: experimaestro reads ``run``'s annotation as a
class, not as a string.)
"""

from typing import Any

import attrs
from experimaestro.experiments import ConfigurationBase, ExperimentHelper, configuration

from xpm_train.graph.run import run_experiment, validate_values
from xpm_train.launchers import LauncherSection
from xpm_train.planning.hook import checked_configuration


@configuration()
class Configuration(ConfigurationBase):
    stages: dict[str, Any] = attrs.field(factory=dict)
    """The training stages by name: ``{kind: <stage kind>, <its parameters>}``"""
    evaluation: dict[str, Any] = attrs.field(factory=dict)
    """Parameters of the evaluation of every stage's checkpoint"""
    launcher: LauncherSection = attrs.field(factory=LauncherSection)
    """Where the evaluation and report jobs run, and the default launcher (docs/slurm.md)"""
    code_changes: str = "reuse"
    """Jobs made by other xpm_train sources: ``reuse`` them (planning lists them) or ``rerun``
    (the sources' fingerprint joins every job's identity)"""

    validate_values = staticmethod(validate_values)


def run(helper: ExperimentHelper, cfg: Configuration) -> None:
    cfg = checked_configuration(cfg)
    run_experiment(
        helper, cfg.stages, cfg.evaluation, cfg.launcher, cfg.title or cfg.id, cfg.code_changes
    )
