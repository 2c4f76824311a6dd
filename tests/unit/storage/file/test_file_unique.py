"""Unique keys on files after a crash: a key whose link leads to no document (a create that
died before its document appeared) or to a document that no longer holds it (an update
that died) is taken over by the next writer of it, never held for ever."""

from __future__ import annotations

import os

import pytest

from fabrica.resource import unique_key
from fabrica.storage import AlreadyExists, FileStorage
from fabrica.storage._unique import key_hash
from tests._support.storage import doc, uid

SERIAL = "spec.serial"


def link(tmp_path, value: str):
    return tmp_path / "bmcs" / ".unique" / "spec.serial" / key_hash(unique_key([value]))


async def test_a_key_left_by_a_dead_create_is_taken_over(tmp_path):
    storage = FileStorage(tmp_path)
    await storage.prepare_unique("bmcs", [SERIAL])
    os.symlink(f"..{os.sep}..{os.sep}{uid(9)}.json", link(tmp_path, "S1"))  # no such doc
    await storage.create("bmcs", doc("a", uid(1), serial="S1"),
                         unique={SERIAL: unique_key(["S1"])})
    assert os.readlink(link(tmp_path, "S1")).endswith(f"{uid(1)}.json")
    with pytest.raises(AlreadyExists):
        await storage.create("bmcs", doc("b", uid(2), serial="S1"),
                             unique={SERIAL: unique_key(["S1"])})
    await storage.close()


async def test_a_key_whose_holder_moved_on_is_taken_over(tmp_path):
    storage = FileStorage(tmp_path)
    await storage.prepare_unique("bmcs", [SERIAL])
    await storage.create("bmcs", doc("a", uid(1), serial="S2"),
                         unique={SERIAL: unique_key(["S2"])})
    # An update of a to S2 that died after claiming S1's link, before its document changed.
    os.symlink(f"..{os.sep}..{os.sep}{uid(1)}.json", link(tmp_path, "S1"))
    await storage.create("bmcs", doc("b", uid(2), serial="S1"),
                         unique={SERIAL: unique_key(["S1"])})
    assert os.readlink(link(tmp_path, "S1")).endswith(f"{uid(2)}.json")
    await storage.close()


async def test_a_delete_removes_its_links(tmp_path):
    storage = FileStorage(tmp_path)
    await storage.prepare_unique("bmcs", [SERIAL])
    await storage.create("bmcs", doc("a", uid(1), serial="S1"),
                         unique={SERIAL: unique_key(["S1"])})
    await storage.delete("bmcs", uid(1))
    assert not os.path.lexists(link(tmp_path, "S1"))
    await storage.close()
