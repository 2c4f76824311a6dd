"""Find a project's kinds by importing its resource files, as Python will when it runs.

Importing rather than parsing means the generator sees exactly what the server will: the
class keywords already checked by `Resource`, pydantic's own errors, and kinds declared any
way Python allows. The cost is that a resource file must import; when one does not, the
error names the file and the line, and nothing is generated.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..resource import Resource, ServedVersion, version_sort_key
from ._errors import CodegenError

__all__ = [
    "Discovered",
    "ResourceClass",
    "VersionClass",
    "check_unique",
    "discover_project",
    "discover_resources",
    "resource_files",
]

ResourceClass = type[Resource[Any, Any]]
VersionClass = type[ServedVersion[Any, Any]]


@dataclass(frozen=True)
class Discovered:
    """A project's kinds, and the other API versions they serve (`ServedVersion` classes)."""

    kinds: list[ResourceClass]
    versions: list[VersionClass]


def resource_files(root: Path, package: str) -> list[Path]:
    """`PKG/resources/*.py`, leaving out `__init__.py`, `_private.py` and `*_generated.py`."""
    folder = root / package / "resources"
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.glob("*.py")
        if not p.name.startswith("_") and not p.stem.endswith("_generated")
    )


def discover_resources(root: Path, package: str) -> list[ResourceClass]:
    """Every kind the project's resource files define, sorted by kind."""
    return discover_project(root, package).kinds


def discover_project(root: Path, package: str) -> Discovered:
    """Every kind and every `ServedVersion` the resource files define, sorted by kind (and
    version); a version served twice, or of a kind not in the project, is an error."""
    kinds: list[ResourceClass] = []
    versions: list[VersionClass] = []
    with _project_imports(root, package):
        for path in resource_files(root, package):
            module = _import(root, package, path)
            kinds.extend(_kinds_in(module))
            versions.extend(_defined_in(module, ServedVersion, "version_info"))
    check_unique(kinds)
    _check_versions(kinds, versions)
    kinds.sort(key=lambda cls: cls.resource_info.kind)
    versions.sort(key=lambda v: (v.version_info.storage.kind,
                                 version_sort_key(v.version_info.version)))
    return Discovered(kinds, versions)


def _check_versions(kinds: list[ResourceClass], versions: list[VersionClass]) -> None:
    seen: dict[tuple[str, str], VersionClass] = {}
    for served in versions:
        info = served.version_info
        if info.kind not in kinds:
            raise CodegenError(
                f"{served.__name__} ({_where(served)}) serves {info.storage.kind}, which is not "
                f"a kind of this project",
                f"point of= at a kind defined in {_where(served).rsplit('/', 1)[0]}/",
            )
        key = (info.storage.kind, info.version)
        if key in seen:
            first = seen[key]
            raise CodegenError(
                f"{info.storage.kind} {info.version} is served twice: by {first.__name__} "
                f"({_where(first)}) and {served.__name__} ({_where(served)})",
                "keep one of them",
            )
        seen[key] = served


def check_unique(kinds: list[ResourceClass]) -> None:
    """Refuse two kinds that share a name, a UID prefix or a URL plural."""
    for attribute in ("kind", "prefix", "plural"):
        seen: dict[str, ResourceClass] = {}
        for cls in kinds:
            value = getattr(cls.resource_info, attribute)
            if value in seen:
                raise _collision(seen[value], cls, attribute, value)
            seen[value] = cls


def _collision(first: ResourceClass, second: ResourceClass, what: str, value: str) -> CodegenError:
    where = f"{_where(first)} and {_where(second)}"
    if what == "kind":
        return CodegenError(f"kind {value} is defined twice: {where}", "keep one of them")
    return CodegenError(
        f"kinds {first.resource_info.kind} and {second.resource_info.kind} both use the "
        f"{what} {value!r} ({where})",
        f"give one of them another {what}= in its class keywords",
    )


def _where(cls: type) -> str:
    return cls.__module__.replace(".", "/") + ".py"


@contextlib.contextmanager
def _project_imports(root: Path, package: str) -> Iterator[None]:
    """Import from `root` first, fresh each time, without writing `__pycache__` files."""
    _forget(package)
    entry = str(root.resolve())
    sys.path.insert(0, entry)
    importlib.invalidate_caches()
    old_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        yield
    finally:
        sys.dont_write_bytecode = old_bytecode
        sys.path.remove(entry)
        _forget(package)


def _forget(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def _import(root: Path, package: str, path: Path) -> ModuleType:
    relative = path.relative_to(root).as_posix()
    if not path.stem.isidentifier():
        raise CodegenError(
            f"{relative}: {path.stem!r} is not a valid Python module name",
            "rename the file to the lower-cased kind, e.g. racktemplate.py",
        )
    try:
        module = importlib.import_module(f"{package}.resources.{path.stem}")
    except Exception as exc:
        raise CodegenError(
            f"{relative} does not import: {_describe(exc, root)}",
            "fix the file, then run fabrica generate again",
        ) from None
    origin = Path(module.__file__ or "").resolve()
    if origin != path.resolve():
        raise CodegenError(
            f"{package}.resources.{path.stem} imports from {origin}, not from this project",
            f"rename the package or uninstall the other {package!r}",
        )
    return module


def _describe(exc: Exception, root: Path) -> str:
    """`NameError: name 'x' is not defined (at PKG/resources/x.py:3)`: what, and where."""
    resolved = root.resolve()
    if isinstance(exc, SyntaxError):
        message = f"{type(exc).__name__}: {exc.msg}"
        places = [(exc.filename or "", exc.lineno)]
    else:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        places = [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]
    inside = [(Path(name).resolve(), line) for name, line in places if Path(name).is_absolute()]
    inside = [(path, line) for path, line in inside if path.is_relative_to(resolved)]
    if inside:
        path, line = inside[-1]
        message += f" (at {path.relative_to(resolved).as_posix()}:{line})"
    return message


def _kinds_in(module: ModuleType) -> list[ResourceClass]:
    """The kinds `module` defines itself: not imported ones, not `Resource[Spec, Status]`."""
    return _defined_in(module, Resource, "resource_info")


def _defined_in(module: ModuleType, base: type, marker: str) -> list[Any]:
    """The subclasses of `base` that `module` defines itself and that carry `marker` (set
    once the class keywords were checked): not imported ones, not the generic base."""
    found: dict[int, Any] = {}
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, base)
            and value.__module__ == module.__name__
            and marker in vars(value)
        ):
            found[id(value)] = value
    return list(found.values())
