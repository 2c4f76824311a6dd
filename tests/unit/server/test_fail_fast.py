"""Validation of request bodies stops at the first invalid member of each array or object:
the errors of a body are bounded by its model, not by its size."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from fabrica import Model
from fabrica.server.http._body import validate_model
from fabrica.server.http._errors import APIError


class Leaf(Model):
    values: list[int] = []


class Cat(Model):
    kind: Literal["cat"] = "cat"
    lives: list[int] = [9]


class Dog(Model):
    kind: Literal["dog"] = "dog"
    tricks: dict[str, int] = {}


class Spec(Model):
    type: list[str] = []  # a field named like the schemas' own "type" key
    names: list[str] = []
    tags: dict[str, str] = {}
    leaves: list[Leaf] = []
    pet: Annotated[Cat | Dog, Field(discriminator="kind")] = Cat()
    extra: dict[str, Any] = {"type": "list", "items": [1]}  # a default shaped like a schema
    port: int = 443


def fields(body: dict[str, Any], mode: str = "strict") -> list[str]:
    with pytest.raises(APIError) as caught:
        validate_model(Spec, body, mode, "spec")
    assert caught.value.status == 400
    return [d["field"] for d in caught.value.details or []]


@pytest.mark.parametrize("mode", ["strict", "warn", "disabled"])
def test_each_collection_reports_its_first_bad_member_and_every_bad_field(mode: str) -> None:
    found = fields({"names": [0] * 100_000, "tags": {f"k{i}": i for i in range(1000)},
                    "type": [1, 2], "leaves": [{"values": ["a", "b"]}, {"values": ["c"]}],
                    "pet": {"kind": "dog", "tricks": {"sit": "x", "roll": "y"}},
                    "port": "x" if mode == "strict" else [1]}, mode)
    assert found == ["spec.type.0", "spec.names.0", "spec.tags.k0", "spec.leaves.0.values.0",
                     "spec.pet.dog.tricks.sit", "spec.port"]


def test_valid_bodies_validate_as_before() -> None:
    body = {"names": ["a"], "tags": {"a": "b"}, "leaves": [{"values": [1, 2]}],
            "pet": {"kind": "dog", "tricks": {"sit": 1}}, "type": ["x"]}
    value, warnings = validate_model(Spec, body, "strict", "spec")
    assert isinstance(value, Spec) and isinstance(value.leaves[0], Leaf)
    assert value == Spec.model_validate(body) and warnings == []
    assert value.extra == {"type": "list", "items": [1]}  # the default is untouched
    assert Spec().extra == {"type": "list", "items": [1]}


def test_warn_mode_still_names_unknown_fields() -> None:
    value, warnings = validate_model(Spec, {"names": ["a"], "colour": 1, "size": 2}, "warn",
                                     "spec")
    assert value.names == ["a"]  # type: ignore[attr-defined]
    assert warnings == ["unknown field 'spec.colour' ignored",
                        "unknown field 'spec.size' ignored"]


def test_plain_pydantic_models_too() -> None:
    class Plain(BaseModel):
        items: list[int]

    with pytest.raises(APIError) as caught:
        validate_model(Plain, {"items": ["x"] * 1000}, "strict", "status")
    assert [d["field"] for d in caught.value.details or []] == ["status.items.0"]
