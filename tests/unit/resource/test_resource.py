from datetime import UTC, datetime, timedelta

import pytest
from pydantic import Field

from fabrica import Condition, Metadata, Model, Resource, set_condition
from fabrica.resource import (
    find_condition,
    is_condition_true,
    is_dns1123_subdomain,
    new_uid,
    pluralize,
    remove_condition,
)


class SampleSpec(Model):
    ip_address: str = Field(alias="ipAddress")
    error_count: int = 0
    explicit: str = Field("x", alias="EXPLICIT_name")


class SampleStatus(Model):
    phase: str = ""


class Sample(Resource[SampleSpec, SampleStatus], prefix="smp"):
    """A sample kind."""


def test_model_uses_camel_case_and_explicit_alias_wins():
    spec = SampleSpec(ip_address="10.0.0.1", error_count=2)
    assert spec.model_dump(mode="json") == {
        "ipAddress": "10.0.0.1", "errorCount": 2, "EXPLICIT_name": "x",
    }


def test_model_accepts_both_names():
    by_alias = SampleSpec.model_validate({"ipAddress": "a", "errorCount": 1})
    by_name = SampleSpec.model_validate({"ip_address": "a", "error_count": 1})
    assert by_alias == by_name


def test_resource_info_from_class_keywords():
    info = Sample.resource_info
    assert (info.kind, info.prefix, info.plural, info.versioning) == ("Sample", "smp", "samples",
                                                                       False)
    assert info.spec_type is SampleSpec and info.status_type is SampleStatus
    assert info.description == "A sample kind."
    assert info.singular == "sample"


def test_resource_defaults_for_prefix_and_plural():
    class RackTemplate(Resource[SampleSpec, SampleStatus]):
        pass

    class VersionedStatus(Model):
        version: str = ""

    class Policy(Resource[SampleSpec, VersionedStatus], plural="policyset", versioning=True):
        pass

    assert RackTemplate.resource_info.prefix == "racktemplate"[:6]
    assert RackTemplate.resource_info.plural == "racktemplates"
    assert Policy.resource_info.plural == "policyset"
    assert Policy.resource_info.versioning is True


@pytest.mark.parametrize("word, plural", [
    ("chassis", "chassis"), ("policy", "policies"), ("bmc", "bmcs"), ("node", "nodes"),
    ("switch", "switches"), ("racktemplate", "racktemplates"), ("blade", "blades"),
])
def test_pluralize(word, plural):
    assert pluralize(word) == plural


def test_invalid_prefix_is_refused_at_definition():
    with pytest.raises(TypeError, match="prefix"):
        class Bad(Resource[SampleSpec, SampleStatus], prefix="Bad-Prefix"):
            pass


def test_status_without_defaults_is_refused_at_definition():
    class NeedyStatus(Model):
        required: str

    with pytest.raises(TypeError, match="needs a default"):
        class Needy(Resource[SampleSpec, NeedyStatus]):
            pass


def test_kind_defaults_to_class_name_and_serialises_as_spec_says():
    obj = Sample(metadata=Metadata(name="a"), spec=SampleSpec(ip_address="x"),
                 status=SampleStatus())
    dumped = obj.model_dump(mode="json")
    assert dumped["kind"] == "Sample"
    assert list(dumped) == ["apiVersion", "kind", "schemaVersion", "metadata", "spec", "status"]
    assert set(dumped["metadata"]) == {"name", "uid", "labels", "annotations", "createdAt",
                                       "updatedAt", "resourceVersion", "generation"}


def test_uid_format():
    uid = new_uid("dev")
    assert Sample.resource_info.is_uid("smp-0123abcd")
    assert not Sample.resource_info.is_uid("dev-0123abcd")
    assert uid.startswith("dev-") and len(uid) == 12


@pytest.mark.parametrize("name, ok", [
    ("web-01", True), ("a.b.c", True), ("a", True), ("Web", False), ("-a", False),
    ("a-", False), ("a..b", False), ("../x", False), ("a/b", False), ("", False),
    ("a" * 253, True), ("a" * 254, False),
])
def test_dns1123(name, ok):
    assert is_dns1123_subdomain(name) is ok


def test_condition_transition_time_moves_only_on_status_change():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    conditions: list[Condition] = []
    assert set_condition(conditions, "Ready", False, "Pending", now=t0)
    later = t0 + timedelta(minutes=1)
    assert not set_condition(conditions, "Ready", "False", "StillPending", "msg", 2, now=later)
    ready = find_condition(conditions, "Ready")
    assert ready is not None
    assert ready.last_transition_time == t0
    assert (ready.reason, ready.message, ready.observed_generation) == ("StillPending", "msg", 2)
    assert set_condition(conditions, "Ready", True, "Done", now=later)
    assert ready.last_transition_time == later and is_condition_true(conditions, "Ready")
    assert remove_condition(conditions, "Ready") and conditions == []
