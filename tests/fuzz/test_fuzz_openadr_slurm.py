"""Fuzz: OpenADR 3 events (twin.power.adapters.openadr.parse_event) and Slurm sacct / slurmrestd input
(twin.jobs.adapters.slurm), seeded with the real fixtures and mutated (bytes and JSON structure).

Documented rejections: parse_event raises only OpenAdrRejected; parse_sacct / parse_slurm_json return
a ParseResult (events + SlurmRecordRejected) or raise SlurmRecordRejected; expand_hostlist and
job_spec_from raise only SlurmRecordRejected. Both modules end in a catch-all that turns any other
exception into the rejection ("unreadable event (<Exc>)", "unparseable record: <Exc>: ..."): the
contract holds either way, so inputs that reach a catch-all are counted separately in the report
("*_catch_all"): each is an unanticipated exception the parser papers over.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from twin.core.validation_data import validation_dir
from twin.jobs.adapters.slurm import (
    ParseResult,
    SlurmRecordRejected,
    expand_hostlist,
    job_spec_from,
    parse_sacct,
    parse_slurm_json,
)
from twin.power.adapters.openadr import OpenAdrRejected, parse_event

from ._support import FUZZ, json_mutated, mutated, tried

POWER_FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "power" / "fixtures"
OPENADR = [p.read_bytes() for p in sorted(POWER_FIXTURES.glob("openadr_*.json"))]
SLURM_DIR = validation_dir() / "feeds" / "slurm"
SACCT = [p.read_text(encoding="utf-8") for p in sorted(SLURM_DIR.glob("*.psv"))]
SLURM_JSON = [json.loads(p.read_bytes()) for p in sorted(SLURM_DIR.glob("*.json"))]

TEXT = st.sampled_from(["", "0", "-1", "1e400", "NaN", "PT30M", "P9999Y", "PT0S", "P1Y2M3W4DT5H6M7.5S", "PT",
                        "2026-11-29T14:00:00Z", "2026-11-29T14:00:00", "9999-12-31T23:59:59-23:59",
                        "0001-01-01T00:00:00+14:00", "KW", "MW", "W", "IMPORT_CAPACITY_LIMIT", "SIMPLE", "EVENT",
                        "node[1-3]", "node[01-100000000]", "a[", "]", "gres/gpu=8", "gres/gpu:h100=x",
                        "COMPLETED", "FAILED", "CANCELLED by 0", "0:0", "1:9", "Unknown", "None", "twin: tp=2"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), TEXT, st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda c: st.one_of(st.lists(c, max_size=4),
                                                 st.dictionaries(st.text(max_size=8), c, max_size=4)),
                    max_leaves=8)


def _openadr(data) -> None:
    try:
        event = parse_event(data)
    except OpenAdrRejected as exc:
        if "unreadable event" in str(exc):
            tried("openadr_catch_all")
        return
    assert event is not None


@FUZZ
@given(st.data())
def test_openadr_mutated_fixtures_only_raise_openadr_rejected(data) -> None:
    tried("openadr")
    raw = data.draw(st.sampled_from(OPENADR), label="fixture")
    if data.draw(st.booleans(), label="structural?"):
        _openadr(json.dumps(json_mutated(data, json.loads(raw), JSON)).encode())
    else:
        _openadr(mutated(data, raw))


@FUZZ
@given(st.one_of(st.binary(max_size=200), JSON.map(lambda v: json.dumps(v).encode()), JSON))
def test_openadr_any_input_only_raises_openadr_rejected(data) -> None:
    tried("openadr")
    _openadr(data)


def _check_result(result: ParseResult) -> None:
    assert isinstance(result, ParseResult)
    for rej in result.rejected:
        assert isinstance(rej, SlurmRecordRejected) and rej.reason
        if rej.reason.startswith(("unparseable record:", "unparseable job record:")):
            tried("slurm_catch_all")
    for ev in result.events:
        assert not (isinstance(getattr(ev, "time_s", 0.0), float) and math.isnan(ev.time_s))


@FUZZ
@given(st.data())
def test_sacct_mutated_fixtures_give_events_or_rejections(data) -> None:
    tried("sacct")
    text = data.draw(st.sampled_from(SACCT), label="fixture")
    lines = text.splitlines()
    keep = data.draw(st.integers(1, min(8, len(lines))), label="lines")
    start = data.draw(st.integers(0, len(lines) - keep), label="start")
    chosen = ([lines[0]] if lines[0].startswith("JobID|") and start else []) + lines[start:start + keep]
    raw = mutated(data, "\n".join(chosen).encode("utf-8"))
    try:
        _check_result(parse_sacct(raw))
    except SlurmRecordRejected:
        pass


@FUZZ
@given(st.data())
def test_slurm_json_mutated_fixtures_give_events_or_rejections(data) -> None:
    tried("slurm_json")
    doc = json_mutated(data, data.draw(st.sampled_from(SLURM_JSON), label="fixture"), JSON, edits=4)
    as_bytes = data.draw(st.booleans(), label="as bytes?")
    try:
        _check_result(parse_slurm_json(json.dumps(doc).encode() if as_bytes else doc))
    except SlurmRecordRejected:
        pass


@FUZZ
@given(st.one_of(TEXT, st.text(max_size=40), st.from_regex(r"[a-z]{1,3}(\[[0-9,\-]{0,12}\])?(,[a-z]{1,3})?",
                                                           fullmatch=True)),
       st.one_of(st.none(), st.dictionaries(st.sampled_from(["TWIN_JOB_SPEC", "TWIN_JOB_TP", "TWIN_JOB_LAYERS",
                                                             "TWIN_JOB_GPU", "PATH"]), st.text(max_size=20),
                                            max_size=3)))
def test_hostlists_and_job_specs_only_raise_slurm_record_rejected(text: str, env) -> None:
    tried("slurm_text")
    try:
        hosts = expand_hostlist(text)
        assert isinstance(hosts, tuple)
    except SlurmRecordRejected:
        pass
    try:
        job_spec_from(text, env)
    except SlurmRecordRejected:
        pass
