"""``serve`` options that are refused before anything starts, and their value types."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fabrica import ServiceSettings
from fabrica.server.process._cli import service_cli
from fabrica.server.process._units import byte_size, duration
from tests._support.app import Device

SETTINGS = ServiceSettings(project="svc", package="svc", events=True)


def serve(tmp_path, *args: str, env: dict[str, str] | None = None):
    cli = service_cli([Device], SETTINGS)
    return CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path), *args], env=env)


@pytest.mark.parametrize("text, seconds", [
    ("90", 90.0), ("90s", 90.0), ("250ms", 0.25), ("15m", 900.0), ("24h", 86400.0),
    ("7d", 604800.0), ("0", 0.0), ("1.5h", 5400.0)])
def test_durations(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize("text, size", [
    ("1024", 1024), ("1KB", 1000), ("1KiB", 1024), ("512MiB", 512 << 20), ("1GiB", 1 << 30),
    ("2gb", 2_000_000_000), ("0", 0)])
def test_sizes(text, size):
    assert byte_size(text) == size


@pytest.mark.parametrize("bad", ["-1", "7 weeks", "h", ""])
def test_bad_durations_and_sizes_say_how_to_write_them(bad):
    with pytest.raises(ValueError, match="is not a duration"):
        duration(bad)
    with pytest.raises(ValueError, match="is not a size"):
        byte_size(bad)


@pytest.mark.parametrize("args, message", [
    (["--event-prefix", "io..x"], "Invalid value for --event-prefix"),
    (["--event-prefix", "io.*"], "'*' and '>' are NATS wildcards"),
    (["--events-bus", "nats", "--nats-stream", "a.b"], "invalid JetStream stream name"),
    (["--nats-stream-max-age", "soon"], "is not a duration"),
    (["--nats-stream-max-bytes", "lots"], "is not a size"),
])
def test_bad_event_options_are_refused_before_serving(tmp_path, args, message):
    result = serve(tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_event_options_read_environment_variables(tmp_path):
    result = serve(tmp_path, env={"SVC_EVENT_PREFIX": "bad prefix"})
    assert result.exit_code == 2
    assert "--event-prefix" in result.output


@pytest.mark.parametrize("args, message", [
    (["--workers", "2"], "--workers 2 needs --events-bus nats"),
    (["--role", "controller"], "--role controller needs --events-bus nats"),
    (["--role", "api"], "--role api needs --events-bus nats"),
    (["--role", "boss"], "'boss' is not one of 'all', 'api', 'controller'"),
    (["--workers", "0"], "0 is not in the range"),
])
def test_several_processes_need_a_shared_bus(tmp_path, args, message):
    result = serve(tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_watch_options_reach_the_cache_and_the_storage(tmp_path, monkeypatch):
    """--watch-cache-size bounds the watch cache, --watch-history the storage's change log;
    both read their environment variables, as every serve option does."""
    served = []
    monkeypatch.setattr("fabrica.server.process._cli.run_app", lambda app, **kw: served.append(app))
    result = serve(tmp_path, "--watch-cache-size", "7",
                   env={"SVC_WATCH_HISTORY": "5", "SVC_EVENTS_BUS": "memory",
                        "SVC_WATCH_MEMORY": "64MiB"})
    assert result.exit_code == 0, result.output
    (app,) = served
    assert app.state.service.watch_cache.settings.max_objects == 7
    assert app.state.service.watch_cache.memory.limit == 64 << 20
    assert app.state.service.store.storage.inner._changes.history == 5


def test_watch_options_are_checked(tmp_path):
    for option, bad in (("--watch-cache-size", "-1"), ("--watch-history", "-1"),
                        ("--watch-memory", "0"), ("--watch-memory", "lots")):
        result = serve(tmp_path, option, bad)
        assert result.exit_code == 2 and option in result.output


def test_a_controller_process_serves_its_probes_without_starlette(tmp_path, monkeypatch):
    """``--role controller`` runs the service under a plain ASGI app (`probe_app`), not a
    Starlette application; the other roles serve the API, the service on ``app.state``."""
    from starlette.applications import Starlette

    served = []
    monkeypatch.setattr("fabrica.server.process._cli.run_app", lambda app, **kw: served.append(app))
    quiet = ServiceSettings(project="quiet", package="quiet")  # no events: any role alone
    for role in ("controller", "api"):
        result = CliRunner().invoke(service_cli([Device], quiet),
                                    ["serve", "--data-dir", str(tmp_path), "--role", role])
        assert result.exit_code == 0, result.output
    probes, api = served
    assert not isinstance(probes, Starlette) and isinstance(api, Starlette)
    assert api.state.service.role == "api"


def test_kafka_options_read_environment_variables(tmp_path):
    result = serve(tmp_path, env={"SVC_EVENTS_BUS": "kafka", "SVC_KAFKA_TOPIC": "no/slash"})
    assert result.exit_code == 2
    assert "--kafka-topic" in result.output and "not a Kafka topic" in result.output
    result = serve(tmp_path, "--events-bus", "kafka", env={"SVC_KAFKA_PARTITIONS": "0"})
    assert result.exit_code == 2 and "--kafka-partitions" in result.output
