"""Slurm accounting and slurmrestd feeds -> domain ``JobEvent``s.

Two inputs, one output:

* ``sacct --parsable2`` text (``|``-delimited). Without a header line (``--noheader``) the columns are XDMoD's
  ``--format`` list (``SACCT_COLUMNS``: JobID, JobIDRaw, Cluster, Partition, QOS, Account, Group, GID, User, UID,
  Submit, Eligible, Start, End, Elapsed, ExitCode, State, NNodes, NCPUS, ReqCPUS, ReqMem, ReqTRES, AllocTRES,
  Timelimit, NodeList, JobName); with a header line the columns are taken by name, and a ``Comment`` column (or
  ``SystemComment``/``AdminComment``) is read for the job spec. Times are the cluster's local time
  (``tz``, default UTC); ``Unknown``/``None`` mean not set.
* Slurm data_parser JSON (``sacct --json``, slurmrestd ``/slurmdb/v0.0.4x/jobs`` and ``/slurm/v0.0.4x/jobs``):
  ``{"jobs": [...]}`` with ``job_id``, ``state.current``, ``time.{submission,start,end}`` (0 = not set; numbers
  may be ``{set, infinite, number}`` wrappers from v0.0.40 on), ``nodes`` (a hostlist), ``tres.allocated``,
  ``exit_code``, ``comment.job`` and, where the endpoint has it, ``environment``. Tested on v0.0.41 and v0.0.44.

Events per job record: SUBMITTED at the submit time; STARTED at the start time with the placement (hostlist
expanded, node count, GPU count); then by state: COMPLETED -> FINISHED; FAILED -> FAILED (cause SOFTWARE, or
GPU_XID / NETWORK when the reason or comment names an Xid / NCCL / network error); NODE_FAIL, BOOT_FAIL ->
FAILED (NODE); OUT_OF_MEMORY -> FAILED (OUT_OF_MEMORY); TIMEOUT, DEADLINE -> FAILED (TIMEOUT); CANCELLED ->
CANCELLED (reason "by <uid>"); PREEMPTED, REQUEUED, SUSPENDED -> PREEMPTED; RESIZING -> RESIZED; PENDING and
RUNNING end at SUBMITTED / STARTED. GPUs: ``gres/gpu=N`` or ``gres/gpu:<type>=N`` in AllocTRES (else
ReqTRES); in JSON ``tres.allocated`` type ``gres`` name ``gpu``; a cluster that does not account GPU TRES gives
0 GPUs unless the submit line says ``--gpus N``, ``--gres=gpu:N`` (x nodes) or the job spec says ``n_gpus``.

Job spec (model shape, parallelism, precision ...): read from the job's comment (``sbatch --comment``; sacct
``Comment`` column; JSON ``comment.job``) and from its environment (JSON ``environment``, a list of
``KEY=VALUE`` or an object): ``TWIN_JOB_SPEC=<text>`` or one ``TWIN_JOB_<KEY>=<value>`` per key. The text is
either a JSON object (flat, or with ``model``/``parallel``/``training`` sections) or ``key=value`` pairs separated
by whitespace, ``,`` or ``;`` (an optional leading ``twin:`` is ignored). The comment overrides the environment.
A comment with no known key is free text, not a spec. Keys:

* model: ``layers hidden ffn_hidden heads kv_heads vocab seq_len head_dim moe_experts (experts) moe_topk (topk)
  gated sliding_window sliding_window_every``
* parallelism: ``tp pp dp cp ep vp sequence_parallel (sp) data_parallel`` (ddp | zero1 | fsdp); ``dp``
  defaults to n_gpus / (tp pp cp)
* training: ``micro_batch (mbs) global_batch (gbs) precision`` (bf16 | fp8) ``recompute`` (none | selective | op
  | full) ``attention_kernel`` (flash2 | cudnn | unfused) ``kernels`` (fused | eager) ``moe_kernel``
  (nccl_alltoall | deepep_normal | deepep_low_latency)
* placement: ``gpu`` (H100-SXM, A100-80GB, H200, H800, B200, GB200, GB300 ...) ``n_gpus``
* attributes (kept as text on the events): ``priority owner checkpoint_interval_s checkpoint_bytes
  checkpoint_s restart_s framework model``

Example: ``--comment "twin: gpu=H100-SXM layers=32 hidden=4096 ffn_hidden=14336 heads=32 kv_heads=8
vocab=128256 seq_len=8192 gated=true tp=1 pp=1 cp=1 micro_batch=2 global_batch=512 precision=bf16 owner=ml-team"``.
As soon as one model, parallelism or training key is present the whole spec must be complete and consistent
(DP x TP x PP x CP = GPUs, heads divisible by TP, ...).

Errors: every problem with a record -- wrong column count, unparseable time or number, end before start, an
incomplete or impossible job spec, a JSON document of the wrong shape -- raises ``SlurmRecordRejected`` with a
``reason`` (and the offending ``record``); no other exception escapes for any input. The batch functions
return the events of the good records and the rejections of the bad ones (for the dead-letter topic).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from twin.jobs.domain.events import EventKind, FailureCause, JobEvent
from twin.jobs.domain.hardware import gpu_spec
from twin.jobs.domain.spec import JobSpec, ModelShape, Parallelism, TrainingSetup

SACCT_COLUMNS = ("JobID", "JobIDRaw", "Cluster", "Partition", "QOS", "Account", "Group", "GID", "User", "UID",
                 "Submit", "Eligible", "Start", "End", "Elapsed", "ExitCode", "State", "NNodes", "NCPUS",
                 "ReqCPUS", "ReqMem", "ReqTRES", "AllocTRES", "Timelimit", "NodeList", "JobName")
#: a hostlist expanding to more hosts than this is refused (no real allocation is that large)
MAX_HOSTS = 200_000
#: one record longer than this is refused (a sacct line is < 10 kB even for 1,000-node hostlists)
MAX_RECORD_CHARS = 1_000_000

MODEL_KEYS = {"layers": "layers", "hidden": "hidden", "ffn_hidden": "ffn_hidden", "heads": "heads",
              "kv_heads": "kv_heads", "vocab": "vocab", "seq_len": "seq_len", "head_dim": "head_dim",
              "moe_experts": "moe_experts", "experts": "moe_experts", "moe_topk": "moe_topk", "topk": "moe_topk",
              "gated": "gated_ffn", "gated_ffn": "gated_ffn", "sliding_window": "sliding_window",
              "sliding_window_every": "sliding_window_every"}
PARALLEL_KEYS = {"tp": "tp", "pp": "pp", "dp": "dp", "cp": "cp", "ep": "ep", "vp": "vp",
                 "sequence_parallel": "sequence_parallel", "sp": "sequence_parallel",
                 "data_parallel": "data_parallel"}
TRAINING_KEYS = {"micro_batch": "micro_batch", "mbs": "micro_batch", "global_batch": "global_batch",
                 "gbs": "global_batch", "precision": "precision", "recompute": "recompute",
                 "attention_kernel": "attention_kernel", "kernels": "kernels", "moe_kernel": "moe_kernel"}
PLACEMENT_KEYS = ("gpu", "n_gpus")
ATTRIBUTE_KEYS = ("priority", "owner", "checkpoint_interval_s", "checkpoint_bytes", "checkpoint_s", "restart_s",
                  "framework", "model")
_BOOL_FIELDS = {"gated_ffn", "sequence_parallel"}
_STR_FIELDS = {"data_parallel", "precision", "recompute", "attention_kernel", "kernels", "moe_kernel"}
_REQUIRED_MODEL = ("layers", "hidden", "ffn_hidden", "heads", "vocab", "seq_len")

_STATE_EVENTS = {
    "COMPLETED": (EventKind.FINISHED, None),
    "FAILED": (EventKind.FAILED, FailureCause.SOFTWARE),
    "NODE_FAIL": (EventKind.FAILED, FailureCause.NODE),
    "BOOT_FAIL": (EventKind.FAILED, FailureCause.NODE),
    "OUT_OF_MEMORY": (EventKind.FAILED, FailureCause.OUT_OF_MEMORY),
    "TIMEOUT": (EventKind.FAILED, FailureCause.TIMEOUT),
    "DEADLINE": (EventKind.FAILED, FailureCause.TIMEOUT),
    "CANCELLED": (EventKind.CANCELLED, None),
    "PREEMPTED": (EventKind.PREEMPTED, None),
    "REQUEUED": (EventKind.PREEMPTED, None),
    "SUSPENDED": (EventKind.PREEMPTED, None),
    "RESIZING": (EventKind.RESIZED, None),
}
_NOT_ENDED = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING",
              "STAGE_OUT", "STOPPED", "SPECIAL_EXIT", "RESV_DEL_HOLD", "REVOKED", "UPDATE_DB", "POWER_UP_NODE",
              "LAUNCH_FAILED", "RECONFIG_FAIL"}


class SlurmRecordRejected(Exception):
    """A Slurm record that cannot become job events. ``reason`` says why; ``record`` holds (a prefix of) the
    offending input for the dead-letter topic."""

    def __init__(self, reason: str, record: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.record = record[:4096]


@dataclass(frozen=True)
class ParseResult:
    events: list[JobEvent] = field(default_factory=list)
    rejected: list[SlurmRecordRejected] = field(default_factory=list)


# --- hostlists, TRES, times ---------------------------------------------------------------------------------

def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise SlurmRecordRejected(f"unbalanced ']' in hostlist {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise SlurmRecordRejected(f"unbalanced '[' in hostlist {text!r}")
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def expand_hostlist(text: str) -> tuple[str, ...]:
    """``cpn-f13-03-[01-02],d13n[03,05,07-08]`` -> every host name (zero padding kept)."""
    text = (text or "").strip()
    if not text or text.lower() in ("none assigned", "(null)", "none"):
        return ()
    out: list[str] = []
    for part in _split_top(text):
        _expand_one(part, out)
        if len(out) > MAX_HOSTS:
            raise SlurmRecordRejected(f"hostlist expands to more than {MAX_HOSTS} hosts")
    return tuple(out)


def _expand_one(part: str, out: list[str]) -> None:
    m = re.match(r"^([^\[\]]*)\[([^\[\]]*)\](.*)$", part)
    if not m:
        if "[" in part or "]" in part:
            raise SlurmRecordRejected(f"bad hostlist element {part!r}")
        out.append(part)
        return
    prefix, ranges, rest = m.groups()
    for rng in ranges.split(","):
        rng = rng.strip()
        if re.fullmatch(r"\d+", rng):
            values, width = [int(rng)], len(rng)
        else:
            mm = re.fullmatch(r"(\d+)-(\d+)", rng)
            if not mm:
                raise SlurmRecordRejected(f"bad hostlist range {rng!r} in {part!r}")
            lo, hi = int(mm.group(1)), int(mm.group(2))
            if hi < lo or hi - lo > MAX_HOSTS:
                raise SlurmRecordRejected(f"bad hostlist range {rng!r} in {part!r}")
            values, width = range(lo, hi + 1), len(mm.group(1))
        for v in values:
            _expand_one(f"{prefix}{v:0{width}d}{rest}", out)
            if len(out) > MAX_HOSTS:
                raise SlurmRecordRejected(f"hostlist expands to more than {MAX_HOSTS} hosts")


def gpus_from_tres(text: str) -> int | None:
    """GPU count in a TRES string (``billing=36,cpu=36,gres/gpu=2`` or ``gres/gpu:h100=8``); None if absent."""
    total = None
    for item in (text or "").split(","):
        key, _, value = item.strip().partition("=")
        if key == "gres/gpu" or key.startswith("gres/gpu:"):
            if key != "gres/gpu" and total is not None:
                continue  # typed entries repeat the untyped total
            if not re.fullmatch(r"\d+", value.strip()):
                raise SlurmRecordRejected(f"bad GPU count in TRES {item!r}")
            total = int(value)
    return total


def _time(text: str, tz: tzinfo, what: str) -> float | None:
    t = (text or "").strip()
    if not t or t in ("Unknown", "None", "N/A"):
        return None
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise SlurmRecordRejected(f"{what} time {t!r} is not an ISO date-time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.timestamp()


def _int_field(text: str, what: str) -> int:
    t = (text or "").strip()
    if not t:
        return 0
    if not re.fullmatch(r"\d+", t):
        raise SlurmRecordRejected(f"{what} {t!r} is not a non-negative integer")
    return int(t)


def _exit_code(text: str) -> tuple[int | None, int | None]:
    t = (text or "").strip()
    if not t:
        return None, None
    m = re.fullmatch(r"(\d+):(\d+)", t)
    if not m:
        raise SlurmRecordRejected(f"ExitCode {t!r} is not <code>:<signal>")
    return int(m.group(1)), int(m.group(2))


def _cause_from_text(cause: FailureCause, *texts: str) -> FailureCause:
    text = " ".join(texts).lower()
    if re.search(r"\bxid\b", text):
        return FailureCause.GPU_XID
    if re.search(r"\bnccl\b|network|infiniband|\bib\b|link down", text):
        return FailureCause.NETWORK
    return cause


# --- job spec ------------------------------------------------------------------------------------------------

def _spec_pairs(text: str) -> dict[str, Any]:
    t = (text or "").strip()
    if t.lower().startswith("twin:"):
        t = t[5:].strip()
    if not t:
        return {}
    if t.startswith("{"):
        try:
            obj = json.loads(t)
        except json.JSONDecodeError as exc:
            raise SlurmRecordRejected(f"job spec JSON is invalid: {exc.msg} at {exc.pos}") from None
        if not isinstance(obj, dict):
            raise SlurmRecordRejected("job spec JSON must be an object")
        flat: dict[str, Any] = {}
        for key, value in obj.items():
            if key in ("model", "parallel", "training") and isinstance(value, dict):
                flat.update({str(k): v for k, v in value.items()})
            else:
                flat[str(key)] = value
        return {k.strip().lower(): v for k, v in flat.items()}
    pairs = {}
    for token in re.split(r"[\s,;]+", t):
        if "=" not in token:
            continue
        key, _, value = token.partition("=")
        pairs[key.strip().lower()] = value.strip()
    return pairs


def _known(key: str) -> bool:
    return key in MODEL_KEYS or key in PARALLEL_KEYS or key in TRAINING_KEYS or key in PLACEMENT_KEYS \
        or key in ATTRIBUTE_KEYS


def _coerce(name: str, value: Any, key: str) -> Any:
    if name in _BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        v = str(value).strip().lower()
        if v in ("1", "true", "yes", "on"):
            return True
        if v in ("0", "false", "no", "off"):
            return False
        raise SlurmRecordRejected(f"job spec {key}={value!r} is not a boolean")
    if name in _STR_FIELDS:
        return str(value).strip().lower()
    if isinstance(value, bool):
        raise SlurmRecordRejected(f"job spec {key}={value!r} is not an integer")
    if isinstance(value, int):
        return value
    v = str(value).strip()
    if not re.fullmatch(r"\d+", v):
        raise SlurmRecordRejected(f"job spec {key}={value!r} is not a non-negative integer")
    return int(v)


def job_spec_from(comment: str = "", environment: Mapping[str, str] | None = None,
                  allocated_gpus: int = 0) -> tuple[JobSpec | None, dict[str, str]]:
    """(spec or None, attributes) from a job's comment and environment (format: module docstring)."""
    pairs: dict[str, Any] = {}
    env = environment or {}
    if env.get("TWIN_JOB_SPEC"):
        pairs.update(_spec_pairs(env["TWIN_JOB_SPEC"]))
    for key, value in env.items():
        if key.startswith("TWIN_JOB_") and key != "TWIN_JOB_SPEC":
            pairs[key[len("TWIN_JOB_"):].lower()] = value
    from_comment = _spec_pairs(comment)
    if from_comment and not any(_known(k) for k in from_comment):
        from_comment = {}  # free-text comment that happens to contain '='
    pairs.update(from_comment)
    if not pairs:
        return None, {}
    unknown = sorted(k for k in pairs if not _known(k))
    if unknown:
        raise SlurmRecordRejected(f"job spec has unknown key(s): {', '.join(unknown)}")
    attributes = {k: str(pairs[k]) for k in ATTRIBUTE_KEYS if k in pairs}
    spec_keys = [k for k in pairs if k in MODEL_KEYS or k in PARALLEL_KEYS or k in TRAINING_KEYS]
    if not spec_keys:
        return None, attributes
    model_kw = {MODEL_KEYS[k]: _coerce(MODEL_KEYS[k], v, k) for k, v in pairs.items() if k in MODEL_KEYS}
    par_kw = {PARALLEL_KEYS[k]: _coerce(PARALLEL_KEYS[k], v, k) for k, v in pairs.items() if k in PARALLEL_KEYS}
    train_kw = {TRAINING_KEYS[k]: _coerce(TRAINING_KEYS[k], v, k) for k, v in pairs.items() if k in TRAINING_KEYS}
    missing = [k for k in _REQUIRED_MODEL if k not in model_kw] + (["global_batch"] if "global_batch" not in
                                                                     train_kw else [])
    if "gpu" not in pairs:
        missing.append("gpu")
    if missing:
        raise SlurmRecordRejected(f"job spec incomplete: missing {', '.join(missing)}")
    model_kw.setdefault("kv_heads", model_kw["heads"])
    train_kw.setdefault("micro_batch", 1)
    try:
        gpu = gpu_spec(str(pairs["gpu"])).key
        n_gpus = _coerce("n_gpus", pairs["n_gpus"], "n_gpus") if "n_gpus" in pairs else allocated_gpus
        if "dp" not in par_kw:
            denom = par_kw.get("tp", 1) * par_kw.get("pp", 1) * par_kw.get("cp", 1)
            if not n_gpus or n_gpus % denom:
                raise SlurmRecordRejected(f"job spec: dp not given and n_gpus={n_gpus} is not a multiple of "
                                          f"tp*pp*cp={denom}")
            par_kw["dp"] = n_gpus // denom
        spec = JobSpec(ModelShape(**model_kw), Parallelism(**par_kw), TrainingSetup(**train_kw), gpu=gpu,
                       n_gpus=n_gpus)
    except SlurmRecordRejected:
        raise
    except (ValueError, TypeError) as exc:
        raise SlurmRecordRejected(f"job spec rejected: {exc}") from None
    if allocated_gpus and spec.n_gpus != allocated_gpus:
        raise SlurmRecordRejected(f"job spec uses {spec.n_gpus} GPUs but the allocation has {allocated_gpus}")
    return spec, attributes


# --- event assembly ----------------------------------------------------------------------------------------

def _events(common: dict, state: str, submit: float | None, start: float | None, end: float | None,
            placement: dict, cause_texts: tuple[str, ...], reason: str, exit_code: int | None,
            signal: int | None) -> list[JobEvent]:
    if start is not None and submit is not None and start < submit:
        raise SlurmRecordRejected("start time before submit time")
    if end is not None and start is not None and end < start:
        raise SlurmRecordRejected("end time before start time")
    base = state.split()[0].upper().rstrip("+") if state.strip() else ""
    if not base:
        raise SlurmRecordRejected("empty job state")
    if base not in _STATE_EVENTS and base not in _NOT_ENDED:
        raise SlurmRecordRejected(f"unknown job state {state!r}")
    out = []
    if submit is not None:
        out.append(JobEvent(kind=EventKind.SUBMITTED, time_s=submit, **common))
    if start is not None and base != "PENDING":
        out.append(JobEvent(kind=EventKind.STARTED, time_s=start, **common, **placement))
    if base in _STATE_EVENTS and end is not None:
        kind, cause = _STATE_EVENTS[base]
        if cause is not None and kind == EventKind.FAILED:
            cause = _cause_from_text(cause, reason, *cause_texts)
        out.append(JobEvent(kind=kind, time_s=end, cause=cause, exit_code=exit_code, signal=signal,
                            reason=reason, **common, **placement))
    elif base in _STATE_EVENTS:
        raise SlurmRecordRejected(f"job in terminal state {base} without an end time")
    if not out:
        raise SlurmRecordRejected("record has no submit, start or end time")
    return out


def sacct_record_events(fields: list[str], header: tuple[str, ...] = SACCT_COLUMNS,
                        tz: tzinfo = UTC) -> list[JobEvent]:
    """Events of one sacct record (already split on ``|``). Raises ``SlurmRecordRejected``."""
    raw = "|".join(fields)
    try:
        if len(fields) != len(header):
            raise SlurmRecordRejected(f"{len(fields)} columns, expected {len(header)}")
        row = dict(zip(header, fields, strict=True))
        job_id = row.get("JobID", "").strip()
        if not job_id:
            raise SlurmRecordRejected("empty JobID")
        if "." in job_id:
            raise SlurmRecordRejected(f"job step record {job_id!r} (use sacct --allocations)")
        nodes = expand_hostlist(row.get("NodeList", ""))
        n_nodes = _int_field(row.get("NNodes", ""), "NNodes")
        gpus = gpus_from_tres(row.get("AllocTRES", ""))
        if gpus is None:
            gpus = gpus_from_tres(row.get("ReqTRES", "")) or 0
        comment = " ".join(row.get(k, "") for k in ("Comment", "SystemComment", "AdminComment") if row.get(k))
        spec, attributes = job_spec_from(comment, None, gpus)
        if spec is not None and not gpus:
            gpus = spec.n_gpus
        exit_code, signal = _exit_code(row.get("ExitCode", ""))
        state = row.get("State", "")
        reason = ""
        m = re.match(r"\s*CANCELLED\s+by\s+(\S+)", state)
        if m:
            reason = f"cancelled by {m.group(1)}"
        common = {"job_id": job_id, "source": "sacct", "cluster": row.get("Cluster", ""),
                  "user": row.get("User", ""), "account": row.get("Account", ""),
                  "partition": row.get("Partition", ""), "name": row.get("JobName", ""), "spec": spec,
                  "attributes": attributes}
        placement = {"nodes": nodes, "n_nodes": n_nodes or len(nodes), "n_gpus": gpus}
        return _events(common, state, _time(row.get("Submit", ""), tz, "Submit"),
                       _time(row.get("Start", ""), tz, "Start"), _time(row.get("End", ""), tz, "End"),
                       placement, (comment,), reason, exit_code, signal)
    except SlurmRecordRejected as exc:
        raise SlurmRecordRejected(exc.reason, raw) from None
    except Exception as exc:  # noqa: BLE001 -- the documented contract: one exception type for any input
        raise SlurmRecordRejected(f"unparseable record: {type(exc).__name__}: {exc}", raw) from None


def parse_sacct(text: str | bytes, tz: tzinfo = UTC) -> ParseResult:
    """Every record of ``sacct --parsable2`` output (with or without a header line)."""
    result = ParseResult()
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        result.rejected.append(SlurmRecordRejected(f"not UTF-8: {exc.reason} at byte {exc.start}"))
        return result
    header = SACCT_COLUMNS
    lines = text.splitlines()
    if lines and lines[0].startswith("JobID|"):
        header = tuple(c.strip() for c in lines[0].split("|"))
        lines = lines[1:]
        if len(set(header)) != len(header):
            result.rejected.append(SlurmRecordRejected("duplicate column names in the header", lines[0]
                                                       if lines else ""))
            return result
    for line in lines:
        if not line.strip():
            continue
        if len(line) > MAX_RECORD_CHARS:
            result.rejected.append(SlurmRecordRejected(f"record longer than {MAX_RECORD_CHARS} characters",
                                                       line))
            continue
        try:
            result.events.extend(sacct_record_events(line.split("|"), header, tz))
        except SlurmRecordRejected as exc:
            result.rejected.append(exc)
    return result


def _num(value: Any, what: str) -> int | None:
    """A data_parser number: plain int or ``{set, infinite, number}``; None when unset."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SlurmRecordRejected(f"{what} is not a number: {value!r}")
    return int(value)


def _env_map(env: Any) -> dict[str, str]:
    if env is None:
        return {}
    if isinstance(env, dict):
        return {str(k): str(v) for k, v in env.items()}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, sep, value = str(item).partition("=")
            if sep:
                out[key] = value
        return out
    raise SlurmRecordRejected("environment must be an object or a list of KEY=VALUE")


def _submit_line_gpus(line: str, n_nodes: int) -> int:
    m = re.search(r"--gpus(?:=|\s+)(?:[\w-]+:)?(\d+)\b", line or "")
    if m:
        return int(m.group(1))
    m = re.search(r"--gres(?:=|\s+)gpu(?::[\w-]+)?:(\d+)\b", line or "")
    if m:
        return int(m.group(1)) * max(n_nodes, 1)
    m = re.search(r"--gpus-per-node(?:=|\s+)(?:[\w-]+:)?(\d+)\b", line or "")
    if m:
        return int(m.group(1)) * max(n_nodes, 1)
    return 0


def json_job_events(job: Any, tz: tzinfo = UTC) -> list[JobEvent]:
    """Events of one data_parser job object. Raises ``SlurmRecordRejected``."""
    try:
        raw = json.dumps(job)[:4096]
    except (TypeError, ValueError):
        raw = repr(job)[:4096]
    try:
        if not isinstance(job, dict):
            raise SlurmRecordRejected("job record is not an object")
        job_id = _num(job.get("job_id"), "job_id")
        if job_id is None or job_id <= 0:
            raise SlurmRecordRejected("job_id missing or not positive")
        array = job.get("array") or {}
        task = _num(array.get("task_id"), "array.task_id") if isinstance(array, dict) else None
        array_job = _num(array.get("job_id"), "array.job_id") if isinstance(array, dict) else None
        jid = f"{array_job}_{task}" if array_job and task is not None else str(job_id)
        state_obj = job.get("state") or {}
        if isinstance(state_obj, dict):
            current = state_obj.get("current") or []
            reason = str(state_obj.get("reason") or "")
        else:  # older parsers: a string
            current, reason = [state_obj], ""
        if isinstance(current, str):
            current = [current]
        if not isinstance(current, list) or not current:
            raise SlurmRecordRejected("state.current missing")
        state = str(current[0])
        times = job.get("time") or {}
        if not isinstance(times, dict):
            raise SlurmRecordRejected("time is not an object")

        def ts(key: str) -> float | None:
            v = _num(times.get(key), f"time.{key}")
            return float(v) if v else None

        nodes = expand_hostlist(str(job.get("nodes") or ""))
        n_nodes = _num(job.get("allocation_nodes"), "allocation_nodes") or len(nodes)
        gpus = None
        tres = (job.get("tres") or {}).get("allocated") or []
        if not isinstance(tres, list):
            raise SlurmRecordRejected("tres.allocated is not a list")
        for item in tres:
            if isinstance(item, dict) and item.get("type") == "gres" and str(item.get("name", "")).startswith("gpu"):
                gpus = (gpus or 0) + max(_num(item.get("count"), "tres count") or 0, 0)
        if gpus is None:
            gpus = _submit_line_gpus(str(job.get("submit_line") or ""), n_nodes)
        comment = job.get("comment") or {}
        comment_text = comment.get("job", "") if isinstance(comment, dict) else str(comment)
        spec, attributes = job_spec_from(str(comment_text or ""), _env_map(job.get("environment")), gpus)
        if spec is not None and not gpus:
            gpus = spec.n_gpus
        exit_obj = job.get("exit_code") or {}
        exit_code = signal = None
        if isinstance(exit_obj, dict):
            exit_code = _num(exit_obj.get("return_code"), "exit_code.return_code")
            sig = exit_obj.get("signal") or {}
            signal = _num(sig.get("id"), "exit_code.signal.id") if isinstance(sig, dict) else None
            if exit_code is not None and signal is None:
                signal = 0  # as sacct prints it: <code>:0 when no signal ended the job
        failed_node = str(job.get("failed_node") or "")
        if failed_node and state.upper() == "FAILED":
            state = "NODE_FAIL"
        if state.upper() == "CANCELLED" and job.get("kill_request_user"):
            reason = f"cancelled by {job['kill_request_user']}"
        meta_user = job.get("user") or ""
        common = {"job_id": jid, "source": "slurm-json", "cluster": str(job.get("cluster") or ""),
                  "user": str(meta_user), "account": str(job.get("account") or ""),
                  "partition": str(job.get("partition") or ""), "name": str(job.get("name") or ""),
                  "spec": spec, "attributes": attributes}
        placement = {"nodes": nodes, "n_nodes": n_nodes, "n_gpus": gpus}
        return _events(common, state, ts("submission"), ts("start"), ts("end"), placement,
                       (str(comment_text or ""), failed_node), "" if reason == "None" else reason, exit_code,
                       signal)
    except SlurmRecordRejected as exc:
        raise SlurmRecordRejected(exc.reason, raw) from None
    except Exception as exc:  # noqa: BLE001 -- the documented contract: one exception type for any input
        raise SlurmRecordRejected(f"unparseable job record: {type(exc).__name__}: {exc}", raw) from None


def parse_slurm_json(payload: str | bytes | Mapping[str, Any], tz: tzinfo = UTC) -> ParseResult:
    """Every job of a data_parser document (``{"jobs": [...]}``)."""
    result = ParseResult()
    try:
        doc = payload if isinstance(payload, Mapping) else json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        result.rejected.append(SlurmRecordRejected(f"not JSON: {exc}", str(payload)[:4096]))
        return result
    except Exception as exc:  # noqa: BLE001
        result.rejected.append(SlurmRecordRejected(f"not JSON: {type(exc).__name__}", ""))
        return result
    jobs = doc.get("jobs") if isinstance(doc, Mapping) else None
    if not isinstance(jobs, list):
        result.rejected.append(SlurmRecordRejected("document has no 'jobs' list", str(doc)[:4096]))
        return result
    for job in jobs:
        try:
            result.events.extend(json_job_events(job, tz))
        except SlurmRecordRejected as exc:
            result.rejected.append(exc)
    return result


def sort_events(events: Iterable[JobEvent]) -> list[JobEvent]:
    """Events in replay order: by time, then by lifecycle order within a job."""
    order = {k: i for i, k in enumerate(EventKind)}
    return sorted(events, key=lambda e: (e.time_s, e.job_id, order[e.kind]))
