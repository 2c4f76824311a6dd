"""`add_version`: write ``PKG/resources/KIND_VERSION.py``, one more API version of a kind.

The file (SPEC section 9) declares ``KindVnSpec``, a copy of the storage version's Spec as
it stands (its source, with the imports and module names it uses), and the `ServedVersion`
class whose two spec conversions copy the fields both versions share. The status stays the
storage version's, so its conversions are the identity. Run it *before* changing the kind:
the copy then is the old shape, still served once ``version=`` moves on; or with a newer
version name, to start the next shape beside the current one.
"""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

from ..resource import is_valid_version
from ._config import load_config
from ._discover import ResourceClass, discover_project
from ._errors import CodegenError
from ._generator import template_env

__all__ = ["add_version", "render_version_file", "version_class_name"]


def version_class_name(kind: str, version: str) -> str:
    """``Device``, ``v2beta1`` → ``DeviceV2beta1``."""
    return kind + version[:1].upper() + version[1:]


def add_version(root: Path, kind: str, version: str, deprecated: bool = False) -> Path:
    """Write ``PKG/resources/<kind>_<version>.py`` under `root`; refuse any clash."""
    package = load_config(root).settings.package
    if not is_valid_version(version):
        raise CodegenError(f"version {version!r} is not valid",
                           "API versions look like v1, v2beta1 or v3alpha2")
    path = root / package / "resources" / f"{kind.lower()}_{version}.py"
    relative = path.relative_to(root).as_posix()
    if path.exists():
        raise CodegenError(f"{relative} already exists", "edit it, or remove it to start over")
    found = _discover(root, package)
    cls = _find_kind(found.kinds, kind)
    for served in found.versions:
        info = served.version_info
        if info.kind is cls and info.version == version:
            where = served.__module__.replace(".", "/") + ".py"
            raise CodegenError(f"{cls.resource_info.kind} {version} is already served by "
                               f"{served.__name__} ({where})")
    source = (root / (cls.__module__.replace(".", "/") + ".py")).read_text(encoding="utf-8")
    path.write_bytes(render_version_file(cls, version, source, deprecated).encode("utf-8"))
    return path


def render_version_file(
    cls: ResourceClass, version: str, source: str, deprecated: bool = False
) -> str:
    """The version file of `cls` in `version`; `source` is the text of `cls`'s module."""
    info = cls.resource_info
    spec_name = info.spec_type.__name__
    served_name = version_class_name(info.kind, version)
    source, imports, fabrica_names, local = _copied_spec(source, spec_name,
                                                         served_name + "Spec")
    local_names = sorted({info.kind, spec_name, info.status_type.__name__, *local},
                         key=_isort_key)
    fabrica_names = sorted({"ServedVersion", *fabrica_names}, key=_isort_key)
    return template_env().get_template("version.py.j2").render(
        kind=info.kind, storage=info.version, version=version, deprecated=deprecated,
        module=cls.__module__.rsplit(".", 1)[-1], package=cls.__module__.split(".")[0],
        spec=spec_name, status=info.status_type.__name__, served=served_name,
        spec_source=source, local_names=local_names,
        imports=_grouped([i for i in imports if i not in _relative(imports)]),
        relative_imports=_relative(imports),
        fabrica_names=fabrica_names,
    )


def _isort_key(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions, as isort (and ruff) order imported names."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def _grouped(imports: list[str]) -> list[list[str]]:
    """The standard library's imports, then third-party ones (as isort groups them)."""
    def group(line: str) -> int:
        module = line.split()[1]
        if module.startswith("."):
            return 2
        return 0 if module.split(".")[0] in sys.stdlib_module_names else 1

    groups = [[i for i in imports if group(i) == n] for n in range(3)]
    return [lines for lines in groups if lines]


def _relative(imports: list[str]) -> list[str]:
    return [line for line in imports if line.split()[1].startswith(".")]


def _discover(root: Path, package: str):  # type: ignore[no-untyped-def]
    try:
        return discover_project(root, package)
    except CodegenError as exc:
        raise CodegenError(f"cannot read the project's kinds: {exc.message}", exc.hint) from None


def _find_kind(kinds: list[ResourceClass], kind: str) -> ResourceClass:
    for cls in kinds:
        if cls.resource_info.kind.lower() == kind.lower():
            return cls
    known = ", ".join(c.resource_info.kind for c in kinds) or "none yet"
    raise CodegenError(f"there is no kind {kind!r} in this project (kinds: {known})",
                       "add it first with fabrica add resource KIND")


def _copied_spec(
    source: str, spec: str, new_name: str
) -> tuple[str, list[str], list[str], list[str]]:
    """The Spec class's source renamed to `new_name`, the module's import lines it needs,
    the names it imports from fabrica, and the module's own top-level names it uses
    (imported from the kind's module)."""
    tree = ast.parse(source)
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == spec), None)
    if node is None:
        raise CodegenError(f"cannot find class {spec} at the top level of its module",
                           "declare the Spec class in the kind's resource file")
    lines = source.splitlines()
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    body = textwrap.dedent("\n".join(lines[start:node.end_lineno]))
    body = body.replace(f"class {spec}", f"class {new_name}", 1)
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - {spec}
    imports, fabrica_names = _imports_for(tree, used)
    return body, imports, fabrica_names, _local_names(tree, used)


def _imports_for(tree: ast.Module, used: set[str]) -> tuple[list[str], list[str]]:
    """``from pydantic import Field`` and the like: each import of the module, cut down to
    the names `used`; and apart, the names used from ``fabrica`` (the template imports
    those with its own). Relative imports are kept as they are: the version file sits in
    the same folder as the kind's."""
    found, fabrica_names = [], []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "fabrica" and not node.level:
            fabrica_names += [a.name for a in node.names if (a.asname or a.name) in used]
        elif isinstance(node, ast.ImportFrom):
            names = [a for a in node.names if (a.asname or a.name) in used]
            if names:
                spelled = ", ".join(a.name + (f" as {a.asname}" if a.asname else "")
                                    for a in names)
                found.append(f"from {'.' * node.level}{node.module or ''} import {spelled}")
        elif isinstance(node, ast.Import):
            names = [a for a in node.names if (a.asname or a.name).split(".")[0] in used]
            found += [f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
                      for a in names]
    return found, fabrica_names


def _local_names(tree: ast.Module, used: set[str]) -> list[str]:
    """Top-level classes, functions and constants of the module that `used` names."""
    defined = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {t.id for t in targets if isinstance(t, ast.Name)}
    return sorted(defined & used)
