import datetime
import json
import math
from decimal import Decimal

import pytest
from django.tasks.exceptions import InvalidTask

from offload.exceptions import InvalidArguments, PayloadTooLarge
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
