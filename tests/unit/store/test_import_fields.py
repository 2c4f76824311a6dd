"""Resources imported into SQL (`import_resources`, behind ``server import``) go into the
field index: an import in a process that never started the service used to write them
without index rows, and lists by a field missed them for good (the fields counted as
built)."""

from __future__ import annotations

import io

from fabrica.resource import Selector, parse_field_selector
from fabrica.storage import FileStorage, SQLStorage
from fabrica.store import ResourceStore, export_resources, import_resources, read_export
from tests._support.bmc import BMC, BMCSpec


async def test_imported_resources_are_listed_by_their_fields(tmp_path):
    source = FileStorage(tmp_path / "data")
    store = ResourceStore(source, [BMC])
    for n in range(3):
        await store.create(BMC, f"b{n}", BMCSpec(serial=f"S{n}", mac=f"m{n}",
                                                 rack_uid=f"r{n % 2}", slot=n))
    out = io.StringIO()
    await export_resources(source, [BMC], "bmc-api", out)
    url = f"sqlite:///{tmp_path}/target.db"
    service, importer = SQLStorage(url), SQLStorage(url)  # two processes' storages
    try:
        await service.migrate()
        await service.prepare_fields("bmcs", BMC.resource_info.rules.selectable)
        plan = read_export(out.getvalue().splitlines(), [BMC], "bmc-api")
        await import_resources(importer, plan, "create")
        fields = parse_field_selector("spec.rackUID=r0", BMC.resource_info.rules.selectable)
        found = await service.list("bmcs", selector=Selector(fields=fields))
        assert [doc["metadata"]["name"] for doc in found] == ["b0", "b2"]
    finally:
        await service.close()
        await importer.close()
