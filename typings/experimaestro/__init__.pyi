# Partial stub of experimaestro 2.7 for pyright (see docs/typing.md): the same names as the
# package's __init__.py, with Config, Task, ... and field() taken from the stubs of
# experimaestro.core.objects.config and experimaestro.core.arguments, where they are declared
# with typing.dataclass_transform so that ``SomeTask.C(...)`` is checked like a dataclass
# constructor. Everything else is re-exported from the installed modules.
from pathlib import Path as Path
from typing import Annotated as Annotated
from typing import TypeVar

from _typeshed import Incomplete
from experimaestro.actions import Action as Action
from experimaestro.actions import CLIInteraction as CLIInteraction
from experimaestro.actions import Interaction as Interaction
from experimaestro.annotations import STDERR as STDERR
from experimaestro.annotations import STDOUT as STDOUT
from experimaestro.annotations import Array as Array
from experimaestro.annotations import TagDict as TagDict
from experimaestro.annotations import cache as cache
from experimaestro.annotations import config_only as config_only
from experimaestro.annotations import deprecate as deprecate
from experimaestro.annotations import initializer as initializer
from experimaestro.annotations import tags as tags
from experimaestro.annotations import tagspath as tagspath
from experimaestro.checkers import Choices as Choices
from experimaestro.core.arguments import Constant as Constant
from experimaestro.core.arguments import DataPath as DataPath
from experimaestro.core.arguments import Meta as Meta
from experimaestro.core.arguments import Option as Option
from experimaestro.core.arguments import OptionalDataPath as OptionalDataPath
from experimaestro.core.arguments import Param as Param
from experimaestro.core.arguments import field as field
from experimaestro.core.arguments import help as help
from experimaestro.core.context import SerializationContext as SerializationContext
from experimaestro.core.objects import Config as Config
from experimaestro.core.objects import DependentMarker as DependentMarker
from experimaestro.core.objects import InstanceConfig as InstanceConfig
from experimaestro.core.objects import LightweightTask as LightweightTask
from experimaestro.core.objects import ObjectStore as ObjectStore
from experimaestro.core.objects import Prepare as Prepare
from experimaestro.core.objects import ResumableTask as ResumableTask
from experimaestro.core.objects import Task as Task
from experimaestro.core.objects import copyconfig as copyconfig
from experimaestro.core.objects import sealed_set as sealed_set
from experimaestro.core.objects import setmeta as setmeta
from experimaestro.core.partial import ParameterGroup as ParameterGroup
from experimaestro.core.partial import Partial as Partial
from experimaestro.core.partial import param_group as param_group
from experimaestro.core.partial import partial as partial
from experimaestro.core.serialization import ExperimentInfo as ExperimentInfo
from experimaestro.core.serialization import deserialize as deserialize
from experimaestro.core.serialization import from_state_dict as from_state_dict
from experimaestro.core.serialization import from_task_dir as from_task_dir
from experimaestro.core.serialization import load as load
from experimaestro.core.serialization import load_configs as load_configs
from experimaestro.core.serialization import load_xp_info as load_xp_info
from experimaestro.core.serialization import save as save
from experimaestro.core.serialization import serialize as serialize
from experimaestro.core.serialization import state_dict as state_dict
from experimaestro.core.serializers import PathSerializationLWTask as PathSerializationLWTask
from experimaestro.core.serializers import SerializationLWTask as SerializationLWTask
from experimaestro.core.types import Any as Any
from experimaestro.core.types import Identifier as Identifier
from experimaestro.core.types import SubmitHook as SubmitHook
from experimaestro.exceptions import GracefulTimeout as GracefulTimeout
from experimaestro.exceptions import TaskCancelled as TaskCancelled
from experimaestro.experiments.configuration import DirtyGitAction as DirtyGitAction
from experimaestro.generators import PathGenerator as PathGenerator
from experimaestro.generators import pathgenerator as pathgenerator
from experimaestro.launcherfinder.registry import LauncherRegistry as LauncherRegistry
from experimaestro.launchers import Launcher as Launcher
from experimaestro.mkdocs.annotations import documentation as documentation
from experimaestro.notifications import progress as progress
from experimaestro.notifications import tqdm as tqdm
from experimaestro.scheduler import DirtyGitError as DirtyGitError
from experimaestro.scheduler import FailedExperiment as FailedExperiment
from experimaestro.scheduler import GracefulExperimentExit as GracefulExperimentExit
from experimaestro.scheduler import Scheduler as Scheduler
from experimaestro.scheduler import experiment as experiment
from experimaestro.scheduler.base import Job as Job
from experimaestro.scheduler.transient import TransientMode as TransientMode
from experimaestro.scheduler.workspace import RunMode as RunMode
from experimaestro.scheduler.workspace import Workspace as Workspace
from experimaestro.xpmutils import DirectoryContext as DirectoryContext

__version__: str
set_launcher = Workspace.set_launcher

_Value = TypeVar("_Value")

# tag() and stop_tags() wrap the value they are given for the Config that receives it: typed
# as the value, so that ``Evaluate.C(checkpoint=stop_tags(checkpoint))`` stays checked.
def tag(value: _Value) -> _Value: ...
def stop_tags(value: _Value) -> _Value: ...
def __getattr__(name: str) -> Incomplete: ...
