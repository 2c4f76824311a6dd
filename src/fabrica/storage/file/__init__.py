"""The file backend: one JSON document per resource under a data dir, shared safely by the
threads and processes of a service (see `_storage` for the layout, `_changes` for the change
log). It needs nothing beyond the standard library."""

from ._storage import FileStorage

__all__ = ["FileStorage"]
