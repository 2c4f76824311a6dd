"""The code generator behind `fabrica init`, `fabrica add resource` and `fabrica generate`.

A project is its `.fabrica.yaml` (settings) plus its resource files (kinds). `generate`
imports the resource files, renders the Jinja2 templates in `templates/` and writes only
what changed; generated files end in `_generated.py`, everything else belongs to the user.
Errors the user can fix are `CodegenError`s; this package knows nothing of the CLI.
"""

from ._add import add_resource, render_resource_starter
from ._add_version import add_version, render_version_file
from ._config import (
    CONFIG_FILE,
    ProjectConfig,
    config_from_yaml,
    config_to_yaml,
    load_config,
    save_config,
    validate_settings,
)
from ._discover import Discovered, discover_project, discover_resources, resource_files
from ._errors import CodegenError
from ._features import NOT_YET_AVAILABLE, pending_features
from ._generator import FileChange, GenerateResult, generate, render_project
from ._init import init_project
from ._names import check_module_name, check_not_installed, check_project_name, derive_module_name

__all__ = [
    "CONFIG_FILE",
    "NOT_YET_AVAILABLE",
    "CodegenError",
    "Discovered",
    "FileChange",
    "GenerateResult",
    "ProjectConfig",
    "add_resource",
    "add_version",
    "check_module_name",
    "check_not_installed",
    "check_project_name",
    "config_from_yaml",
    "config_to_yaml",
    "derive_module_name",
    "discover_project",
    "discover_resources",
    "generate",
    "init_project",
    "load_config",
    "pending_features",
    "render_project",
    "render_resource_starter",
    "render_version_file",
    "resource_files",
    "save_config",
    "validate_settings",
]
