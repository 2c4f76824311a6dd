"""`init_project`: a new project directory with its `.fabrica.yaml`, then a first `generate`."""

from __future__ import annotations

import datetime
from pathlib import Path

from .._settings import ServiceSettings
from ._config import CONFIG_FILE, ProjectConfig, save_config, validate_settings
from ._errors import CodegenError
from ._generator import FileChange, GenerateResult, generate
from ._names import check_not_installed

__all__ = ["init_project"]


def init_project(root: Path, settings: ServiceSettings) -> GenerateResult:
    """Create the project in `root` (made if missing); refuse if one is already there."""
    if (root / CONFIG_FILE).exists():
        raise CodegenError(
            f"{root / CONFIG_FILE} already exists: there is a project here",
            "run fabrica generate in it, or choose another directory",
        )
    if root.exists() and not root.is_dir():
        raise CodegenError(f"{root} exists and is not a directory")
    validate_settings(settings)
    check_not_installed(settings.package, root)
    root.mkdir(parents=True, exist_ok=True)
    save_config(root, ProjectConfig(settings=settings, created=datetime.date.today()))
    result = generate(root)
    config_change = FileChange(CONFIG_FILE, "created", generated=False)
    return GenerateResult(result.kinds, (config_change, *result.files), result.pending)
