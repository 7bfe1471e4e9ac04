"""Shared pieces of the fuzz suite: settings, the inputs-tried counter and a generic protobuf strategy.

Examples per test: TWIN_FUZZ_EXAMPLES (default 200, what CI runs); `python -m tests.fuzz` / `make fuzz`
raise it. No example database is written (runs are reproducible from the printed seed / falsifying
example instead of a .hypothesis directory in the work tree).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

DEFAULT_EXAMPLES = 200
EXAMPLES = int(os.environ.get("TWIN_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
# Inputs that crash code owned elsewhere (reported, not yet fixed) are left out of the strategies
# unless TWIN_FUZZ_KNOWN_CRASHES=1: then the suite reproduces them (and fails until they are fixed).
INCLUDE_KNOWN = os.environ.get("TWIN_FUZZ_KNOWN_CRASHES", "") == "1"

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# target name -> inputs tried in this process (the runner prints it; see conftest.py)
TRIED: Counter[str] = Counter()


def tried(target: str) -> None:
    TRIED[target] += 1


# -- protobuf messages ----------------------------------------------------------------------------

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _edge_ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = sorted({v for v in (lo, hi, 0, 1, -1, 2, 7, 8, 64, 1 << 20, 1 << 30, 2**31 - 1, 2**32 - 1)
                    if lo <= v <= hi})
    return st.one_of(st.sampled_from(edges), st.integers(0, 100).filter(lambda v: lo <= v <= hi),
                     st.integers(lo, hi))


def scalar(field: FieldDescriptor) -> st.SearchStrategy:
    t = field.type
    if t in _INT_RANGES:
        return _edge_ints(*_INT_RANGES[t])
    if t == FieldDescriptor.TYPE_DOUBLE:
        return st.floats(allow_nan=True, allow_infinity=True)
    if t == FieldDescriptor.TYPE_FLOAT:
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_STRING:
        return st.text(max_size=24)
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=24)
    if t == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 40), st.integers(-(2**31), 2**31 - 1))
    raise NotImplementedError(field.full_name)


Hints = dict[str, st.SearchStrategy]


def messages(desc: Descriptor, hints: Hints | None = None, *, replace: Hints | None = None,
             max_repeated: int = 6, depth: int = 0) -> st.SearchStrategy[Message]:
    """Any message of type `desc`: every field optional, full value ranges, unknown enum numbers.

    `hints` maps a field's full name (e.g. "twin.telemetry.v1.RackTelemetryBatch.rack_id") to a
    strategy that is mixed in with the generic one, so ids that mean something show up often;
    `replace` maps a field's full name to the only strategy used for it.
    """
    hints = hints or {}
    replace = replace or {}
    cls = message_factory.GetMessageClass(desc)
    fields: dict[str, st.SearchStrategy] = {}
    for f in desc.fields:
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 4:
                continue
            one = messages(f.message_type, hints, replace=replace, max_repeated=max_repeated, depth=depth + 1)
        else:
            one = scalar(f)
        if f.full_name in replace:
            one = replace[f.full_name]
        elif f.full_name in hints:
            one = st.one_of(hints[f.full_name], one)
        if f.is_repeated:
            size = hints.get(f.full_name + "[]")
            fields[f.name] = st.lists(one, max_size=max_repeated) if size is None else size
        else:
            fields[f.name] = one

    def build(values: dict) -> Message:
        msg = cls()
        for name, value in values.items():
            f = desc.fields_by_name[name]
            target = getattr(msg, name) if f.is_repeated or \
                f.type == FieldDescriptor.TYPE_MESSAGE else None
            if f.is_repeated:
                if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.GetOptions().map_entry:
                    for v in value:   # a map<string, scalar>: the generated entries' key and value
                        target[v.key] = v.value
                elif f.type == FieldDescriptor.TYPE_MESSAGE:
                    for v in value:
                        target.add().CopyFrom(v)
                else:
                    target.extend(value)
            elif f.type == FieldDescriptor.TYPE_MESSAGE:
                target.CopyFrom(value)
            else:
                setattr(msg, name, value)
        return msg

    return st.fixed_dictionaries({}, optional=fields).map(build)


def mutated(data: st.DataObject, raw: bytes, draw_label: str = "mutation") -> bytes:
    """A few byte-level edits of `raw` (flip, insert, delete, truncate), drawn from `data`."""
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4), label=f"{draw_label} count")):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "set"]), label=draw_label)
        if not out:
            out += data.draw(st.binary(min_size=1, max_size=8))
            continue
        i = data.draw(st.integers(0, len(out) - 1), label=f"{draw_label} at")
        if op == "flip":
            out[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "insert":
            out[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del out[i:i + data.draw(st.integers(1, 8))]
        elif op == "truncate":
            del out[i:]
        else:
            out[i] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x08, 0x0A, 0x12]))
    return bytes(out)


def call_documented(fn: Callable, *args, rejection: type[BaseException] | tuple[type[BaseException], ...],
                    **kwargs):
    """fn(*args) or None when it raised the documented rejection; any other exception propagates."""
    try:
        return fn(*args, **kwargs)
    except rejection:
        return None


def json_paths(doc, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indexes) inside a decoded JSON document, the root included."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += json_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += json_paths(v, (*prefix, i))
    return out


def json_mutated(data: st.DataObject, doc, values: st.SearchStrategy, edits: int = 3):
    """`doc` (a decoded JSON document, copied) with up to `edits` values replaced or keys deleted."""
    import copy

    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, edits), label="json edits")):
        paths = json_paths(doc)
        path = data.draw(st.sampled_from(paths), label="json path")
        if not path:
            doc = data.draw(values, label="root")
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and data.draw(st.integers(0, 3), label="delete?") == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(values, label="value")
    return doc


# -- calling a grpc.aio servicer directly -----------------------------------------------------------


class Aborted(Exception):
    def __init__(self, code, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code, self.details = code, details


class Context:
    """The two ServicerContext methods the shared RpcHandler uses."""

    def time_remaining(self) -> float:
        return 30.0

    async def abort(self, code, details: str):
        raise Aborted(code, details)


def call_servicer(loop, servicer, method: str, request, ok_codes) -> object | None:
    """servicer.method(request) on `loop`: the response (serialized once), or None when the RPC was refused
    with one of `ok_codes` and a message; any other status (INTERNAL: an exception inside) fails."""
    try:
        response = loop.run_until_complete(getattr(servicer, method)(request, Context()))
    except Aborted as exc:
        assert exc.code in ok_codes, f"{method} answered {exc.code.name}: {exc.details}"
        assert exc.details
        return None
    response.SerializeToString()
    return response
