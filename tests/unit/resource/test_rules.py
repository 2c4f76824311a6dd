"""A kind's own rules (SPEC section 10) as read at class definition: markers on spec fields
and the class keywords unique=, verbs=, exposure=, max_body_size=."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import pytest
from pydantic import Field

from fabrica import Immutable, Indexed, Model, Resource, Sensitive, Unique
from fabrica.resource import ALL_VERBS, KindRules, field_value, unique_key


class Color(Enum):
    RED = "red"


class BMCSpec(Model):
    serial: Annotated[str, Unique(), Immutable()]
    mac: Annotated[str, Unique(), Indexed()]
    rack_uid: Annotated[str, Indexed()] = Field("", alias="rackUID")
    slot: int = 0
    color: Color = Color.RED
    password: Annotated[str, Sensitive()] = ""
    tags: list[str] = []


class BMCStatus(Model):
    phase: str = ""


class BMC(Resource[BMCSpec, BMCStatus], prefix="bmc",
          verbs=("list", "get", "watch", "create", "update", "patch", "delete", "status"),
          exposure="protected", unique=[("rackUID", "slot")], max_body_size="64KiB"):
    """The SPEC's example."""


class PlainSpec(Model):
    size: int = 0


class PlainStatus(Model):
    ready: bool = False


class Plain(Resource[PlainSpec, PlainStatus]):
    pass


def test_the_spec_example_reads_into_rules():
    rules = BMC.resource_info.rules
    assert rules.unique == (("spec.serial",), ("spec.mac",), ("spec.rackUID", "spec.slot"))
    assert rules.immutable == ("spec.serial",)
    assert rules.sensitive == ("spec.password",)
    assert rules.indexed == ("spec.mac", "spec.rackUID")
    assert "versions" not in rules.verbs and rules.allows("status")
    assert rules.exposure == "protected" and rules.served
    assert rules.max_body_size == 64 * 1024
    assert rules.selectable == ("metadata.name", "status.phase", "spec.mac", "spec.rackUID")


def test_a_kind_without_keywords_has_every_verb_and_no_rules():
    rules = Plain.resource_info.rules
    assert rules == KindRules()
    assert rules.verbs == frozenset(ALL_VERBS)
    assert rules.selectable == ("metadata.name",)  # no status.phase field
    assert rules.max_body_size is None


def declare(spec: type[Model], **keywords: object) -> type:
    class Kind(Resource[spec, PlainStatus], **keywords):  # type: ignore[valid-type, misc]
        pass

    return Kind


@pytest.mark.parametrize("keywords, message", [
    ({"verbs": ("get", "fly")}, "unknown verbs ['fly']"),
    ({"verbs": "get"}, "verbs= takes a list"),
    ({"exposure": "secret"}, "use one of protected, public, internal"),
    ({"max_body_size": "lots"}, "is not a size"),
    ({"max_body_size": 0}, "at least one byte"),
    ({"max_body_size": True}, "takes bytes or a size"),
    ({"unique": [("size", "nope")]}, "'nope', which is not a field of PlainSpec"),
    ({"unique": [("size", "size")]}, "names a field twice"),
    ({"unique": [()]}, "takes spec field names"),
    ({"unique": "size"}, "unique= takes a list"),
])
def test_bad_keywords_fail_at_class_definition(keywords, message):
    with pytest.raises(TypeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        declare(PlainSpec, **keywords)


def test_unique_keyword_accepts_python_names_json_names_and_single_fields():
    class Spec(Model):
        rack_uid: str = Field("", alias="rackUID")
        slot_number: int = 0

    kind = declare(Spec, unique=["rack_uid", ("rackUID", "slotNumber"), "spec.slotNumber"])
    assert kind.resource_info.rules.unique == (
        ("spec.rackUID",), ("spec.rackUID", "spec.slotNumber"), ("spec.slotNumber",))


def test_a_list_or_object_field_cannot_be_unique():
    class Listed(Model):
        tags: Annotated[list[str], Unique()] = []

    with pytest.raises(TypeError, match="spec.tags cannot be unique"):
        declare(Listed)

    class Nested(Model):
        inner: PlainSpec = PlainSpec()

    with pytest.raises(TypeError, match="spec.inner cannot be unique"):
        declare(Nested, unique=["inner"])


def test_optional_enum_and_literal_fields_can_be_unique():
    from typing import Literal

    class Spec(Model):
        a: Annotated[str | None, Unique()] = None
        b: Annotated[Color, Unique()] = Color.RED
        c: Annotated[Literal["x", "y"], Unique()] = "x"

    assert len(declare(Spec).resource_info.rules.unique) == 3


def test_a_marker_class_instead_of_an_instance_is_refused():
    class Spec(Model):
        serial: Annotated[str, Unique] = ""

    with pytest.raises(TypeError, match=r"write Unique\(\)"):
        declare(Spec)


def test_a_secret_cannot_be_unique_or_indexed():
    class Spec(Model):
        token: Annotated[str, Sensitive(), Indexed()] = ""

    with pytest.raises(TypeError, match="Sensitive and Indexed"):
        declare(Spec)


def test_public_and_internal_exposure():
    assert declare(PlainSpec, exposure="public").resource_info.rules.served
    assert not declare(PlainSpec, exposure="internal").resource_info.rules.served


def test_unique_key_normalises_unicode_and_skips_unset_values():
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert composed != decomposed
    assert unique_key([composed]) == unique_key([decomposed])
    assert unique_key(["a", 1]) != unique_key(["a", "1"])  # a number is not its text
    assert unique_key([""]) is None and unique_key([None]) is None
    assert unique_key(["rack-1", None]) is None


def test_field_value_reads_dotted_paths():
    doc = {"spec": {"rackUID": "r1", "slot": 0}, "status": {"phase": "Ready"}}
    assert field_value(doc, "spec.rackUID") == "r1"
    assert field_value(doc, "spec.slot") == 0
    assert field_value(doc, "status.phase") == "Ready"
    assert field_value(doc, "spec.missing") is None
    assert field_value(doc, "spec.rackUID.deeper") is None
