"""``python -m PKG.client``: the generated command-line client of a fabrica service.

One sub-command per kind (the lower-case kind), one verb per API operation::

    python -m PKG.client [--server URL] [--token JWT] KIND VERB [ARGS] [-o table|json|yaml]

It speaks to the server through `RawClient`, so ``-o json`` prints the server's JSON exactly
and request bodies (``--spec``, ``-f``) pass through unchanged: flat Fabrica bodies and
Kubernetes envelopes both work, and the server alone decides what is valid. Server errors
print the server's message and field details to stderr and exit 1; mistakes in the command
itself are usage errors (exit 2). Where the project has events on, ``--watch-events`` tails
``GET /events`` (alone: every event; after ``KIND list``: the list, then that kind's changes,
with no gap between them since the list is read once the server has subscribed).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import IO, Any

import click
import httpx

from .._settings import ServiceSettings
from .._version import __version__
from ..events import ResourceEvent
from ..resource import (
    ApiVersionTable,
    Resource,
    Selector,
    SelectorError,
    ServedVersion,
    Verb,
    is_valid_version,
    parse_selector,
)
from ._cli_input import load_body, load_json, shorthand_patch
from ._cli_watch import watch_rows
from ._errors import ConnectionFailed, FabricaError, Forbidden, Unauthorized
from ._output import FORMATS, echo_data, echo_table, key_value_table, resource_table, rows_table
from ._raw import DEFAULT_SERVER, DEFAULT_TIMEOUT, RawClient

__all__ = ["client_cli", "main"]

Kind = type[Resource[Any, Any]]

_ROOT_HELP = """\
Command-line client of {project}{description}.

\b
KIND VERB [ARGS] [-o table|json|yaml], with KIND one of: {kinds}.
  list [-l SELECTOR] [--limit N]   all resources (every page), optionally by label;
                                   -w/--watch: then one row per change, until Ctrl-C
  get ID                           one resource, by uid or name
  create --spec JSON | -f FILE     a flat body ({{"name": ..., spec fields}}) or an envelope
  update ID --spec JSON | -f FILE  replace the spec (and labels/annotations, if given)
  patch ID --spec JSON             merge patch of the spec; or --json-patch JSON,
                                   or --set a.b=VALUE / --unset a.b (repeatable)
  delete ID
  status ID                        show the status; --replace JSON (or -f FILE) replaces it,
                                   --merge / --json-patch / --set / --unset patch it
  versions ID [VERSION]            spec history (kinds with versioning), or one version

{events}ID is a uid or a name. --set values are JSON when they parse (8443, true, {{"a": 1}}) and
strings otherwise. Default output: a table when reading (list, get, status, delete,
versions), the server's JSON after a write (create, update, patch, status changes).
"""
_EVENTS_HELP = """\
Events are on: --watch-events (before any KIND) tails every event the service publishes
({prefix}.KIND.ACTION; narrow with --event-type PATTERN); KIND list --watch-events lists,
then follows that kind's changes. -o json prints one CloudEvent JSON per line.

"""


def main(
    kinds: Sequence[Kind],
    settings: ServiceSettings,
    argv: Sequence[str] | None = None,
    versions: Sequence[type[ServedVersion[Any, Any]]] = (),
) -> None:
    """Run the client command line for `kinds` (what ``PKG/client/__main__.py`` calls);
    `versions` are the other API versions they serve, for ``--api-version``'s help."""
    client_cli(kinds, settings, versions=versions).main(
        args=list(argv) if argv is not None else None,
        prog_name=f"python -m {settings.package}.client",
    )


@dataclass
class _Session:
    """What the top-level options decided, shared by every verb of one invocation."""

    server: str
    kinds: Sequence[Kind]
    timeout: float
    retries: int
    output: str | None
    transport: httpx.BaseTransport | None = None
    hint: str = ""  # what to say when the server cannot be reached
    api_version: str | None = None
    token: str | None = None
    env: str = ""
    _client: RawClient | None = field(default=None, repr=False)

    def client(self) -> RawClient:
        if self._client is None:
            self._client = RawClient(self.server, self.kinds, timeout=self.timeout,
                                     retries=self.retries, transport=self.transport,
                                     api_version=self.api_version, on_warning=_print_warning,
                                     token=self.token)
        return self._client

    def hint_for(self, error: FabricaError) -> str:
        if isinstance(error, ConnectionFailed):
            return self.hint
        if isinstance(error, Unauthorized):
            if self.token:
                return "The server refused the token given with --token / " \
                       f"{self.env}_TOKEN; get a fresh one from the token issuer."
            return f"This service needs a bearer token: give --token TOKEN or set {self.env}_TOKEN."
        if isinstance(error, Forbidden):
            return "The token is valid, but the service's policy does not allow this; ask " \
                   "for a role that does."
        return ""

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def fmt(self, option: str | None, default: str) -> str:
        return option or self.output or default


def _print_warning(text: str) -> None:
    """A server's ``Warning`` (a deprecated API version, an ignored field) goes to stderr,
    as kubectl shows them, so it never mixes into the output a script reads."""
    click.echo(f"Warning: {text}", err=True)


class _RequestFailed(click.ClickException):
    """A `FabricaError`, shown as the server worded it, with one line per failing field."""

    def __init__(self, error: FabricaError, hint: str) -> None:
        super().__init__(_describe(error, hint))
        self.details = error.details

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"Error: {self.message}", err=True)
        for detail in self.details:
            click.echo(f"  {detail.get('field', '')}: {detail.get('message', '')}", err=True)


def _describe(error: FabricaError, hint: str) -> str:
    if isinstance(error, ConnectionFailed):
        return f"{error.message}\n{hint}"
    try:
        phrase = f"{error.status} {HTTPStatus(error.status).phrase}"
    except ValueError:
        phrase = str(error.status)
    return f"{error.message} ({phrase})" + (f"\n{hint}" if hint else "")


class _Root(click.Group):
    """Turns any `FabricaError` a verb raises into a clean message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FabricaError as exc:
            hint = ctx.obj.hint_for(exc) if isinstance(ctx.obj, _Session) else ""
            raise _RequestFailed(exc, hint) from None


def client_cli(
    kinds: Sequence[Kind],
    settings: ServiceSettings,
    transport: httpx.BaseTransport | None = None,
    versions: Sequence[type[ServedVersion[Any, Any]]] = (),
) -> click.Group:
    """The click group behind `main`; `transport` replaces the network (tests, proxies)."""
    env = settings.env_prefix
    events_on = settings.events or settings.reconcile
    help_text = _ROOT_HELP.format(
        project=settings.project,
        description=f" ({settings.description})" if settings.description else "",
        kinds=", ".join(k.resource_info.singular for k in kinds
                        if k.resource_info.rules.served) or "none",
        events=_EVENTS_HELP.format(prefix=settings.event_prefix) if events_on else "",
    )

    @click.group(cls=_Root, help=help_text, invoke_without_command=events_on,
                 no_args_is_help=True)
    @click.option("--server", default=DEFAULT_SERVER, show_default=True, envvar=f"{env}_SERVER",
                  help=f"Base URL of the service [env {env}_SERVER].")
    @click.option("--token", default=None, envvar=f"{env}_TOKEN", metavar="JWT",
                  help=f"Bearer token, for services with auth on [env {env}_TOKEN].")
    @click.option("--timeout", default=DEFAULT_TIMEOUT, show_default=True, type=float,
                  envvar=f"{env}_TIMEOUT", help="Seconds to wait for each response.")
    @click.option("--retries", default=3, show_default=True, type=click.IntRange(0),
                  envvar=f"{env}_RETRIES",
                  help="Retries of GET/PUT/DELETE after connection errors.")
    @click.option("-o", "--output", type=click.Choice(FORMATS), default=None,
                  help="Output format for every verb (a verb's own -o wins).")
    @click.option("--api-version", metavar="VERSION", envvar=f"{env}_API_VERSION",
                  callback=_check_api_version, help="Read and write in this API version "
                  f"(default: each kind's default){_served_help(kinds, versions)} "
                  f"[env {env}_API_VERSION].")
    @click.version_option(__version__, prog_name="pyfabrica")
    @_events_options(events_on, root=True)
    @click.pass_context
    def cli(ctx: click.Context, /, server: str, token: str | None, timeout: float,
            retries: int, output: str | None, api_version: str | None, **watch: Any) -> None:
        session = _Session(_with_scheme(server), kinds, timeout, retries, output, transport,
                           hint=f"Is the service running? Point to it with --server URL or "
                           f"{env}_SERVER.", api_version=api_version, token=token or None,
                           env=env)
        ctx.obj = session
        ctx.call_on_close(session.close)
        if ctx.invoked_subcommand is not None:
            if watch.get("watch_events"):
                raise click.UsageError("--watch-events goes alone (every event) or after "
                                       "KIND list (the events of one kind)")
            return
        if not watch.get("watch_events"):
            raise click.UsageError("Missing command.")
        _follow_events(session, watch["event_type"], None, watch["max_events"], output)

    prefix = settings.event_prefix if events_on else None
    for cls in kinds:
        if cls.resource_info.rules.served:  # internal kinds have no HTTP routes
            cli.add_command(_kind_group(cls, prefix))
    cli.add_command(_health())
    cli.add_command(_ready())
    return cli


def _health() -> click.Command:
    @click.command("health", help="Is the service alive? Its /health answer (exit 1 when it "
                   "cannot be reached or does not answer 200).")
    @_output_option
    @click.pass_obj
    def command(session: _Session, output: str | None) -> None:
        _echo_probe(session.client().health(), session.fmt(output, "json"))

    return command


def _ready() -> click.Command:
    @click.command("ready", help="Is the service ready to serve? Its /ready checks; exit 1 "
                   "when it is not (or cannot be reached).")
    @_output_option
    @click.pass_obj
    def command(session: _Session, output: str | None) -> None:
        body = session.client().ready()
        _echo_probe(body, session.fmt(output, "json"))
        if body.get("status") != "ready":
            raise SystemExit(1)

    return command


def _echo_probe(body: dict[str, Any], fmt: str) -> None:
    if fmt != "table":
        echo_data(body, fmt)
        return
    checks = body.get("checks")  # /ready: its status, then one row per check
    echo_table(key_value_table({"status": body["status"], **checks} if checks else body))


def _check_api_version(ctx: click.Context, param: click.Parameter, value: str | None
                       ) -> str | None:
    if value is not None and not is_valid_version(value):
        raise click.BadParameter(f"{value!r} is not an API version like v1, v2beta1 or v3alpha2")
    return value


def _served_help(kinds: Sequence[Kind], versions: Sequence[type[ServedVersion[Any, Any]]]
                 ) -> str:
    table = ApiVersionTable(kinds, versions)
    served = [f"{k.resource_info.singular} {', '.join(table.of(k).names)}" for k in kinds
              if table.of(k).multiple]
    return f"; served: {'; '.join(served)}" if served else ""


def _with_scheme(server: str) -> str:
    """``localhost:8080`` → ``http://localhost:8080`` (httpx would take ``localhost`` for a
    scheme)."""
    return server if "://" in server else f"http://{server}"


def _kind_group(cls: Kind, event_prefix: str | None) -> click.Group:
    """The verbs of one kind; with events on (`event_prefix`), ``list --watch-events``."""
    info = cls.resource_info
    group = click.Group(info.singular, help=info.description or f"Manage {info.plural}.")
    rules = info.rules
    if rules.allows("list") or rules.allows("watch"):
        group.add_command(_list(cls, event_prefix))
    for verb, make in _VERBS:  # only the verbs the kind offers (its verbs=)
        if rules.allows(verb):
            group.add_command(make(cls))
    return group


# ---- options shared by several verbs -------------------------------------------------------

def _output_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-o", "--output", type=click.Choice(FORMATS), default=None,
                        help="Output format.")(f)


def _body_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("-f", "--file", "file", metavar="FILE",
                     help="Read the body from a JSON or YAML file; - is stdin.")(f)
    return click.option("--spec", metavar="JSON", help="The body as a JSON object.")(f)


def _if_match_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--if-match", metavar="VERSION",
                        help="Only if the resourceVersion is still VERSION (else 412).")(f)


def _patch_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--unset", "unsets", multiple=True, metavar="PATH",
                     help="Remove a field (shorthand patch); repeatable.")(f)
    f = click.option("--set", "sets", multiple=True, metavar="PATH=VALUE",
                     help="Set a field, e.g. --set port=8443 (shorthand patch); repeatable.")(f)
    return click.option("--json-patch", metavar="JSON",
                        help='RFC 6902 operations: [{"op": "replace", "path": ..., ...}].')(f)


def _choose_patch(
    merge: str | None, merge_option: str, json_patch: str | None,
    sets: Sequence[str], unsets: Sequence[str],
) -> tuple[Any, str] | None:
    """The one patch the options describe, with its type; None when none was given."""
    given = [merge is not None, json_patch is not None, bool(sets or unsets)]
    if sum(given) > 1:
        raise click.UsageError(f"give only one of {merge_option}, --json-patch, --set/--unset")
    if merge is not None:
        return load_json(merge, merge_option), "merge"
    if json_patch is not None:
        return load_json(json_patch, "--json-patch"), "json"
    if sets or unsets:
        return shorthand_patch(sets, unsets), "shorthand"
    return None


def _show_resources(session: _Session, data: Any, output: str | None, default: str) -> None:
    fmt = session.fmt(output, default)
    if fmt != "table":
        echo_data(data, fmt)
        return
    items = data if isinstance(data, list) else [data]
    if not items:
        click.echo("No resources found.", err=True)
        return
    echo_table(resource_table(items))


# ---- events ----------------------------------------------------------------------------------

def _events_options(enabled: bool, *, root: bool) -> Callable[[Callable[..., Any]], Any]:
    """``--watch-events`` and ``--max-events`` (and at the root ``--event-type``), only on
    services with events on."""
    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        if not enabled:
            return f
        f = click.option("--max-events", type=click.IntRange(1), metavar="N",
                         help="With --watch-events: stop after N events.")(f)
        if root:
            f = click.option("--event-type", default="**", show_default=True,
                             metavar="PATTERN",
                             help="With --watch-events: only these types (* matches one "
                             "segment, ** the rest).")(f)
        text = ("Tail GET /events: print every event the service publishes, until "
                "interrupted." if root else "After the list, follow this kind's changes "
                "(GET /events) until interrupted.")
        return click.option("--watch-events", is_flag=True, help=text)(f)
    return decorate


def _follow_events(
    session: _Session,
    pattern: str,
    selector: str | None,
    max_events: int | None,
    output: str | None,
    on_open: Callable[[], None] | None = None,
) -> None:
    """Print each event as it arrives: a line per event for people, JSON Lines or YAML
    documents for scripts. Ctrl-C ends it quietly."""
    wanted = _label_filter(selector)
    fmt = session.fmt(output, "table")
    shown = 0
    try:
        with contextlib.closing(session.client().watch_events(pattern, on_open)) as events:
            for event in events:
                if not wanted(event):
                    continue
                _echo_event(event, fmt)
                shown += 1
                if max_events is not None and shown >= max_events:
                    return
    except KeyboardInterrupt:
        return


def _check_selector(selector: str | None) -> Selector:
    try:
        return parse_selector(selector)
    except SelectorError as exc:
        raise click.BadParameter(str(exc), param_hint="-l/--selector") from None


def _label_filter(selector: str | None) -> Callable[[dict[str, Any]], bool]:
    if not selector:
        return lambda event: True
    parsed = _check_selector(selector)

    def matches(event: dict[str, Any]) -> bool:
        about = ResourceEvent.parse(event)
        return parsed.matches(about.labels if about is not None else {})

    return matches


def _echo_event(event: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(event, separators=(",", ":"), ensure_ascii=False))
    elif fmt == "yaml":
        click.echo("---")
        echo_data(event, "yaml")
    else:
        about = ResourceEvent.parse(event)
        name = about.name if about is not None else ""
        click.echo("  ".join(str(part) for part in (
            event.get("time", ""), event.get("type", ""), event.get("subject", ""), name)
            if part).rstrip())


# ---- the verbs -----------------------------------------------------------------------------

def _list(cls: Kind, event_prefix: str | None) -> click.Command:
    info = cls.resource_info
    watch_help = (" With --watch-events, then follow their changes as events (with -l, "
                  "of the matching ones) until interrupted." if event_prefix else "")

    @click.command("list", help=f"List {info.plural} (all pages).{watch_help}")
    @click.option("-l", "--selector", metavar="SELECTOR",
                  help="Label selector: k=v, k!=v, 'k in (a,b)', 'k notin (a)', k, !k.")
    @click.option("--field-selector", metavar="SELECTOR",
                  help=f"Field selector: f=v, f==v, f!=v, comma-separated; fields: "
                  f"{', '.join(info.rules.selectable)}.")
    @click.option("--limit", type=click.IntRange(1), help="Page size to request.")
    @click.option("-w", "--watch", "follow", is_flag=True,
                  help="Then follow the changes (GET ?watch=true), one row per change (-o json:"
                  " one watch event per line), until Ctrl-C or the server ends the watch; "
                  "reconnects and resumes after a broken connection.")
    @click.option("--watch-timeout", type=click.IntRange(1), metavar="SECONDS",
                  help="With --watch: ask the server to end the watch after SECONDS.")
    @_output_option
    @_events_options(event_prefix is not None, root=False)
    @click.pass_obj
    def command(session: _Session, /, selector: str | None, field_selector: str | None,
                limit: int | None, follow: bool, watch_timeout: int | None,
                output: str | None, **watch: Any) -> None:
        def show() -> None:
            _show_resources(session, session.client().list(
                cls, selector, limit, field_selector=field_selector), output, "table")

        if follow:
            if watch.get("watch_events"):
                raise click.UsageError("give --watch or --watch-events, not both")
            _check_selector(selector)
            watch_rows(session.client(), cls, selector, session.fmt(output, "table"),
                       watch_timeout, field_selector)
            return
        if field_selector and watch.get("watch_events"):
            # Events carry no field index to select by; --watch follows a field selection.
            raise click.UsageError("--field-selector goes with a list or --watch, not "
                                   "--watch-events")
        if not watch.get("watch_events"):
            show()
            return
        pattern = f"{event_prefix}.{info.singular}.*"
        _follow_events(session, pattern, selector, watch["max_events"], output, on_open=show)

    return command


def _get(cls: Kind) -> click.Command:
    @click.command("get", help=f"Show one {cls.resource_info.singular} by uid or name.")
    @click.argument("id")
    @_output_option
    @click.pass_obj
    def command(session: _Session, id: str, output: str | None) -> None:
        _show_resources(session, session.client().get(cls, id), output, "table")

    return command


def _create(cls: Kind) -> click.Command:
    @click.command("create", help=f"Create a {cls.resource_info.singular}: a flat body "
                   '{"name": ..., "labels": ..., SPEC FIELDS} or an envelope '
                   '{"metadata": {...}, "spec": {...}}.')
    @_body_options
    @_output_option
    @click.pass_obj
    def command(session: _Session, spec: str | None, file: str | None,
                output: str | None) -> None:
        created = session.client().create(cls, load_body(spec, file))
        _show_resources(session, created, output, "json")

    return command


def _update(cls: Kind) -> click.Command:
    @click.command("update", help=f"Replace a {cls.resource_info.singular}'s spec (flat or "
                   "envelope body); labels and annotations are replaced when given.")
    @click.argument("id")
    @_body_options
    @_if_match_option
    @_output_option
    @click.pass_obj
    def command(session: _Session, id: str, spec: str | None, file: str | None,
                if_match: str | None, output: str | None) -> None:
        updated = session.client().replace(cls, id, load_body(spec, file), if_match)
        _show_resources(session, updated, output, "json")

    return command


def _patch(cls: Kind) -> click.Command:
    @click.command("patch", help=f"Patch a {cls.resource_info.singular}'s spec: --spec JSON "
                   "(merge patch), --json-patch JSON, or --set/--unset.")
    @click.argument("id")
    @click.option("--spec", metavar="JSON", help="Merge patch (RFC 7386) of the spec.")
    @_patch_options
    @_if_match_option
    @_output_option
    @click.pass_obj
    def command(session: _Session, id: str, spec: str | None, json_patch: str | None,
                sets: tuple[str, ...], unsets: tuple[str, ...], if_match: str | None,
                output: str | None) -> None:
        chosen = _choose_patch(spec, "--spec", json_patch, sets, unsets)
        if chosen is None:
            raise click.UsageError("give the patch: --spec, --json-patch, --set or --unset")
        patched = session.client().patch(cls, id, chosen[0], chosen[1], if_match)
        _show_resources(session, patched, output, "json")

    return command


def _delete(cls: Kind) -> click.Command:
    @click.command("delete", help=f"Delete a {cls.resource_info.singular} by uid or name.")
    @click.argument("id")
    @_if_match_option
    @_output_option
    @click.pass_obj
    def command(session: _Session, id: str, if_match: str | None, output: str | None) -> None:
        result = session.client().delete(cls, id, if_match)
        fmt = session.fmt(output, "table")
        if fmt == "table":
            click.echo(f"{result.get('message', 'deleted')}: {result.get('uid', id)}")
        else:
            echo_data(result, fmt)

    return command


def _status(cls: Kind) -> click.Command:
    @click.command("status", help=f"Show a {cls.resource_info.singular}'s status; or replace "
                   "it (--replace JSON or -f FILE: the whole status object), or patch it "
                   "(--merge JSON, --json-patch JSON, --set PATH=VALUE, --unset PATH), as "
                   "`update` replaces and `patch` merges the spec. A change prints the "
                   "updated resource.")
    @click.argument("id")
    @click.option("--replace", "replacement", metavar="JSON",
                  help="The new status object, replacing the old one.")
    # Earlier releases called --replace --spec (or --status), although it replaces while
    # `patch --spec` merges: still accepted, no longer shown.
    @click.option("--spec", "--status", "old_replacement", metavar="JSON", hidden=True)
    @click.option("-f", "--file", "file", metavar="FILE",
                  help="Read the new status from a JSON or YAML file; - is stdin.")
    @click.option("--merge", metavar="JSON", help="Merge patch (RFC 7386) of the status.")
    @_patch_options
    @_if_match_option
    @_output_option
    @click.pass_obj
    def command(session: _Session, id: str, replacement: str | None,
                old_replacement: str | None, file: str | None, merge: str | None,
                json_patch: str | None, sets: tuple[str, ...], unsets: tuple[str, ...],
                if_match: str | None, output: str | None) -> None:
        client = session.client()
        if replacement is None:
            replacement = old_replacement
        patch = _choose_patch(merge, "--merge", json_patch, sets, unsets)
        if patch is not None and (replacement is not None or file is not None):
            raise click.UsageError("give either a new status (--replace/-f) or a patch, "
                                   "not both")
        if patch is not None:
            changed = client.patch_status(cls, id, patch[0], patch[1], if_match)
        elif replacement is not None or file is not None:
            changed = client.replace_status(cls, id, load_body(replacement, file), if_match)
        else:
            _show_status(session, client.get(cls, id), output)
            return
        _show_resources(session, changed, output, "json")

    return command


def _show_status(session: _Session, obj: dict[str, Any], output: str | None) -> None:
    status = obj.get("status") or {}
    fmt = session.fmt(output, "table")
    if fmt == "table":
        echo_table(key_value_table(status))
    else:
        echo_data(status, fmt)


def _versions(cls: Kind) -> click.Command:
    info = cls.resource_info

    @click.command("versions", help=f"List the spec history of a {info.singular}, or show "
                   "one VERSION of it (kinds declared with versioning=True).")
    @click.argument("id")
    @click.argument("version", required=False)
    @_output_option
    @click.pass_obj
    def command(session: _Session, id: str, version: str | None, output: str | None) -> None:
        if not info.versioning:
            raise click.UsageError(f"{info.singular} keeps no versions (it is not declared "
                                   "with versioning=True)")
        client = session.client()
        found = client.get_version(cls, id, version) if version else client.versions(cls, id)
        fmt = session.fmt(output, "json" if version else "table")
        if fmt == "table":
            echo_table(rows_table(found if isinstance(found, list) else [found]))
        else:
            echo_data(found, fmt)

    return command


_VERBS: tuple[tuple[Verb, Callable[[Kind], click.Command]], ...] = (
    ("get", _get), ("create", _create), ("update", _update), ("patch", _patch),
    ("delete", _delete), ("status", _status), ("versions", _versions),
)
