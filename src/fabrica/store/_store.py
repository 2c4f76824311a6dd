"""`ResourceStore`: typed CRUD over a storage backend, the one path every write takes.

The HTTP server and reconcilers both write through here, so the bookkeeping that makes a
resource Kubernetes-like lives in one place: uids that never overwrite, timestamps,
``generation`` that grows only when the spec changes, status kept apart from spec,
compare-and-swap on ``resourceVersion`` for every update, spec snapshots of versioned kinds,
the model's metadata rules (`check_metadata`: label and annotation keys, at most 256 KiB of
annotations, finalizer names, owner reference shapes) on every create and spec or metadata
write, so a reconciler's bad annotation is refused as a client's is, and deletion as
Kubernetes does it:

- a resource with finalizers is not removed by a delete; it gets a ``deletionTimestamp`` and
  stays until whoever owns each finalizer removes it, and the write that removes the last
  one removes the resource;
- removing a resource removes its dependents (``ownerReferences``) in the background, by the
  garbage collector in `_gc.py`; a write that adds an owner reference must name an existing
  resource of a kind served here (`_owners.py`), so no reference dangles from the start.

Every change of an existing resource is one `modify` (or `delete`): under a per-resource
lock (writers in this process queue instead of conflicting), read the current state once,
check the caller's precondition (an ``If-Match``, an expected resourceVersion), apply the
caller's change function, compare-and-swap, and on a conflict with another process re-read
and try again, a bounded number of times. `update` and `update_status` are `modify` with
the caller's object as the change and its resourceVersion as the precondition.

After each committed write the store calls its listeners with a `Change`; the
`ChangePublisher` turns those into CloudEvents, so events are published whoever wrote. The
events a reconciler emits (`emit`) take the same way to the same publisher, so they are
delivered as the write events are.

Everything here is in each kind's *storage* API version. A document stored while the kind
had another storage version is upgraded as it is read (`ApiVersions.upgrade`), and `wire`
serialises a state in any served API version, cached like the storage one.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..resource import (
    ApiVersionTable,
    KindRules,
    Metadata,
    OwnerReference,
    Resource,
    Selector,
    check_metadata,
    check_text,
    is_dns1123_subdomain,
    new_uid,
    redact_spec,
    sensitive_exclude,
    utcnow,
)
from ..storage import (
    AlreadyExists,
    Conflict,
    Document,
    NotFound,
    Outbox,
    OutboxMessage,
    Storage,
)
from ._actor import current_actor, current_roles
from ._changes import Action, Change, ChangeListener, Emission, EmissionListener, UpdateType
from ._fields import check_immutable, unique_keys

if TYPE_CHECKING:
    from ._create_many import NewResource
from ._hooks import (
    Actor,
    Hooks,
    HookSpans,
    Operation,
    WriteContext,
    hooks_by_kind,
    overrides,
    run_admit,
    run_admit_delete,
)
from ._locks import KeyedLocks
from ._owners import check_owners
from ._secrets import Encryption, open_document, seal_document

__all__ = ["DEFAULT_ATTEMPTS", "Part", "ResourceStore", "UnknownKind", "read_document"]

log = logging.getLogger("fabrica.store")

R = TypeVar("R", bound=Resource[Any, Any])
AnyResource = Resource[Any, Any]
_UID_ATTEMPTS = 8
_FIRST_VERSION = "v1"
#: How often `modify` and `delete` read and try again when another process wrote first.
DEFAULT_ATTEMPTS = 16
#: What a change may write: ``"main"`` spec and metadata, ``"status"`` the status only.
Part = Literal["main", "status"]


class UnknownKind(LookupError):
    pass


class ResourceStore:
    """Typed access to the resources of `kinds`, stored in `storage`."""

    def __init__(
        self,
        storage: Storage,
        kinds: Iterable[type[AnyResource]],
        *,
        clock: Callable[[], datetime] = utcnow,
        wire_cache_size: int = 50_000,
        api_versions: ApiVersionTable | None = None,
        encryption: Encryption | None = None,
    ) -> None:
        self.storage = storage
        self.encryption = encryption  # of sensitive values (None: stored as they are)
        self.clock = clock
        self.kinds: dict[str, type[AnyResource]] = {}
        for cls in kinds:
            self.kinds[cls.resource_info.kind] = cls
        self.api_versions = api_versions or ApiVersionTable(self.kinds.values())
        self._listeners: list[ChangeListener] = []
        self._emission_listeners: list[EmissionListener] = []
        self._outbox: Callable[[Change], Sequence[OutboxMessage]] | None = None
        self._on_recorded: Callable[[], None] | None = None
        self._wire = _WireCache(wire_cache_size, self._render)
        self._locks = KeyedLocks()
        self._hooks: dict[type[AnyResource], Hooks[Any]] = {}  # those that define admit
        self._delete_hooks: dict[type[AnyResource], Hooks[Any]] = {}  # ... admit_delete
        self._hook_spans: HookSpans | None = None

    def use_hooks(self, hooks: Iterable[type[Hooks[Any]] | Hooks[Any]], *,
                  spans: HookSpans | None = None) -> None:
        """Run these admission hooks (`Hooks` classes or instances, one per kind) on every
        write of their kinds (see `fabrica.store._hooks`), each call in one of `spans`."""
        self._hook_spans = spans
        found = hooks_by_kind(hooks)
        unknown = [cls.__name__ for cls in found if cls not in self.kinds.values()]
        if unknown:
            raise ValueError(f"hooks for kinds this store does not hold: {', '.join(unknown)}")
        for cls, instance in found.items():
            for method, table in (("admit", self._hooks), ("admit_delete", self._delete_hooks)):
                if overrides(instance, method):
                    table[cls] = instance
                else:
                    table.pop(cls, None)

    def kind(self, kind: str) -> type[AnyResource]:
        try:
            return self.kinds[kind]
        except KeyError:
            raise UnknownKind(kind) from None

    def use_outbox(self, messages: Callable[[Change], Sequence[OutboxMessage]],
                   on_recorded: Callable[[], None] | None = None) -> bool:
        """Record the events of every write in the write's own transaction (the
        transactional outbox, see `fabrica.storage`), if the storage can: returns whether
        it can (SQL storage can, files cannot). `messages` turns a change into the events
        to record; `on_recorded` is called after each write that recorded some."""
        if not getattr(self.storage, "supports_outbox", False):
            return False
        self._outbox = messages
        self._on_recorded = on_recorded
        return True

    async def record_events(self, resource: str, messages: Sequence[OutboxMessage]) -> bool:
        """Record events that belong to no write (a reconciler's own) in the outbox;
        False when there is none (then the caller publishes them itself)."""
        if self._outbox is None:
            return False
        await self.storage.outbox_append(resource, messages)  # type: ignore[attr-defined]
        if self._on_recorded is not None:
            self._on_recorded()
        return True

    def add_listener(self, listener: ChangeListener) -> None:
        """Call `listener` after every committed write (events, garbage collection...)."""
        self._listeners.append(listener)

    def add_emission_listener(self, listener: EmissionListener) -> None:
        """Call `listener` with every `Emission` (the event publisher)."""
        self._emission_listeners.append(listener)

    async def emit(self, emission: Emission) -> None:
        """Publish a reconciler's event about a resource, as a write's events are published.

        Like a write's listeners, a failing listener is logged and never raises here.
        """
        if not self._emission_listeners:
            log.warning("no event publisher on this store: %s of %s %s not published",
                        emission.reason, emission.resource.resource_info.kind,
                        emission.resource.uid)
        for listener in self._emission_listeners:
            try:
                await listener(emission)
            except Exception:
                log.exception("emission listener %r failed on %s %s", listener,
                              emission.reason, emission.resource.uid)

    # -- reads ---------------------------------------------------------------------------

    async def get(self, cls: type[R], id: str) -> R:
        """By uid, or by name; a name may look like a uid, so a uid miss tries the name."""
        return self._load(cls, await self.get_document(cls, id))

    async def get_document(self, cls: type[AnyResource], id: str) -> Document:
        """The stored document of `get`, unvalidated (see `wire`)."""
        return await read_document(self.storage, cls, id)

    def wire(self, cls: type[AnyResource], doc: Document, api_version: str | None = None
             ) -> bytes:
        """A stored document as the API sends it in `api_version` (default: the storage
        version): validated, converted and serialised once per state and version."""
        return self._wire.encode(cls, doc, api_version or cls.resource_info.version)

    def render(self, cls: type[AnyResource], doc: Document, api_version: str) -> bytes:
        """As `wire`, uncached: for a caller that keeps the result itself (the watch cache)."""
        return self._render(cls, doc, api_version)

    async def list(
        self,
        cls: type[R],
        *,
        selector: Selector | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[R]:
        """Ordered by name; `after` and `limit` page through it (see `Storage.list`)."""
        docs = await self.storage.list(
            cls.resource_info.plural, selector=selector, limit=limit, after=after
        )
        return [self._load(cls, doc) for doc in docs]

    async def list_wire(
        self,
        cls: type[R],
        *,
        selector: Selector | None = None,
        limit: int | None = None,
        after: str | None = None,
        api_version: str | None = None,
    ) -> builtins.list[tuple[str, bytes]]:
        """Like `list`, as (name, compact JSON) pairs ready to send.

        Each stored state is validated and serialised once: the result is cached under
        (uid, resourceVersion), which names exactly one state.
        """
        docs = await self.storage.list(
            cls.resource_info.plural, selector=selector, limit=limit, after=after
        )
        return [(doc["metadata"]["name"], self.wire(cls, doc, api_version)) for doc in docs]

    async def list_versions(self, cls: type[R], id: str) -> builtins.list[Document]:
        obj = await self.get(cls, id)
        return await self.storage.list_versions(cls.resource_info.plural, obj.uid)

    async def get_version(self, cls: type[R], id: str, version_id: str) -> Document:
        obj = await self.get(cls, id)
        return await self.storage.get_version(cls.resource_info.plural, obj.uid, version_id)

    async def delete_version(self, cls: type[R], id: str, version_id: str) -> None:
        obj = await self.get(cls, id)
        await self.storage.delete_version(cls.resource_info.plural, obj.uid, version_id)

    # -- writes --------------------------------------------------------------------------

    async def create(
        self,
        cls: type[R],
        name: str,
        spec: Any,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        owner_references: builtins.list[OwnerReference] | None = None,
        finalizers: builtins.list[str] | None = None,
        dry_run: bool = False,
    ) -> R:
        """Store a new `cls`; with `dry_run`, everything but the storing (and the events):
        the answer is what would be stored."""
        info = cls.resource_info
        if info.is_uid(name):  # a lookup by id would find another resource by its uid
            raise ValueError(f"{info.kind} name {name!r} has the shape of a uid")
        now = self.clock()
        metadata = Metadata(name=name, labels=labels or {}, annotations=annotations or {},
                            created_at=now, updated_at=now, generation=1,
                            owner_references=owner_references or [],
                            finalizers=finalizers or [])
        check_metadata(metadata)  # its shape first, then what it names (a 400 before a 422)
        if owner_references:
            await check_owners(self.storage, self.kinds, owner_references)
        status = info.status_type()
        if info.versioning:
            status.version = _FIRST_VERSION  # type: ignore[attr-defined]
        for attempt in range(_UID_ATTEMPTS):
            obj = cls(
                metadata=metadata.model_copy(update={"uid": new_uid(info.prefix)}),
                spec=spec,
                status=status,
            )
            obj = await self._admit_create(obj, dry_run)
            if dry_run:
                await self._check_unique(obj)
                return obj
            snapshot = _snapshot(obj, _FIRST_VERSION, now) if info.versioning else None
            events = self._events(lambda doc, obj=obj: Change(  # type: ignore[misc]
                "created", _with_stored_version(obj, doc)))
            document = _dump(obj)
            try:
                options: dict[str, Any] = {**events, **_keys(info.rules, document)}
                doc = await self.storage.create(
                    info.plural, seal_document(self.encryption, cls, document), snapshot,
                    **options)
            except AlreadyExists as exc:
                if exc.field == "uid" and attempt + 1 < _UID_ATTEMPTS:
                    continue  # a random uid collided: draw another, never overwrite
                raise
            created = _with_stored_version(obj, doc)
            await self._notify(Change("created", created), events)
            return created
        raise AssertionError("unreachable")

    async def create_many(self, children: Sequence[NewResource]) -> builtins.list[AnyResource]:
        """Create many resources of one kind in one storage write: one transaction on SQL,
        one batch on files; each child validated, admitted, given its unique keys and
        events as by `create`, all before anything is written. `CreateManyError` names the
        first child that cannot be created (by index and name), and then none is."""
        from ._create_many import create_many  # (it builds on this module's helpers)

        return await create_many(self, children)

    async def update_status_many(self, objs: Sequence[R]) -> builtins.list[R]:
        """Write the status of many resources of one kind in one storage write: one
        transaction on SQL; each checked as by `update_status` (compare-and-swap on its
        resourceVersion, the kind's hook) before anything is written, and published.
        `Conflict` or `NotFound` for the first that cannot be written, and then none is
        (on SQL)."""
        from ._update_many import update_status_many  # (it builds on this module's helpers)

        return await update_status_many(self, objs)  # type: ignore[return-value]

    async def modify(
        self,
        cls: type[R],
        id: str,
        change: Callable[[R], R | None],
        *,
        part: Part = "main",
        precondition: Callable[[R], None] | None = None,
        expected_version: str | None = None,
        action: Action = "updated",
        attempts: int = DEFAULT_ATTEMPTS,
        dry_run: bool = False,
    ) -> R:
        """Change the resource `id` (uid or name) with `change`, retrying on conflicts.

        `change` gets the current state and returns the wanted one, or None for "nothing
        to do" (no write, no event); from what it returns, `part` ``"main"`` takes spec,
        labels, annotations, owners and finalizers, ``"status"`` the status. After `change`
        (its errors come first) `precondition` may refuse the current state, and a current
        resourceVersion other than `expected_version` is a `Conflict` at once. Another
        writer winning the compare-and-swap means read and try again, `attempts` times
        in all, then `Conflict`. Returns the resource as stored (or as it was, unchanged).
        The kind's admission hook runs on each attempt, after those checks and before the
        compare-and-swap. With `dry_run` the answer is what would be stored, and nothing is.
        """
        commit = self._commit_status if part == "status" else self._commit_main
        async with self._locks.hold((cls.resource_info.plural, id)):
            for attempt in range(attempts):
                current = await self.get(cls, id)
                _check(current, None, expected_version)
                stored = _metadata_copy(current.metadata)  # (`change` may mutate current)
                hooks = self._hooks.get(cls)
                old = current.model_copy(deep=True) if hooks is not None else None
                rules = cls.resource_info.rules
                before = _dump(current) if part == "main" and rules.immutable else None
                # Then the change: a request wrong in itself is answered as such whatever
                # its precondition (RFC 9110 13.2.1: a 400 before a 412).
                wanted = change(current)
                _check(current, precondition, None)
                if wanted is None:
                    return current
                if before is not None:
                    check_immutable(cls.resource_info.kind, rules, before, _dump(wanted))
                if part == "main":  # (a status write keeps the stored metadata)
                    await self._check_main(wanted, stored)
                if hooks is not None and old is not None:
                    admitted = await run_admit(hooks, self._context(
                        _operation(part, action), dry_run), wanted, old, self._hook_spans)
                    if admitted is not wanted and part == "main":
                        await self._check_main(admitted, stored)  # the hook's, as any write
                        if before is not None:
                            check_immutable(cls.resource_info.kind, rules, before,
                                            _dump(admitted))
                    wanted = admitted
                if dry_run:
                    if part == "main":
                        await self._check_unique(wanted)
                    return await commit(current, wanted, action, dry_run=True)
                try:
                    return await commit(current, wanted, action)
                except Conflict:
                    if attempt + 1 >= attempts:
                        raise
                await _backoff(attempt)
        raise AssertionError("unreachable")

    async def update(self, obj: R, *, action: Action = "updated") -> R:
        """Write `obj`'s spec and metadata (labels, annotations, owners, finalizers).

        `obj`'s resourceVersion must be the stored one (compare-and-swap), or `Conflict`.
        """
        return await self.modify(type(obj), obj.uid, lambda current: obj, action=action,
                                 expected_version=obj.metadata.resource_version, attempts=1)

    async def update_status(self, obj: R, *, action: Action = "updated") -> R:
        """Write `obj`'s status only; spec and generation stay as stored. CAS as `update`."""
        return await self.modify(type(obj), obj.uid, lambda current: obj, part="status",
                                 action=action, attempts=1,
                                 expected_version=obj.metadata.resource_version)

    async def delete(
        self,
        cls: type[R],
        id: str,
        expected_version: str | None = None,
        *,
        precondition: Callable[[R], None] | None = None,
        attempts: int = DEFAULT_ATTEMPTS,
        dry_run: bool = False,
    ) -> R:
        """Remove the resource, or, while it has finalizers, mark it for deletion.

        Preconditions, hooks and retries as `modify`. Returns the removed resource, or the
        marked one (its ``deletionTimestamp`` set); with `dry_run`, what it would be.
        """
        async with self._locks.hold((cls.resource_info.plural, id)):
            for attempt in range(attempts):
                obj = await self.get(cls, id)
                _check(obj, precondition, expected_version)
                hooks = self._delete_hooks.get(cls)
                if hooks is not None:
                    await run_admit_delete(hooks, self._context("delete", dry_run),
                                           obj.model_copy(deep=True), self._hook_spans)
                if dry_run:
                    return self._marked(obj) if _marks_only(obj) else obj
                try:
                    return await self._delete(obj)
                except Conflict:
                    if attempt + 1 >= attempts:
                        raise
                await _backoff(attempt)
        raise AssertionError("unreachable")

    # -- internals -----------------------------------------------------------------------

    async def _check_unique(self, obj: AnyResource) -> None:
        """A dry run's uniqueness: `AlreadyExists` if another resource holds a value `obj`
        would hold (a real write holds them atomically instead)."""
        rules = obj.resource_info.rules
        if rules.unique:
            await self.storage.check_unique(obj.resource_info.plural, obj.uid,
                                            unique_keys(rules, _dump(obj)))

    def _context(self, operation: Operation, dry_run: bool) -> WriteContext:
        return WriteContext(self, operation, Actor(current_actor(), current_roles()), dry_run)

    async def _admit_create(self, obj: R, dry_run: bool) -> R:
        """`obj` as its kind's hook admits it: what the hook may change of a new resource
        is its spec, labels, annotations, owners and finalizers, checked again as a
        client's are; its name, uid and timestamps stay the store's."""
        hooks = self._hooks.get(type(obj))
        if hooks is None:
            return obj
        admitted = await run_admit(hooks, self._context("create", dry_run), obj, None,
                                   self._hook_spans)
        if admitted is obj:
            return obj
        mine = obj.metadata
        theirs = admitted.metadata
        metadata = mine.model_copy(update={
            "labels": dict(theirs.labels), "annotations": dict(theirs.annotations),
            "owner_references": list(theirs.owner_references),
            "finalizers": list(theirs.finalizers)})
        check_metadata(metadata)
        await check_owners(self.storage, self.kinds, metadata.owner_references,
                           mine.owner_references)
        return obj.model_copy(update={"spec": admitted.spec, "metadata": metadata})

    async def _check_main(self, wanted: AnyResource, stored: Metadata) -> None:
        check_metadata(wanted.metadata, stored)
        await check_owners(self.storage, self.kinds, wanted.metadata.owner_references,
                           stored.owner_references)

    async def _commit_main(self, current: R, obj: R, action: Action, *,
                           dry_run: bool = False) -> R:
        spec_changed = _dump_model(current.spec) != _dump_model(obj.spec)
        now = self.clock()
        wanted = obj.metadata
        new = current.model_copy(
            update={
                "spec": obj.spec,
                "metadata": current.metadata.model_copy(
                    update={
                        "labels": dict(wanted.labels),
                        "annotations": dict(wanted.annotations),
                        "owner_references": list(wanted.owner_references),
                        "finalizers": list(wanted.finalizers),
                        "generation": current.metadata.generation + int(spec_changed),
                        "updated_at": now,
                    }
                ),
            }
        )
        snapshot = None
        if spec_changed and obj.resource_info.versioning:
            version_id = _next_version_id(current.status.version)
            new.status = current.status.model_copy(update={"version": version_id})
            snapshot = _snapshot(new, version_id, now)
        update_type: UpdateType = "spec" if spec_changed else "metadata"
        if dry_run:
            return new
        # Unique keys whatever `spec_changed` says: a change may have edited the current
        # object in place; the storage compares them with what the resource holds.
        rules = obj.resource_info.rules
        keys = _keys(rules, _dump(new)) if rules.unique else {}
        return await self._swap(current, new, action, update_type, snapshot, keys)

    async def _commit_status(self, current: R, obj: R, action: Action, *,
                             dry_run: bool = False) -> R:
        status = obj.status
        if obj.resource_info.versioning:  # only spec writes move the spec version
            status = status.model_copy(update={"version": current.status.version})
        new = current.model_copy(
            update={
                "status": status,
                "metadata": current.metadata.model_copy(update={"updated_at": self.clock()}),
            }
        )
        if dry_run:
            return new
        return await self._swap(current, new, action, "status")

    async def _delete(self, obj: R) -> R:
        if not obj.metadata.finalizers:
            return await self._remove(obj)
        if obj.metadata.deletion_timestamp is not None:
            return obj  # already marked: the finalizers' owners are at work
        return await self._swap(obj, self._marked(obj), "updated", "metadata")

    def _marked(self, obj: R) -> R:
        """`obj` marked for deletion (it has finalizers)."""
        now = self.clock()
        return obj.model_copy(update={"metadata": obj.metadata.model_copy(
            update={"deletion_timestamp": now, "updated_at": now})})

    async def _remove(self, obj: R) -> R:
        cls = type(obj)
        events = self._events(lambda doc: Change("deleted", self._load(cls, doc)))
        doc = await self.storage.delete(
            obj.resource_info.plural, obj.uid, obj.metadata.resource_version, **events
        )
        removed = self._load(type(obj), doc)
        await self._notify(Change("deleted", removed), events)
        return removed

    async def _swap(
        self,
        current: R,
        new: R,
        action: Action,
        update_type: UpdateType,
        snapshot: Document | None = None,
        unique: dict[str, Any] | None = None,
    ) -> R:
        """`unique`: the ``unique=`` argument of the storage write, when its keys may
        change (a spec write of a kind with unique fields)."""
        events = self._events(lambda doc: Change(
            action, _with_stored_version(new, doc), current, update_type))
        options: dict[str, Any] = {**events, **(unique or {})}
        doc = await self.storage.update(
            current.resource_info.plural, self._dump(new), current.metadata.resource_version,
            snapshot, **options)
        stored = _with_stored_version(new, doc)
        await self._notify(Change(action, stored, current, update_type), events)
        if stored.metadata.deletion_timestamp is not None and not stored.metadata.finalizers:
            try:  # the last finalizer is gone: now the resource goes
                await self._remove(stored)
            except (Conflict, NotFound):
                pass  # someone else moved first; they finish the deletion
        return stored

    def _load(self, cls: type[R], doc: Document) -> R:
        """A stored document as an object of its kind, in the storage API version, its
        sensitive values decrypted."""
        doc = open_document(self.encryption, cls, doc)
        return cls.model_validate(self.api_versions.of(cls).upgrade(doc))

    def _dump(self, obj: AnyResource) -> Document:
        return seal_document(self.encryption, type(obj), _dump(obj))

    def _render(self, cls: type[AnyResource], doc: Document, api_version: str) -> bytes:
        """What readers get: without sensitive values."""
        obj = self._load(cls, doc)
        shown = self.api_versions.of(cls).to_version(obj, api_version)
        return shown.model_dump_json(exclude=sensitive_exclude(type(shown))).encode()

    def _events(self, change: Callable[[Document], Change]) -> dict[str, Outbox]:
        """The ``outbox=`` argument of a storage write: its events, built from the document
        as stored, recorded in the write's own transaction. Empty without an outbox."""
        messages = self._outbox
        if messages is None:
            return {}
        return {"outbox": lambda doc: messages(change(doc))}

    async def _notify(self, change: Change, events: dict[str, Outbox] | None = None) -> None:
        if events and self._on_recorded is not None:
            self._on_recorded()
        for listener in self._listeners:
            try:
                await listener(change)
            except Exception:  # a listener must never undo or fail a committed write
                log.exception("change listener %r failed on %s %s", listener, change.action,
                              change.resource.uid)


def _check(current: R, precondition: Callable[[R], None] | None, expected: str | None) -> None:
    if precondition is not None:
        precondition(current)
    actual = current.metadata.resource_version
    if expected is not None and expected != actual:
        info = current.resource_info
        raise Conflict(info.plural, current.uid, expected, actual)


def _operation(part: Part, action: Action) -> Operation:
    if part == "status":
        return "status"
    return "patch" if action == "patched" else "update"


def _marks_only(obj: AnyResource) -> bool:
    """Whether deleting `obj` now only marks it (it has finalizers, not yet marked)."""
    return bool(obj.metadata.finalizers) and obj.metadata.deletion_timestamp is None


async def _backoff(attempt: int) -> None:
    """A short random pause, growing with the attempt, so racing processes spread out."""
    await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))


def _metadata_copy(metadata: Metadata) -> Metadata:
    """What `modify` compares a change's metadata with: its containers copied, so a change
    that edits them in place still shows as a change (and is checked)."""
    return metadata.model_copy(update={
        "labels": dict(metadata.labels),
        "annotations": dict(metadata.annotations),
        "finalizers": list(metadata.finalizers),
        "owner_references": [ref.model_copy() for ref in metadata.owner_references],
    })


def _keys(rules: KindRules, document: Document) -> dict[str, Any]:
    """The ``unique=`` argument of a storage write of `document`: none for a kind without
    unique fields (so a storage without them is never asked)."""
    return {"unique": unique_keys(rules, document)} if rules.unique else {}


def _with_stored_version(obj: R, doc: Document) -> R:
    """`obj` as stored: the backend only added its resourceVersion to what we gave it, so
    there is nothing to validate again."""
    version = doc["metadata"]["resourceVersion"]
    metadata = obj.metadata.model_copy(update={"resource_version": version})
    return obj.model_copy(update={"metadata": metadata})


def _dump(obj: AnyResource) -> Document:
    """The document to store; `InvalidText` if any string in it is not valid Unicode (a
    reconciler's too, not only what the API checked on the way in)."""
    doc = obj.model_dump(mode="json", by_alias=True)
    check_text(doc)
    return doc


def _dump_model(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True)


def _snapshot(obj: AnyResource, version_id: str, at: datetime) -> Document:
    """An immutable record of one spec version (Fabrica's spec history)."""
    meta = obj.metadata
    return {
        "versionId": version_id,
        "createdAt": at.isoformat().replace("+00:00", "Z"),
        "uid": meta.uid,
        "name": meta.name,
        "labels": dict(meta.labels),
        "annotations": dict(meta.annotations),
        "spec": redact_spec(type(obj.spec), _dump_model(obj.spec)),  # history is read
        "schemaVersion": obj.resource_info.version,  # the API version its spec is in
    }


def _next_version_id(current: str) -> str:
    number = int(current[1:]) if current[:1] == "v" and current[1:].isdigit() else 0
    return f"v{number + 1}"


async def read_document(storage: Storage, cls: type[AnyResource], id: str) -> Document:
    """A `cls` document by uid, or by name: a name may look like a uid, so a uid miss tries
    the name (the store's reads and the watch cache's reads from storage alike)."""
    info = cls.resource_info
    if info.is_uid(id):
        try:
            return await storage.get(info.plural, id)
        except NotFound:
            pass
    if not is_dns1123_subdomain(id):
        raise NotFound(info.plural, id)
    return await storage.get_by_name(info.plural, id)


class _WireCache:
    """(uid, resourceVersion, API version) → the resource's wire JSON, least recently used
    first out. Conversions are functions of the stored state, so their output caches too."""

    def __init__(self, capacity: int,
                 render: Callable[[type[AnyResource], Document, str], bytes]) -> None:
        self.capacity = capacity
        self._render = render
        self._entries: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()

    def encode(self, cls: type[AnyResource], doc: Document, api_version: str) -> bytes:
        meta = doc["metadata"]
        key = (meta["uid"], meta["resourceVersion"], api_version)
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            return cached
        encoded = self._render(cls, doc, api_version)
        self._entries[key] = encoded
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return encoded
