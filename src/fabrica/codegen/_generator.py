"""`generate`: render a project's files from its kinds and settings, and write what changed.

Two kinds of output. Generated files (`*_generated.py`) are rewritten on every run, but only
when their content changes, so a second run leaves every byte and mtime alone. User files
(pyproject.toml, README.md, the `__main__.py` stubs, ...) are created when missing and never
touched again. Everything is rendered before anything is written: an error writes nothing.
Each kind gets its admission hooks, `PKG/hooks/KIND.py`, a user file the generated server
wires. With reconciliation on, `PKG/reconcilers/` gets two files per kind as well: the
generated base class and the user's stub that subclasses it. With auth on, `auth/model.conf` and
`auth/policy.csv` (the Casbin RBAC policy) are user files too. `openapi.json` at the project
root is generated too: the very document the server answers at ``/openapi.json``, for tools
that read the API without running it.
"""

from __future__ import annotations

import dataclasses
import json
import keyword
import re
from pathlib import Path
from typing import Any, Literal

import jinja2

from .._settings import ServiceSettings
from .._version import __version__
from ..auth import DEFAULT_MODEL, DEFAULT_POLICY
from ..server.openapi import add_bearer_security, build_openapi, public_plurals
from ._config import CONFIG_FILE, load_config
from ._discover import ResourceClass, VersionClass, discover_project
from ._features import pending_features

__all__ = [
    "OPENAPI_FILE",
    "FileChange",
    "GenerateResult",
    "generate",
    "render_openapi",
    "render_project",
    "template_env",
]

Action = Literal["created", "updated", "unchanged"]

# (path in the project, template); "{package}" stands for the project's package.
_USER_FILES = (
    ("pyproject.toml", "project/pyproject.toml.j2"),
    ("README.md", "project/README.md.j2"),
    (".gitignore", "project/gitignore.j2"),
    ("schemathesis.toml", "project/schemathesis.toml.j2"),
    ("{package}/__init__.py", "project/package_init.py.j2"),
    ("{package}/resources/__init__.py", "project/resources_init.py.j2"),
    ("{package}/server/__init__.py", "project/server_init.py.j2"),
    ("{package}/server/__main__.py", "project/server_main.py.j2"),
    ("{package}/client/__init__.py", "project/client_init.py.j2"),
    ("{package}/client/__main__.py", "project/client_main.py.j2"),
    ("{package}/hooks/__init__.py", "project/hooks_init.py.j2"),
)
_GENERATED_FILES = (
    ("{package}/resources_generated.py", "generated/resources_generated.py.j2"),
    ("{package}/settings_generated.py", "generated/settings_generated.py.j2"),
    ("{package}/server/server_generated.py", "generated/server_generated.py.j2"),
    ("{package}/client/client_generated.py", "generated/client_generated.py.j2"),
)
# Only with reconciliation on. Per-kind paths: "{kind}" stands for the lower-cased kind.
_RECONCILE_USER_FILES = (("{package}/reconcilers/__init__.py", "project/reconcilers_init.py.j2"),)
_RECONCILE_GENERATED_FILES = (
    ("{package}/reconcilers/registration_generated.py", "generated/registration_generated.py.j2"),
)
_RECONCILE_KIND_USER_FILES = (
    ("{package}/reconcilers/{kind}_reconciler.py", "project/kind_reconciler.py.j2"),
)
_RECONCILE_KIND_GENERATED_FILES = (
    (
        "{package}/reconcilers/{kind}_reconciler_generated.py",
        "generated/kind_reconciler_generated.py.j2",
    ),
)
# Every kind's admission hooks (SPEC section 10), wired by the generated server.
_KIND_USER_FILES = (("{package}/hooks/{kind}.py", "project/kind_hooks.py.j2"),)
# Only with auth on: the Casbin model and policy, the user's to edit (SPEC section 7).
_AUTH_USER_FILES = (
    ("auth/model.conf", "project/auth_model.conf.j2"),
    ("auth/policy.csv", "project/auth_policy.csv.j2"),
)
OPENAPI_FILE = "openapi.json"
_BARE_TOML_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclasses.dataclass(frozen=True)
class RenderedFile:
    path: str
    content: str
    generated: bool


@dataclasses.dataclass(frozen=True)
class FileChange:
    path: str
    action: Action
    generated: bool


@dataclasses.dataclass(frozen=True)
class GenerateResult:
    """What `generate` found and did: the kinds, each file it considered, pending features."""

    kinds: tuple[str, ...]
    files: tuple[FileChange, ...]
    pending: tuple[str, ...]
    versions: tuple[str, ...] = ()  # "Device v1 (deprecated)": API versions besides storage


def generate(root: Path) -> GenerateResult:
    """Read `.fabrica.yaml` and the resource files under `root`; bring the project up to date."""
    settings = load_config(root).settings
    found = discover_project(root, settings.package)
    kinds, versions = found.kinds, found.versions
    rendered = render_project(settings, kinds, versions)
    changes = [change for file in rendered if (change := _write(root, file))]
    return GenerateResult(
        kinds=tuple(cls.resource_info.kind for cls in kinds),
        files=tuple(changes),
        pending=tuple(pending_features(settings)),
        versions=tuple(_describe_version(v) for v in versions),
    )


def _describe_version(served: VersionClass) -> str:
    info = served.version_info
    return f"{info.storage.kind} {info.version}" + (" (deprecated)" if info.deprecated else "")


def render_project(
    settings: ServiceSettings,
    kinds: list[ResourceClass],
    versions: list[VersionClass] | None = None,
) -> list[RenderedFile]:
    versions = versions or []
    env = template_env()
    context = _context(settings, kinds, versions)
    files = [(p, t, False) for p, t in _USER_FILES] + [(p, t, True) for p, t in _GENERATED_FILES]
    kind_files: list[tuple[str, str, bool]] = [(p, t, False) for p, t in _KIND_USER_FILES]
    if settings.auth:
        files += [(p, t, False) for p, t in _AUTH_USER_FILES]
    if settings.reconcile:
        files += [(p, t, False) for p, t in _RECONCILE_USER_FILES]
        files += [(p, t, True) for p, t in _RECONCILE_GENERATED_FILES]
        kind_files += [(p, t, False) for p, t in _RECONCILE_KIND_USER_FILES]
        kind_files += [(p, t, True) for p, t in _RECONCILE_KIND_GENERATED_FILES]
    rendered = [
        RenderedFile(
            path=path.format(package=settings.package),
            content=env.get_template(template).render(context),
            generated=generated,
        )
        for path, template, generated in files
    ]
    rendered += [
        RenderedFile(
            path=path.format(package=settings.package, kind=kind["singular"]),
            content=env.get_template(template).render(context, kind=kind),
            generated=generated,
        )
        for kind in context["kinds"]
        for path, template, generated in kind_files
    ]
    rendered.append(RenderedFile(OPENAPI_FILE, render_openapi(settings, kinds, versions),
                                 generated=True))
    return rendered


def render_openapi(
    settings: ServiceSettings,
    kinds: list[ResourceClass],
    versions: list[VersionClass] | None = None,
) -> str:
    """The service's OpenAPI document as written to the project: stable bytes, so an
    unchanged project regenerates it identically."""
    document = build_openapi(kinds, title=settings.project, description=settings.description,
                             events=settings.events,
                             strict=settings.validation_mode == "strict",
                             versions=versions or ())
    if settings.auth:
        add_bearer_security(document, public_plurals(kinds))
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def template_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("fabrica.codegen", "templates"),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["py"] = _python_literal
    env.filters["toml"] = _toml_string
    env.filters["toml_key"] = _toml_key
    return env


def _context(
    settings: ServiceSettings, kinds: list[ResourceClass], versions: list[VersionClass]
) -> dict[str, Any]:
    package = settings.package
    return {
        "settings": settings,
        "settings_fields": list(dataclasses.asdict(settings).items()),
        "package": package,
        "env_prefix": settings.env_prefix,
        "fabrica_version": __version__,
        "auth_model": DEFAULT_MODEL,
        "auth_policy": DEFAULT_POLICY,
        "header": (
            f"# Generated by fabrica generate from {package}/resources and {CONFIG_FILE}.\n"
            "# Do not edit: changes are overwritten."
        ),
        "kinds": [
            {
                "name": cls.resource_info.kind,
                "module": cls.__module__.rsplit(".", 1)[-1],
                "singular": cls.resource_info.singular,
                "var": _variable(cls.resource_info.singular),
            }
            for cls in kinds
        ],
        "versions": [
            {
                "name": served.__name__,
                "module": served.__module__.rsplit(".", 1)[-1],
                "kind": served.version_info.storage.kind,
                "version": served.version_info.version,
            }
            for served in versions
        ],
    }


def _variable(singular: str) -> str:
    """A parameter name for one object of a kind: `rack`, or `obj` where Python forbids it."""
    return "obj" if keyword.iskeyword(singular) or singular == "self" else singular


def _write(root: Path, file: RenderedFile) -> FileChange | None:
    """Write `file` if it changed (generated) or is missing (user file); None: left alone."""
    path = root / file.path
    data = file.content.encode("utf-8")
    if path.exists():
        if not file.generated:
            return None
        if path.read_bytes() == data:
            return FileChange(file.path, "unchanged", generated=True)
        action: Action = "updated"
    else:
        action = "created"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return FileChange(file.path, action, file.generated)


def _python_literal(value: object) -> str:
    """A Python literal for a setting: JSON's string escapes are Python's too."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(value: str) -> str:
    return value if _BARE_TOML_KEY.match(value) else _toml_string(value)
