"""Parsing ``?fieldSelector=`` and comparing field values (SPEC section 10)."""

from __future__ import annotations

import time
import unicodedata

import pytest

from fabrica.resource import (
    FieldRequirement,
    FieldSelectorError,
    Selector,
    document_fields,
    field_text,
    parse_field_selector,
    parse_selector,
)

FIELDS = ("metadata.name", "status.phase", "spec.mac", "spec.rackUID")


def test_the_three_operators_and_commas():
    assert parse_field_selector("spec.mac=a, spec.rackUID==r1 ,status.phase!=Ready",
                                FIELDS) == (
        FieldRequirement("spec.mac", "=", "a"),
        FieldRequirement("spec.rackUID", "=", "r1"),
        FieldRequirement("status.phase", "!=", "Ready"))


def test_empty_selects_everything_and_an_empty_value_is_allowed():
    assert parse_field_selector(None, FIELDS) == ()
    assert parse_field_selector("  ", FIELDS) == ()
    assert parse_field_selector("status.phase=", FIELDS) == (
        FieldRequirement("status.phase", "=", ""),)


def test_escaped_commas_and_equals_signs_in_values():
    assert parse_field_selector(r"spec.mac=a\,b\=c\\d", FIELDS) == (
        FieldRequirement("spec.mac", "=", "a,b=c\\d"),)


@pytest.mark.parametrize("text", ["spec.mac", "spec.mac=a=b", "=x", "spec.mac=a,,"])
def test_malformed(text):
    with pytest.raises(FieldSelectorError):
        parse_field_selector(text, FIELDS)


def test_a_field_that_cannot_be_selected_names_those_that_can():
    with pytest.raises(FieldSelectorError) as caught:
        parse_field_selector("spec.serial=1", FIELDS)
    assert "metadata.name, status.phase, spec.mac, spec.rackUID" in str(caught.value)
    assert caught.value.selectable == FIELDS


def test_bounds_refuse_a_thousand_terms_or_a_huge_text_quickly():
    started = time.perf_counter()
    for text in (",".join(f"spec.mac=m{n}" for n in range(1000)),
                 ",".join(["a=b"] * 1000), "spec.mac=" + "x" * 1_000_000, "," * 4000):
        with pytest.raises(FieldSelectorError, match="at most"):
            parse_field_selector(text, FIELDS)
    for text in ("\\" * 4000, "spec.mac=" + "=" * 4000, "x" * 4000):
        with pytest.raises(FieldSelectorError) as caught:
            parse_field_selector(text, FIELDS)
        assert len(str(caught.value)) < 200  # a message never echoes the whole text
    assert time.perf_counter() - started < 0.5


def test_values_compare_as_their_json_text_and_strings_in_nfc():
    assert field_text(None) == ""
    assert field_text(3) == "3" and field_text(2.5) == "2.5"
    assert field_text(True) == "true"
    decomposed = unicodedata.normalize("NFD", "é")
    assert field_text(decomposed) == "é"
    (requirement,) = parse_field_selector(f"spec.mac={decomposed}", FIELDS)
    assert requirement.value == "é"
    doc = {"metadata": {"name": "n", "labels": {"a": "1"}},
           "spec": {"mac": "é", "slot": 3}, "status": {}}
    values = document_fields(doc)
    assert values("spec.mac") == "é" and values("spec.slot") == "3"
    assert values("status.phase") == ""  # unset: the empty text


def test_a_selector_with_fields_needs_them_to_match():
    selector = Selector(parse_selector("a=1").requirements,
                        parse_field_selector("spec.mac!=x", FIELDS))
    assert selector
    doc = {"metadata": {"name": "n"}, "spec": {"mac": "y"}}
    assert selector.matches({"a": "1"}, document_fields(doc))
    assert not selector.matches({"a": "2"}, document_fields(doc))
    assert not selector.matches({"a": "1"}, document_fields({"spec": {"mac": "x"}}))
    with pytest.raises(TypeError):  # a caller that forgot the fields would select wrongly
        selector.matches({"a": "1"})
