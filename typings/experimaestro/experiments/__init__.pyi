# Partial stub of experimaestro.experiments: the installed __init__.py imports these names
# without re-exporting them (no ``__all__``), so pyright reports ``from experimaestro.experiments
# import configuration`` as a private import (reportPrivateImportUsage).
from experimaestro.experiments.cli import ExperimentHelper as ExperimentHelper
from experimaestro.experiments.configuration import ConfigurationBase as ConfigurationBase
from experimaestro.experiments.configuration import DirtyGitAction as DirtyGitAction
from experimaestro.experiments.configuration import configuration as configuration
from experimaestro.experiments.grid import GridSearch as GridSearch
from experimaestro.experiments.grid import generate_grid as generate_grid
from experimaestro.experiments.mockmodule import FakeModuleFinder as FakeModuleFinder
from experimaestro.experiments.mockmodule import mock_modules as mock_modules
from experimaestro.experiments.mockmodule import noop_decorator as noop_decorator
