# Partial stub of experimaestro.core.objects (see experimaestro/__init__.pyi): the same names as
# the package's __init__.py; the Config classes come from the stub of its ``config`` module.
from experimaestro.core.objects.config import Config as Config
from experimaestro.core.objects.config import ConfigInformation as ConfigInformation
from experimaestro.core.objects.config import ConfigMixin as ConfigMixin
from experimaestro.core.objects.config import DependentMarker as DependentMarker
from experimaestro.core.objects.config import InstanceConfig as InstanceConfig
from experimaestro.core.objects.config import LightweightTask as LightweightTask
from experimaestro.core.objects.config import Prepare as Prepare
from experimaestro.core.objects.config import ResumableTask as ResumableTask
from experimaestro.core.objects.config import Task as Task
from experimaestro.core.objects.config import TaskStub as TaskStub
from experimaestro.core.objects.config import WatchedOutput as WatchedOutput
from experimaestro.core.objects.config import cache as cache
from experimaestro.core.objects.config import copyconfig as copyconfig
from experimaestro.core.objects.config import logger as logger
from experimaestro.core.objects.config import sealed_set as sealed_set
from experimaestro.core.objects.config import setmeta as setmeta
from experimaestro.core.objects.config_utils import ConfigWrapper as ConfigWrapper
from experimaestro.core.objects.config_utils import ObjectStore as ObjectStore
from experimaestro.core.objects.config_utils import SealedError as SealedError
from experimaestro.core.objects.config_utils import TaggedValue as TaggedValue
from experimaestro.core.objects.config_utils import add_to_path as add_to_path
from experimaestro.core.objects.config_utils import getqualattr as getqualattr
from experimaestro.core.objects.config_walk import ConfigWalk as ConfigWalk
from experimaestro.core.objects.config_walk import ConfigWalkContext as ConfigWalkContext
