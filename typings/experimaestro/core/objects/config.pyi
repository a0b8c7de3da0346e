# Partial stub of experimaestro.core.objects.config for pyright (see docs/typing.md).
#
# At run time ``Cls.C`` is a classproperty returning a generated subclass of ``Cls`` whose
# __init__ takes the Params and Metas (over the whole MRO) as keyword arguments. Here Config is
# a dataclass_transform base: pyright synthesizes that keyword-only __init__ for every subclass
# from its annotated fields, with ``field`` (experimaestro.core.arguments) as field specifier,
# and ``C`` / ``XPMConfig`` are descriptors giving back the class itself. The methods of the
# configuration objects (submit, tag, instance, ...; ConfigMixin at run time) are on Config.
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, overload

from _typeshed import Incomplete
from experimaestro.core.arguments import field
from experimaestro.core.identifier import Identifier
from experimaestro.core.objects.config_utils import ObjectStore
from experimaestro.core.objects.config_walk import ConfigWalkContext
from experimaestro.core.types import ObjectType
from typing_extensions import Self, dataclass_transform

_T = TypeVar("_T")
_C = TypeVar("_C", bound=Config)
_R = TypeVar("_R")
_R_co = TypeVar("_R_co", covariant=True)

logger: logging.Logger
DependentMarker = Callable[[Config], None]

class _ConfigClass:
    """``Cls.C``: the class of the configuration objects of ``Cls`` (typed as ``Cls``)."""

    def __get__(self, instance: object, owner: type[_C]) -> type[_C]: ...

class _WithOutputs(Protocol[_R_co]):
    """A task with a ``task_outputs`` method: ``submit()`` returns what it returns."""

    def task_outputs(self, dep: Callable[[Any], Any], /) -> _R_co: ...

class ConfigInformation:
    """The experimaestro information of a configuration object (``config.__xpm__``)."""

    def __getattr__(self, name: str) -> Incomplete: ...

class WatchedOutput:
    def __getattr__(self, name: str) -> Incomplete: ...

class TaskStub:
    identifier: Identifier
    typename: str

class _ConfigObject:
    """What a configuration object (``Cls.C(...)``) has besides its parameters."""

    __xpm__: ConfigInformation
    def tag(self, name: str, value: Any) -> Self: ...
    def tags(self) -> dict[str, Any]: ...
    def seal(self) -> Self: ...
    def add_dependencies(self, *dependencies: Any) -> Self: ...
    def instance(
        self,
        context: ConfigWalkContext | None = None,
        *,
        objects: ObjectStore | None = None,
        keep: bool = True,
    ) -> Self: ...
    @overload
    def submit(
        self: _WithOutputs[_R],
        *,
        workspace: Any = None,
        launcher: Any = None,
        run_mode: Any = None,
        init_tasks: list[LightweightTask] = ...,
        max_retries: int | None = None,
        transient: Any = None,
    ) -> _R: ...
    @overload
    def submit(
        self,
        *,
        workspace: Any = None,
        launcher: Any = None,
        run_mode: Any = None,
        init_tasks: list[LightweightTask] = ...,
        max_retries: int | None = None,
        transient: Any = None,
    ) -> Self: ...
    def stdout(self) -> Path: ...
    def stderr(self) -> Path: ...
    def wait(self) -> Any: ...
    @property
    def job(self) -> Any: ...
    @property
    def jobpath(self) -> Path: ...
    def copy(self) -> Self: ...
    def copy_dependencies(self, other: _ConfigObject) -> None: ...
    def to_str(self, max_depth: int = 3, _visited: set[int] | None = None) -> str: ...
    def __arguments__(self) -> dict[str, Any]: ...
    def __identifier__(self) -> Identifier: ...
    def __json__(self) -> Any: ...
    def __validate__(self) -> None: ...
    def __rmatmul__(self, other: Any) -> Any: ...

class ConfigMixin(_ConfigObject):
    """The base of the generated configuration classes (``Cls.C`` at run time)."""

    __xpmtype__: ClassVar[ObjectType]

@dataclass_transform(kw_only_default=True, eq_default=False, field_specifiers=(field,))
class Config(_ConfigObject):
    """Base type for all objects in python interface"""

    __xpmid__: ClassVar[str | None]
    __xpmtype__: ClassVar[ObjectType]
    C: ClassVar[_ConfigClass]
    XPMConfig: ClassVar[_ConfigClass]
    XPMValue: ClassVar[_ConfigClass]
    @property
    def xpmconfig(self) -> Self: ...
    @classmethod
    def value_class(cls) -> Callable[[type[_T]], type[_T]]: ...
    @classmethod
    def __getxpmtype__(cls) -> ObjectType: ...
    def __post_init__(self) -> None: ...
    def __xpm_serialize__(self, context: Any) -> dict[str, Any]: ...
    def __xpm_output_valid__(self) -> bool | None: ...
    def register_task_output(
        self, method: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> None: ...

class InstanceConfig(Config): ...

class Prepare(Config):
    def prepare(self, *args: Any, **kwargs: Any) -> None: ...
    def is_prepared(self) -> bool: ...

class LightweightTask(Config):
    def execute(self) -> Any: ...

class Task(LightweightTask):
    __tags__: ClassVar[dict[str, str]]
    def watch_output(self, method: Callable[..., Any], callback: Callable[..., Any]) -> None: ...
    def on_completed(self, callback: Callable[[], None]) -> None: ...

class ResumableTask(Task):
    def remaining_time(self) -> float | None: ...

def copyconfig(config: _C, **kwargs: Any) -> _C: ...
def setmeta(config: _C, flag: bool) -> _C: ...
def sealed_set(*elements: Config) -> set[Config]: ...
def cache(fn: Callable[..., Any], name: str) -> Callable[..., Any]: ...
def __getattr__(name: str) -> Incomplete: ...
