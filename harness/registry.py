"""Name -> class registries, filled by importing every module of a package.

Adding an encoder, strategy or dataset is one module (decorated with `@REGISTRY.register`)
plus one config file; nothing else needs to list it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownChoiceError(ValueError):
    """A name that is not registered; the message names the valid choices."""


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str, modules: tuple[str, ...] = (),
                 folders: tuple[tuple[str, str], ...] = ()) -> None:
        """`package`: every public module (and folder) in it registers itself; `modules`: more
        modules elsewhere; `folders`: (package, module) pairs: that module of every folder of that
        package, if it has one (each benchmark folder's `data`, harness/benchmarks/)."""
        self.kind = kind
        self.package = package
        self.modules = modules
        self.folders = folders
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if isinstance(obj, type):
                obj.name = name  # type: ignore[attr-defined]  # the registered name is the class's name, said once
            self._items[name] = obj
            return obj

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        for module in self.modules:
            importlib.import_module(module)
        for package, module in self.folders:
            outer = importlib.import_module(package)
            for info in pkgutil.iter_modules(outer.__path__):
                if info.ispkg and not info.name.startswith("_"):
                    name = f"{package}.{info.name}.{module}"
                    if importlib.util.find_spec(name) is not None:
                        importlib.import_module(name)
        self._loaded = True

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def get(self, name: str) -> T:
        self._load()
        if name not in self._items:
            raise UnknownChoiceError(
                f"unknown {self.kind} {name!r}; valid choices: {', '.join(self.names())}"
            )
        return self._items[name]


def keyword_params(cls: type) -> set[str]:
    """The named keyword parameters of `__init__` along the class's MRO (what a config may set)."""
    valid: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            valid |= {
                p.name
                for p in inspect.signature(klass.__init__).parameters.values()
                if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                and p.name != "self"
            }
    return valid


def check_kwargs(cls: type, params: dict[str, object], what: str, exclude: tuple[str, ...] = ()) -> None:
    """Fail with a message naming the valid parameters when a config passes an unknown one."""
    valid = keyword_params(cls) - set(exclude)
    unknown = sorted(set(params) - valid)
    if unknown:
        raise UnknownChoiceError(
            f"unknown parameter(s) {', '.join(unknown)} for {what}; valid: {', '.join(sorted(valid))}"
        )
