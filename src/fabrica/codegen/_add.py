"""`add_resource`: write the starter file of a new kind, after checking it fits the project.

The new kind's UID prefix and URL plural must not be taken by a kind the project already
has; those are found by importing the existing resource files, exactly as `generate` does.
"""

from __future__ import annotations

from pathlib import Path

from ..resource import default_prefix, is_valid_kind, is_valid_plural, is_valid_prefix, pluralize
from ._config import load_config
from ._discover import ResourceClass, discover_resources
from ._errors import CodegenError
from ._generator import template_env

__all__ = ["add_resource", "render_resource_starter"]


def add_resource(
    root: Path,
    kind: str,
    prefix: str | None = None,
    plural: str | None = None,
    versioning: bool = False,
) -> Path:
    """Write `PKG/resources/<kind>.py` under `root` and return its path; refuse any clash."""
    package = load_config(root).settings.package
    _check_names(kind, prefix, plural)
    path = root / package / "resources" / f"{kind.lower()}.py"
    relative = path.relative_to(root).as_posix()
    if path.exists():
        raise CodegenError(f"{relative} already exists", "edit it, or remove it to start over")
    _check_free(
        _existing_kinds(root, package),
        kind,
        prefix or default_prefix(kind),
        plural or pluralize(kind.lower()),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_resource_starter(kind, prefix, plural, versioning).encode("utf-8"))
    return path


def render_resource_starter(
    kind: str, prefix: str | None = None, plural: str | None = None, versioning: bool = False
) -> str:
    """The starter resource file: Spec with `description`, Status with phase/message/ready."""
    arguments = [
        f"Resource[{kind}Spec, {kind}Status]",
        f'prefix="{prefix or default_prefix(kind)}"',
    ]
    if plural:
        arguments.append(f'plural="{plural}"')
    if versioning:
        arguments.append("versioning=True")
    template = template_env().get_template("resource.py.j2")
    return template.render(kind=kind, arguments=arguments, versioning=versioning)


def _check_names(kind: str, prefix: str | None, plural: str | None) -> None:
    if not is_valid_kind(kind):
        raise CodegenError(
            f"kind {kind!r} is not valid: it must match ^[A-Z][A-Za-z0-9]*$",
            "start with an upper-case letter, then letters and digits: Device, RackTemplate, BMC",
        )
    if prefix is not None and not is_valid_prefix(prefix):
        raise CodegenError(
            f"prefix {prefix!r} is not valid",
            "use a lower-case letter, then up to 15 lower-case letters or digits",
        )
    if plural is not None and not is_valid_plural(plural):
        raise CodegenError(
            f"plural {plural!r} is not valid",
            "use a lower-case URL segment: a letter, then lower-case letters, digits or '-'",
        )


def _existing_kinds(root: Path, package: str) -> list[ResourceClass]:
    try:
        return discover_resources(root, package)
    except CodegenError as exc:
        raise CodegenError(
            f"cannot check the new kind against the existing ones: {exc.message}", exc.hint
        ) from None


def _check_free(existing: list[ResourceClass], kind: str, prefix: str, plural: str) -> None:
    for cls in existing:
        info = cls.resource_info
        where = cls.__module__.replace(".", "/") + ".py"
        if info.kind.lower() == kind.lower():
            raise CodegenError(f"kind {info.kind} already exists in {where}")
        if info.prefix == prefix:
            raise CodegenError(
                f"prefix {prefix!r} is already used by {info.kind} ({where})",
                "choose another with --prefix",
            )
        if info.plural == plural:
            raise CodegenError(
                f"plural {plural!r} is already used by {info.kind} ({where})",
                "choose another with --plural",
            )
