import datetime
import json
import math
from decimal import Decimal

import pytest
from django.tasks.exceptions import InvalidTask

from offload.exceptions import (
    ArgumentsTooDeep,
    InvalidArguments,
    PayloadTooLarge,
    UnstorableArguments,
)
from offload.payload import decode, encode, encode_arguments


@pytest.mark.parametrize(
    ("args", "kwargs", "path", "kind"),
    [
        ([datetime.datetime(2026, 1, 1)], {}, "args[0]", "datetime.datetime"),
        ([], {"when": {"at": datetime.date(2026, 1, 1)}}, 'kwargs["when"]["at"]', "datetime.date"),
        ([1, [2, {3, 4}]], {}, "args[1][1]", "set"),
        ([], {"amount": Decimal("1.5")}, 'kwargs["amount"]', "decimal.Decimal"),
        ([b"raw"], {}, "args[0]", "bytes"),
        ([object()], {}, "args[0]", "object"),
    ],
)
def test_non_json_values_name_their_path(args, kwargs, path, kind):
    with pytest.raises(InvalidArguments) as caught:
        encode_arguments(args, kwargs, max_bytes=1 << 20)
    message = str(caught.value)
    assert path in message
    assert kind in message
    assert message.startswith("Unsupported type")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused(value):
    with pytest.raises(InvalidArguments, match=r'kwargs\["x"\]\[0\]'):
        encode_arguments([], {"x": [value]}, max_bytes=1 << 20)


def test_non_string_keys_are_refused():
    with pytest.raises(InvalidArguments, match=r"args\[0\] has the key 1"):
        encode_arguments([{1: "a"}], {}, max_bytes=1 << 20)


def test_the_error_is_both_invalid_task_and_type_error():
    with pytest.raises(InvalidTask):
        encode_arguments([{1, 2}], {}, max_bytes=1 << 20)
    with pytest.raises(TypeError):
        encode_arguments([{1, 2}], {}, max_bytes=1 << 20)


def test_plain_json_round_trips_exactly():
    args = [1, -2.5, "ünïcode", None, True, [1, [2]], {"a": {"b": []}}]
    kwargs = {"nested": {"list": [1, 2, {"x": "y"}]}, "big": 2**70}
    encoded_args, encoded_kwargs = encode_arguments(args, kwargs, max_bytes=1 << 20)
    assert json.loads(encoded_args) == args
    assert json.loads(encoded_kwargs) == kwargs


def test_tuples_become_lists_as_in_django():
    encoded, _ = encode_arguments((1, (2, 3)), {}, max_bytes=1 << 20)
    assert json.loads(encoded) == [1, [2, 3]]


def test_deep_nesting_gives_a_clear_error_not_recursion_error():
    value: object = datetime.date(2026, 1, 1)
    for _ in range(5000):
        value = [value]
    with pytest.raises(InvalidArguments, match=r"args\[0\]\[0\]"):
        encode_arguments([value], {}, max_bytes=1 << 30)


def test_payload_cap_counts_encoded_bytes():
    encode_arguments(["x" * 90], {}, max_bytes=100)
    with pytest.raises(PayloadTooLarge, match="over the limit of 100 bytes") as caught:
        encode_arguments(["é" * 60], {}, max_bytes=100)
    assert isinstance(caught.value, InvalidTask)


def test_decode_accepts_what_drivers_return():
    assert decode('{"a": 1}') == {"a": 1}
    assert decode(b"[1]") == [1]
    assert decode([1]) == [1]
    assert encode({"b": 1}, "x") == '{"b":1}'


def nested(levels: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def test_nesting_is_limited_per_argument():
    encode_arguments([nested(30)], {"k": nested(30)}, max_bytes=1 << 20)
    with pytest.raises(ArgumentsTooDeep, match=r"kwargs\[\"k\"\](\[0\]){30} nests .* 30 levels"):
        encode_arguments([], {"k": nested(31)}, max_bytes=1 << 20)
    encode_arguments([nested(2)], {}, max_bytes=1 << 20, max_depth=2)
    with pytest.raises(ArgumentsTooDeep):
        encode_arguments([nested(3)], {}, max_bytes=1 << 20, max_depth=2)
    with pytest.raises(ArgumentsTooDeep):  # an empty list is a level too
        encode_arguments([nested(2, [])], {}, max_bytes=1 << 20, max_depth=2)


def test_a_cycle_is_refused_not_walked_for_ever():
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ArgumentsTooDeep):
        encode_arguments([loop], {}, max_bytes=1 << 20)


@pytest.mark.parametrize(
    ("args", "kwargs", "fragment"),
    [
        (["a\x00"], {}, r"args\[0\] holds a NUL character"),
        ([1, {"x": ["\x00"]}], {}, r'args\[1\]\["x"\]\[0\] holds a NUL'),
        ([{"k\x00": 1}], {}, r"args\[0\] has a key that holds a NUL"),
        ([], {"\x00": 1}, r"kwargs has a key that holds a NUL"),
        (["\udc80"], {}, r"args\[0\] holds the lone surrogate '\\udc80'"),
        ([], {"x": [["é\ud800"]]}, r'kwargs\["x"\]\[0\]\[0\] holds the lone surrogate'),
        ([10**5000], {}, r"args\[0\] is an integer of about 5,000 digits"),
        ([[-(10**4400)]], {}, r"args\[0\]\[0\] is an integer"),
    ],
)
def test_values_no_database_stores_as_they_are_are_refused(args, kwargs, fragment):
    with pytest.raises(UnstorableArguments, match=fragment) as caught:
        encode_arguments(args, kwargs, max_bytes=1 << 20)
    assert isinstance(caught.value, InvalidTask)
    assert isinstance(caught.value, ValueError)


def test_what_only_looks_like_a_nul_is_accepted():
    args = ["\\u0000", "ünïcode", 10**4000, {"\\u0000": "\\x00"}]
    encoded, _ = encode_arguments(args, {}, max_bytes=1 << 20)
    assert json.loads(encoded) == args


def test_a_return_value_of_none_is_json_null():
    from offload.payload import encode_result

    assert encode_result(None) == "null" == json.dumps(None)
