# Partial stub of experimaestro.core.arguments (see experimaestro/__init__.pyi): ``field`` is the
# field specifier of the dataclass_transform on Config, with overloads that tell pyright which
# fields have a default and which are generated (``default_factory=PathGenerator(...)``, read-only
# at run time: not an argument of the constructor).
from collections.abc import Callable
from pathlib import Path
from typing import Annotated as Annotated
from typing import Any, Literal, TypeAlias, TypeVar, overload

from _typeshed import Incomplete
from experimaestro.core.partial import ParameterGroup
from experimaestro.generators import Generator

_T = TypeVar("_T")

class TypeAnnotation:
    def __call__(self, options: ArgumentOptions | None) -> ArgumentOptions: ...
    def annotate(self, options: ArgumentOptions) -> None: ...

class _Param(TypeAnnotation):
    def __init__(self, **kwargs: Any) -> None: ...

class ConstantHint(TypeAnnotation): ...

class help(TypeAnnotation):
    def __init__(self, text: str) -> None: ...

class ArgumentOptions:
    kwargs: dict[str, Any]
    def create(self, name: str, originaltype: Any, typehint: Any) -> Argument: ...

class Argument:
    name: str
    type: Incomplete
    required: bool
    ignored: bool
    constant: bool
    is_data: bool
    generator: Incomplete
    default: Incomplete
    help: str | None
    def __getattr__(self, name: str) -> Incomplete: ...

paramHint: _Param
optionHint: _Param
dataHint: _Param
constantHint: ConstantHint

Param: TypeAlias = Annotated[_T, "experimaestro.Param"]
Option: TypeAlias = Annotated[_T, "experimaestro.Option"]
Meta: TypeAlias = Annotated[_T, "experimaestro.Meta"]
Constant: TypeAlias = Annotated[_T, "experimaestro.Constant"]
DataPath: TypeAlias = Annotated[Path, "experimaestro.DataPath"]
OptionalDataPath: TypeAlias = Annotated[Path | None, "experimaestro.DataPath"]

# The ``init`` parameter does not exist at run time: the first overload's Literal[False] default
# is how PEP 681 lets a field specifier say that the field is not an argument of __init__.
@overload
def field(
    *,
    default_factory: Generator,
    ignore_default: bool | None = None,
    ignore_generated: bool = False,
    overrides: bool = False,
    groups: list[ParameterGroup] | None = None,
    init: Literal[False] = False,
) -> Any: ...
@overload
def field(
    *,
    default: _T,
    ignore_default: bool | None = None,
    ignore_generated: bool = False,
    overrides: bool = False,
    groups: list[ParameterGroup] | None = None,
) -> _T: ...
@overload
def field(
    *,
    default_factory: Callable[[], _T],
    ignore_default: bool | None = None,
    ignore_generated: bool = False,
    overrides: bool = False,
    groups: list[ParameterGroup] | None = None,
) -> _T: ...
@overload
def field(
    *,
    ignore_default: Any = None,
    ignore_generated: bool = False,
    overrides: bool = False,
    groups: list[ParameterGroup] | None = None,
) -> Any: ...
def __getattr__(name: str) -> Incomplete: ...
