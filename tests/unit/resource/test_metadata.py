"""The metadata rules of the resource model: what `InvalidMetadata` says, field by field."""

from __future__ import annotations

import pytest

from fabrica.resource import (
    MAX_ANNOTATIONS_BYTES,
    InvalidMetadata,
    Metadata,
    OwnerReference,
    check_annotations,
    check_finalizers,
    check_labels,
    check_metadata,
    check_owner_references,
)


def causes(call, *args):
    with pytest.raises(InvalidMetadata) as refused:
        call(*args)
    assert isinstance(refused.value, ValueError)
    return refused.value.message, refused.value.causes


def test_none_means_not_given_and_valid_values_pass():
    assert check_labels(None) is None and check_annotations(None) is None
    assert check_finalizers(None) is None and check_owner_references(None) is None
    assert check_labels({"rack": "r1", "example.com/tier": ""}) == {
        "rack": "r1", "example.com/tier": ""}
    assert check_annotations({"example.com/note": "any text, spaces too!"}) == {
        "example.com/note": "any text, spaces too!"}


@pytest.mark.parametrize("value", [["a"], {"a": 1}, {1: "a"}, "a=b"])
def test_labels_and_annotations_must_map_strings_to_strings(value):
    for check, path in ((check_labels, "metadata.labels"),
                        (check_annotations, "metadata.annotations")):
        assert causes(check, value) == (f"invalid {path}",
                                        [(path, "must map strings to strings")])


def test_each_bad_annotation_key_is_a_cause_under_the_given_path():
    message, found = causes(check_annotations, {"no spaces": "x", "ok": "y", "/x": "z"},
                            "annotations")
    assert message == "invalid annotations"
    assert [field for field, _ in found] == ["annotations.no spaces", "annotations./x"]
    assert all(text.startswith("invalid key: ") for _, text in found)


def test_annotations_hold_at_most_256_kib_keys_and_values_together():
    key = "k"
    assert check_annotations({key: "x" * (MAX_ANNOTATIONS_BYTES - len(key))}) is not None
    assert causes(check_annotations, {key: "x" * (MAX_ANNOTATIONS_BYTES - len(key) + 1)}) == (
        "invalid metadata.annotations",
        [("metadata.annotations", "may hold at most 256 KiB")])


def test_label_values_are_checked_unlike_annotation_values():
    _, found = causes(check_labels, {"rack": "not a value"})
    assert found[0][0] == "metadata.labels.rack"
    assert found[0][1].startswith("invalid value: ")


@pytest.mark.parametrize("value", ["x", ["bad finalizer"], ["ok", 3], [""]])
def test_finalizers_are_a_list_of_qualified_names(value):
    assert causes(check_finalizers, value) == ("invalid metadata.finalizers", [
        ("metadata.finalizers",
         "must be a list of qualified names such as example.com/cleanup")])


def test_repeated_finalizers_are_kept_once_in_order():
    assert check_finalizers(["b.io/x", "a.io/y", "b.io/x"]) == ["b.io/x", "a.io/y"]


def test_owner_references_from_json_are_strict_and_name_each_field():
    assert causes(check_owner_references, {"a": 1}) == (
        "invalid metadata.ownerReferences", [("metadata.ownerReferences", "must be a list")])
    good = {"kind": "Device", "name": "root", "uid": "dev-0000abcd"}
    _, found = causes(check_owner_references, [good, {"kind": "Device"}])
    assert {field for field, _ in found} == {"metadata.ownerReferences.1.name",
                                             "metadata.ownerReferences.1.uid"}
    _, found = causes(check_owner_references, [{**good, "controller": "true"}])
    assert found == [("metadata.ownerReferences.0.controller", "Input should be a valid "
                      "boolean")]
    _, found = causes(check_owner_references, ["x"])
    assert found[0][0] == "metadata.ownerReferences.0"
    refs = check_owner_references([good])
    assert refs == [OwnerReference(kind="Device", name="root", uid="dev-0000abcd")]


def test_owner_references_built_in_python_are_checked_as_they_stand():
    ref = OwnerReference(kind="Device", name="root", uid="dev-0000abcd")
    assert check_owner_references([ref]) == [ref]
    ref.uid = 5  # type: ignore[assignment]  # no validation on assignment
    _, found = causes(check_owner_references, [ref])
    assert found[0][0] == "metadata.ownerReferences.0.uid"
    _, found = causes(check_owner_references, [object()])
    assert found == [("metadata.ownerReferences.0", "must be an owner reference")]


def test_check_metadata_checks_every_field_of_a_new_resource():
    check_metadata(Metadata(name="a", labels={"a": "b"}, finalizers=["x.io/y"]))
    meta = Metadata(name="a")
    meta.annotations["bad key"] = "x"  # in place, as a reconciler may write it
    _, found = causes(check_metadata, meta)
    assert found[0][0] == "metadata.annotations.bad key"
    meta = Metadata(name="a")
    meta.finalizers = None  # type: ignore[assignment]
    assert causes(check_metadata, meta) == ("invalid metadata.finalizers", [
        ("metadata.finalizers", "must not be null")])


def test_check_metadata_checks_only_what_an_update_changes():
    stored = Metadata(name="a", annotations={"bad key": "x"}, finalizers=["x.io/y"])
    wanted = stored.model_copy(update={"finalizers": []})
    check_metadata(wanted, stored)  # stored before the rule: still writable
    wanted = stored.model_copy(update={"annotations": {"bad key": "x", "other": "y"}})
    _, found = causes(check_metadata, wanted, stored)
    assert found[0][0] == "metadata.annotations.bad key"
