"""The field index (``fabrica_field_index``, see `_schema`): a kind's selectable fields'
values, kept in each write's transaction, built for stored resources at start, and the SQL
of a list by ``?fieldSelector=`` is `_query.field_clause`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, delete, insert, select

from ...resource import field_text, field_value
from .._base import Document
from ._query import decode, value_hash
from ._schema import field_index, indexed_fields, resources

__all__ = ["field_rows", "prepare_fields", "write_fields"]

_BACKFILL_PAGE = 1000
_INSERT = insert(field_index)
_DELETE_HELD = delete(field_index).where(field_index.c.collection == bindparam("w_collection"),
                                         field_index.c.uid == bindparam("w_uid"))


def field_rows(collection: str, uid: str, doc: Document, paths: Sequence[str]
               ) -> list[dict[str, str]]:
    """The index rows of `doc`'s fields `paths`."""
    return [{"collection": collection, "field": path, "uid": uid,
             "value_hash": value_hash(field_text(field_value(doc, path)))} for path in paths]


def write_fields(conn: Connection, collection: str, uid: str, doc: Document,
                 paths: Sequence[str], *, replace: bool) -> None:
    """The resource's rows of `paths`, in the write's transaction (`replace`: drop the
    ones it had first)."""
    if replace:
        conn.execute(_DELETE_HELD, {"w_collection": collection, "w_uid": uid})
    conn.execute(_INSERT, field_rows(collection, uid, doc, paths))


def prepare_fields(conn: Connection, collection: str, paths: Sequence[str]) -> None:
    """Build the rows of fields new to the collection from its stored resources (a page at
    a time); forget the rows of fields no longer indexed."""
    built = set(conn.execute(select(indexed_fields.c.field).where(
        indexed_fields.c.collection == collection)).scalars())
    for old in sorted(built - set(paths)):
        for table in (field_index, indexed_fields):
            conn.execute(delete(table).where(table.c.collection == collection,
                                             table.c.field == old))
    new = sorted(set(paths) - built)
    if not new:
        return
    conn.execute(delete(field_index).where(field_index.c.collection == collection,
                                           field_index.c.field.in_(new)))
    after = ""
    while True:
        page = conn.execute(select(resources.c.uid, resources.c.document).where(
            resources.c.collection == collection, resources.c.uid > after)
            .order_by(resources.c.uid).limit(_BACKFILL_PAGE)).all()
        rows = [row for uid, document in page
                for row in field_rows(collection, uid, decode(document), new)]
        if rows:
            conn.execute(_INSERT, rows)
        if len(page) < _BACKFILL_PAGE:
            break
        after = page[-1][0]
    conn.execute(insert(indexed_fields), [{"collection": collection, "field": path}
                                          for path in new])
