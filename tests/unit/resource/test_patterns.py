"""Names, uids and labels are defined once, in `fabrica.resource`: the regular expressions
the OpenAPI document publishes say the same as the checks the server and storage run."""

from __future__ import annotations

import re

import pytest

from fabrica.resource import (
    LABEL_KEY_MAX_LENGTH,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_MAX_LENGTH,
    LABEL_VALUE_PATTERN,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    UID_PATTERN,
    Model,
    Resource,
    is_dns1123_subdomain,
    is_uid,
    label_key_error,
    label_value_error,
)

NAMES = ["web-01", "a", "a.b.c", "0", "rack-01.site-2", "", "-a", "a-", "A", "a_b", "a..b",
         ".a", "a" * 253, "a" * 254, "über"]
KEYS = ["app", "example.com/app", "a.b/c_d-e.f", "A/app", "/app", "app/", "a b", "-app",
        "x" * 63, "x" * 64, f"{'p' * 253}/{'n' * 63}", "example.com/" + "n" * 64, "a/b/c"]
VALUES = ["", "web", "Web_01.x", "-web", "web-", "a b", "x" * 63, "x" * 64]
UIDS = ["dev-0000000a", "dev-" + "f" * 64, "dev-" + "f" * 65, "dev-0000000", "DEV-0000000a",
        "dev-0000000A", "dev0000000a", "9ev-0000000a", "rack-deadbeef", "dev-0000000a.json"]


def schema_accepts(pattern: str, max_length: int, value: str) -> bool:
    return len(value) <= max_length and re.search(pattern, value) is not None


@pytest.mark.parametrize("name", NAMES)
def test_name_pattern_is_the_name_check(name):
    assert schema_accepts(NAME_PATTERN, NAME_MAX_LENGTH, name) == is_dns1123_subdomain(name)


@pytest.mark.parametrize("key", KEYS)
def test_label_key_pattern_agrees_with_the_check(key):
    accepted = schema_accepts(LABEL_KEY_PATTERN, LABEL_KEY_MAX_LENGTH, key)
    if label_key_error(key) is None:
        assert accepted
    else:  # a regex cannot limit the prefix and the name part separately
        assert not accepted or len(key.rpartition("/")[2]) > 63 or len(key) > 253


@pytest.mark.parametrize("value", VALUES)
def test_label_value_pattern_is_the_value_check(value):
    assert schema_accepts(LABEL_VALUE_PATTERN, LABEL_VALUE_MAX_LENGTH, value) == (
        label_value_error(value) is None)


@pytest.mark.parametrize("uid", UIDS)
def test_uid_pattern(uid):
    assert is_uid(uid) == (re.search(UID_PATTERN, uid) is not None)


class Spec(Model):
    pass


class Status(Model):
    pass


class Thing(Resource[Spec, Status], prefix="dev"):
    pass


def test_a_kind_knows_its_own_uids_only():
    info = Thing.resource_info
    assert info.is_uid("dev-0000000a")
    assert not info.is_uid("rack-0000000a")  # another kind's
    assert not info.is_uid("dev-" + "f" * 65)  # longer than any backend stores
    assert is_uid("rack-0000000a") and not is_uid("rack-0000000a", "dev")
