"""Every public package says what it exports (`__all__`), and each name is there: a change
of a public surface is a deliberate edit of this file."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import fabrica

EXPORTS = {
    "fabrica": [
        "AlreadyExists", "Condition", "Conflict", "Hooks", "Immutable", "Indexed",
        "Metadata", "Model", "NotFound", "OwnerReference", "Reject", "Resource",
        "ResourceInfo", "Sensitive", "ServedVersion", "ServiceSettings", "Unique",
        "WriteContext", "__version__", "find_condition", "is_condition_true",
        "remove_condition", "set_condition",
    ],
    "fabrica.resource": [
        "ALL_VERBS", "API_VERSION", "ApiVersionTable", "ApiVersions", "Condition",
        "ConditionStatus", "ConversionError", "EXPOSURES", "Exposure", "FieldRequirement",
        "FieldSelectorError", "FieldValues", "Immutable",
        "Indexed", "InvalidMetadata", "InvalidText", "KindRules", "LABEL_KEY_MAX_LENGTH",
        "LABEL_KEY_PATTERN", "LABEL_VALUE_MAX_LENGTH", "LABEL_VALUE_PATTERN",
        "MAX_ANNOTATIONS_BYTES", "MAX_FIELD_SELECTOR_LENGTH",
        "MAX_FIELD_SELECTOR_REQUIREMENTS", "MAX_SELECTOR_LENGTH", "MAX_SELECTOR_REQUIREMENTS",
        "MAX_SELECTOR_VALUES", "Metadata", "Model", "NAME_MAX_LENGTH", "NAME_PATTERN",
        "OwnerReference", "Requirement", "Resource", "ResourceInfo", "SCHEMA_VERSION",
        "Selector", "SelectorError", "Sensitive", "ServedVersion", "UID_PATTERN", "Unique",
        "Verb", "VersionInfo", "check_annotations", "check_finalizers", "check_labels",
        "check_metadata", "check_owner_references", "check_text", "default_prefix",
        "document_fields", "field_text", "field_value", "find_condition",
        "invalid_text_path", "is_condition_true",
        "is_dns1123_subdomain", "is_uid", "is_valid_kind", "is_valid_plural",
        "is_valid_prefix", "is_valid_version", "keep_left_out", "label_key_error",
        "label_value_error", "left_out", "new_uid", "parse_field_selector", "parse_selector",
        "pluralize",
        "redact_details", "redact_spec", "remove_condition", "sensitive_exclude",
        "sensitive_fields", "set_condition", "unique_key", "utcnow", "version_sort_key",
    ],
    "fabrica.storage": [
        "AlreadyExists", "BatchMode", "BulkItem", "BulkStorage", "ChangeType", "Conflict",
        "DEFAULT_CHANGE_HISTORY", "DatabaseURLRequired", "Document", "DuplicateValues",
        "FileStorage", "Gone", "Invalid", "Leases", "LocalLeases", "MigrationRequired",
        "NotFound", "Outbox", "OutboxEntry", "OutboxMessage", "OutboxStats", "SQLLeases",
        "SQLStorage", "SnapshotWriter", "Storage", "StorageError", "StorageSetupError",
        "StoredChange", "Unavailable", "UniqueKeys", "database_url_for", "is_database_url",
        "lease_key", "migrate_database", "open_storage", "prepare_storage", "with_timeout",
    ],
    "fabrica.store": [
        "ANONYMOUS", "Action", "Actor", "BadExport", "CachedRead", "Change",
        "ChangeListener", "ChangePublisher", "CreateManyError", "DEFAULT_ATTEMPTS",
        "DEFAULT_CACHE_SIZE",
        "DEFAULT_QUEUE_SIZE", "DEFAULT_VERSION_WAIT", "DEFAULT_WATCH_MEMORY",
        "EXPORT_FORMAT", "Emission", "EmissionListener", "Encryption", "EncryptionError",
        "GarbageCollector", "HookFailed", "Hooks", "ImmutableFieldError", "ImportMode",
        "ImportPlan", "NewResource", "Operation", "OwnerReferenceError", "Part", "Reject",
        "ResourceStore",
        "ResourceVersionTooLarge", "SYSTEM_CONTROLLER", "UnknownKind", "UpdateType",
        "WatchCache", "Watcher", "WriteContext", "acting_as", "check_storage_key",
        "check_target", "current_actor", "current_roles", "error_line", "export_resources",
        "import_resources", "prepare_fields", "prepare_unique", "publishing", "read_export",
        "reset_actor",
        "reset_roles", "set_actor", "set_roles",
    ],
    "fabrica.auth": [
        "ACTIONS", "Auth", "DEFAULT_LEEWAY", "DEFAULT_MODEL", "DEFAULT_POLICY", "InvalidToken",
        "JWKSCache", "KeysUnavailable", "MIN_SECRET_BYTES", "MODEL_FILE", "POLICY_FILE", "Policy",
        "PolicyError", "Principal", "PublicKey", "TokenVerifier", "mint_token", "parse_duration",
        "roles_from_claims",
    ],
    "fabrica.events": [
        "BusClosed", "CloudEvent", "EventBus", "EventBusError", "EventStream",
        "ExtensionValue", "Handler", "JetStream", "KafkaBus", "LIFECYCLE_ACTIONS",
        "MemoryBus", "NatsBus", "REASON_PATTERN", "ResourceEvent", "Subscription",
        "SubscriptionStats", "TypePattern", "check_reason", "compile_pattern",
        "condition_event", "format_sse", "format_time", "lifecycle_event", "reason_event",
        "sse_frames", "sse_stream", "type_matches",
    ],
    "fabrica.reconcile": [
        "Clock", "Controller", "ControllerMetrics", "EventSource", "ExponentialBackoff",
        "KindWorkers", "LoopClock", "OwnerHandler", "QueueShutDown", "RateLimiter",
        "ReconcileClient", "ReconcileTracing", "Request", "ResourceReconciler", "Result",
        "Shards", "TerminalError", "Timer", "WorkQueue",
    ],
    "fabrica.server": [
        "DEFAULT_MAX_BODY_SIZE", "DEFAULT_STORAGE_TIMEOUT", "add_bearer_security",
        "build_openapi", "create_app", "main", "service_cli",
    ],
    "fabrica.service": [
        "DEFAULT_MAX_BODY_SIZE", "DEFAULT_STORAGE_TIMEOUT", "DEGRADED", "GRACEFUL_SHUTDOWN",
        "OptionError", "OutboxRelay", "ROLES", "Readiness", "Role", "STOP_BUDGET",
        "Service", "ServiceOptions", "default_instance", "stop_in_order",
    ],
    "fabrica.client": [
        "AsyncClient", "AsyncInformer", "AsyncRawClient", "BadRequest", "Client",
        "Conflict", "ConnectionFailed", "DEFAULT_SERVER", "DEFAULT_TIMEOUT", "Expired",
        "FabricaError", "Forbidden", "Informer", "MethodNotAllowed", "NotFound",
        "PATCH_TYPES", "PayloadTooLarge", "PreconditionFailed", "RESOURCE_VERSION_HEADER",
        "RawClient", "ServerError", "TooLargeResourceVersion", "Unauthorized",
        "Unprocessable", "UnsupportedMediaType", "ValidationError", "WatchEvent",
        "client_cli", "main",
    ],
    "fabrica.codegen": [
        "CONFIG_FILE", "CodegenError", "Discovered", "FileChange", "GenerateResult",
        "NOT_YET_AVAILABLE", "ProjectConfig", "add_resource", "add_version", "check_module_name",
        "check_not_installed", "check_project_name", "config_from_yaml", "config_to_yaml",
        "derive_module_name", "discover_project", "discover_resources", "generate", "init_project",
        "load_config", "pending_features", "render_project", "render_resource_starter",
        "render_version_file", "resource_files", "save_config", "validate_settings",
    ],
    "fabrica.cli": [
        "main",
    ],
}


@pytest.mark.parametrize("package", sorted(EXPORTS))
def test_public_names(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == EXPORTS[package]
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_every_public_package_is_listed():
    """A new package (a folder without a leading underscore) needs its line above."""
    root = Path(fabrica.__file__).parent
    packages = {f"fabrica.{p.name}" for p in root.iterdir()
                if (p / "__init__.py").exists() and not p.name.startswith("_")}
    assert packages | {"fabrica"} == set(EXPORTS)
