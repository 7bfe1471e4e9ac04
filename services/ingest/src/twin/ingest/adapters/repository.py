"""PostgreSQL/TimescaleDB writes of accepted telemetry batches, exactly once per batch.

One transaction per poll:
  1. insert one ledger row per batch into `telemetry_batches` (natural key rack_id, sample_time,
     sequence) with ON CONFLICT DO NOTHING RETURNING → which batches are new;
  2. binary COPY the sample rows of the new batches only into telemetry_gpu_node / _rack / _link_rack;
  3. commit.
GPU samples are one row per node with per-GPU arrays and an integer node key (migration 009), link samples
one row per rack with per-port arrays and the key of the rack's port list (011). The (rack_id, port_id) →
port_key, (rack_id, node_id) → node_key and (rack_id, port keys) → set_key maps of telemetry_port_entity /
_node_entity / _port_set are cached in the process (EntityKeys); unseen entities are added in their own
short transaction before the batch transaction (ON CONFLICT DO NOTHING, sorted: concurrent ingest processes
agree on the key and never deadlock). The views telemetry_gpu and telemetry_link still answer with the old
columns.
A batch redelivered after a crash (or re-sent by the source) finds its ledger row and is not stored
again. Conflicting batches are told apart: same ce_id as the ledger row → a redelivery of the stored
record (its normalized record may not have been published yet, so the caller re-publishes it under
the same deterministic id); another ce_id with the same content digest → a duplicate from the source
(counted, dropped); another ce_id with a different digest → a conflict: the source sent other
values under a stored key (e.g. a corrected Redfish report); the caller dead-letters it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, filterfalse, repeat
from operator import attrgetter
from pathlib import Path

import numpy as np
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from twin.core.db import copy_columns
from twin.core.db.copy import ArrayParam, array_param
from twin.ingest.domain.equipment import COLUMNS as EQUIPMENT_COLUMNS
from twin.ingest.domain.model import BatchKey, RackBatch
from twin.ingest.domain.rows import (
    GPU_NODE_COLUMNS,
    LINK_RACK_COLUMNS,
    ArrayRows,
    TableColumns,
    gpu_node_columns,
    link_rack_columns,
    rack_columns,
)

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"  # package data: same path installed or editable

GPU_TYPES = ["timestamptz", "text", "text", "int2"] + ["float8"] * 10 + ["int8"] * 3   # the telemetry_gpu view's columns
RACK_TYPES = ["timestamptz", "text"] + ["float8"] * 9
LINK_SAMPLE_TYPES = ["timestamptz", "int4"] + ["int8"] * 4 + ["int2"]
GPU_NODE_TYPES = ["timestamptz", "int4", "int2"] + ["float8[]"] * 10 + ["int8[]"] * 3
LINK_RACK_TYPES = ["timestamptz", "int4"] + ["int8[]"] * 4 + ["int2[]"]


@dataclass(frozen=True)
class StoreItem:
    batch: RackBatch
    ce_id: str
    topic: str
    partition: int
    offset: int
    digest: str | None = None  # of the record value; tells a corrected re-send from an identical one

    @classmethod
    def direct(cls, batch, ce_id, topic, partition, offset, digest=None) -> StoreItem:
        """cls(...) without the frozen dataclass's object.__setattr__ per field, like the domain objects' `direct`
        constructors (twin.ingest.domain.model): one item per batch, 3.2 -> 1.7 ms CPU per 100k-GPU tick."""
        self = object.__new__(cls)
        self.__dict__.update(batch=batch, ce_id=ce_id, topic=topic, partition=partition, offset=offset, digest=digest)
        return self


@dataclass
class StoreOutcome:
    new: list[int] = field(default_factory=list)          # indexes into the items: stored now
    redelivered: list[int] = field(default_factory=list)  # stored earlier from this same record
    duplicates: list[int] = field(default_factory=list)   # stored earlier from another, identical record
    conflicts: list[int] = field(default_factory=list)    # stored earlier with other values (digest differs)
    stored_digests: dict[int, str | None] = field(default_factory=dict)  # index -> ledger digest, for clashes
    rows: dict[str, int] = field(default_factory=dict)    # table -> rows copied
    seconds: float = 0.0


class EntityKeys:
    """(rack_id, name) → the integer key of a dimension table's row, cached; one key array per rack's name list.

    One cache per dimension table: telemetry_port_entity (ports, migration 007), telemetry_node_entity
    (nodes, 009), telemetry_port_set (a rack's port list, 011: its name is the text of its port-key array).
    `ident(batch)` is what a rack's cached keys hold for (its port ids, its node ids); `names(batch)` the
    batch's names in row order (default: `ident`), asked only when the rack's ident changed. The SQL parts
    see the names as `k(rack_id, name)` (text) and the table as `e`: `values` fill `columns` on insert,
    `conflict` is the unique key, `match` finds a name's row; `also` (optional) runs after the insert in its
    transaction with the same parameters (the set members).
    """

    def __init__(self, table: str, key_column: str, ident: Callable[[RackBatch], tuple],
                 names: Callable[[RackBatch], tuple[str, ...]] | None = None, *, name_column: str = "",
                 columns: str = "", values: str = "k.rack_id, k.name", conflict: str = "", match: str = "",
                 also: str | None = None) -> None:
        self.keys: dict[tuple[str, str], int] = {}
        self._ident = ident
        self._names = names or ident
        self._by_rack: dict[str, tuple[tuple, np.ndarray]] = {}
        pairs = "unnest(%b::text[], %b::text[]) AS k(rack_id, name)"
        columns = columns or f"rack_id, {name_column}"
        conflict = conflict or f"rack_id, {name_column}"
        match = match or f"e.rack_id = k.rack_id AND e.{name_column} = k.name"
        self._insert = (f"INSERT INTO {table} ({columns}) SELECT {values} FROM {pairs} ORDER BY 1, 2 "
                        f"ON CONFLICT ({conflict}) DO NOTHING")
        self._also = also
        self._select = (f"SELECT k.i, e.{key_column} FROM {table} e "
                        f"JOIN unnest(%b::text[], %b::text[]) WITH ORDINALITY AS k(rack_id, name, i) ON {match}")

    def _fresh(self, batch: RackBatch) -> bool:
        hit = self._by_rack.get(batch.rack_id)
        return hit is not None and hit[0] == self._ident(batch)

    def missing(self, batches: Sequence[RackBatch]) -> list[tuple[str, str]]:
        """The (rack_id, name) pairs of `batches` without a known key, each once, in order of appearance (the
        INSERT orders its rows itself; sorting ~100k pairs here was a sixth of a first sight's CPU)."""
        pairs = chain.from_iterable(zip(repeat(b.rack_id), self._names(b), strict=False)
                                    for b in batches if not self._fresh(b))
        return list(dict.fromkeys(filterfalse(self.keys.__contains__, pairs)))   # in C, no Python step per name

    async def resolve(self, conn: AsyncConnection, pairs: Sequence[tuple[str, str]]) -> None:
        """Create the entity rows of `pairs` that do not exist yet and learn every key (own transaction)."""
        if not pairs:
            return
        # Known entities (after a restart or a rebalance: most of them) are only looked up.
        params = _pair_params(pairs)
        await self._learn(conn, pairs, params)
        new = list(filterfalse(self.keys.__contains__, pairs))
        if not new:
            return
        if len(new) < len(pairs):
            params = _pair_params(new)
        async with conn.transaction():
            await conn.execute(self._insert, params)
            if self._also:
                await conn.execute(self._also, params)
        await self._learn(conn, new, params)

    async def _learn(self, conn: AsyncConnection, pairs: Sequence[tuple[str, str]],
                     params: tuple[ArrayParam, ArrayParam]) -> None:
        # Binary parameters (%b), as for the ledger: the text format runs a regex over every element (first
        # sight of a 50k-GPU site's ~50k ports: most of a restarted process's first-tick cost in a profile).
        # The rows answer a pair's position, not its text: nothing to decode or build per name.
        cur = await conn.execute(self._select, params)
        self.keys.update((pairs[i - 1], key) for i, key in await cur.fetchall())

    def of(self, batch: RackBatch) -> np.ndarray:
        hit = self._by_rack.get(batch.rack_id)
        ident = self._ident(batch)
        if hit is not None and hit[0] == ident:
            return hit[1]
        names = self._names(batch)
        keys = np.fromiter(map(self.keys.__getitem__, zip(repeat(batch.rack_id), names, strict=False)), np.int32,
                           len(names))
        self._by_rack[batch.rack_id] = (ident, keys)
        return keys


def _pair_params(pairs: Sequence[tuple[str, str]]) -> tuple[ArrayParam, ArrayParam]:
    """(rack ids, names) of `pairs` as text[] parameters built with numpy (array_param): psycopg's list dumping
    was most of a restarted process's first tick (100k-GPU site: ~100k ports, 12.5k nodes, looked up twice)."""
    return array_param("text", [r for r, _ in pairs]), array_param("text", [n for _, n in pairs])


def port_keys() -> EntityKeys:
    return EntityKeys("telemetry_port_entity", "port_key", lambda b: b.links.port_id, name_column="port_id")


def node_keys() -> EntityKeys:
    return EntityKeys("telemetry_node_entity", "node_key", lambda b: b.gpus.node_ids, name_column="node_id")


def port_set_keys(ports: EntityKeys) -> EntityKeys:
    """A rack's port list (in order) → its telemetry_port_set key; `ports` must know the ports' keys."""

    texts: dict[str, tuple[np.ndarray, tuple[str, ...]]] = {}   # rack -> (its port keys, their text): asked twice

    def names(b: RackBatch) -> tuple[str, ...]:
        keys = ports.of(b)
        hit = texts.get(b.rack_id)
        if hit is not None and hit[0] is keys:
            return hit[1]
        text = ("{" + ",".join(map(str, keys.tolist())) + "}",) if len(keys) else ()
        texts[b.rack_id] = (keys, text)
        return text

    # unique by the md5 of the list's text form (migration 011); the names are that text, '{k1,k2,...}'
    match = ("e.rack_id = k.rack_id AND e.port_keys_md5 = md5(k.name)::uuid "
             "AND e.port_keys = k.name::integer[]")
    members = ("INSERT INTO telemetry_port_set_member (set_key, pos, port_key) "
               "SELECT e.set_key, u.pos, u.port_key FROM telemetry_port_set e "
               f"JOIN unnest(%b::text[], %b::text[]) AS k(rack_id, name) ON {match} "
               "CROSS JOIN LATERAL unnest(e.port_keys) WITH ORDINALITY AS u(port_key, pos) "
               "ORDER BY 1, 2 ON CONFLICT (set_key, pos) DO NOTHING")
    return EntityKeys("telemetry_port_set", "set_key", lambda b: b.links.port_id, names,
                      columns="rack_id, port_keys, port_keys_md5",
                      values="k.rack_id, k.name::integer[], md5(k.name)::uuid",
                      conflict="rack_id, port_keys_md5", match=match, also=members)


class TelemetryRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.port_keys = port_keys()
        self.node_keys = node_keys()
        self.port_sets = port_set_keys(self.port_keys)
        # rack_id -> (node ids, port ids, node keys, port-set key) of its last batch: a rack sends the same
        # nodes and ports tick after tick (the decoder hands out the same tuples), so a poll's keys are one
        # dict hit and two tuple comparisons per batch instead of a pass over each of the three caches
        self._racks: dict[str, tuple[tuple[str, ...], tuple[str, ...], np.ndarray, np.ndarray]] = {}

    async def _entity_keys(self, batches: Sequence[RackBatch]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The telemetry_node_entity keys (per node) and telemetry_port_set key of every batch; unseen
        entities are resolved first (their own transaction)."""
        racks = self._racks
        nodes: list = []
        sets: list = []
        stale: list[int] = []
        for b in batches:
            hit = racks.get(b.rack_id)
            if hit is not None and hit[0] == b.gpus.node_ids and hit[1] == b.links.port_id:
                nodes.append(hit[2])
                sets.append(hit[3])
            else:
                stale.append(len(nodes))
                nodes.append(None)
                sets.append(None)
        if stale:
            changed = [batches[i] for i in stale]
            async with self.pool.connection() as conn:
                for cache in (self.port_keys, self.node_keys, self.port_sets):   # sets after their ports
                    await cache.resolve(conn, cache.missing(changed))
            for i in stale:
                b = batches[i]
                hit = racks[b.rack_id] = (b.gpus.node_ids, b.links.port_id, self.node_keys.of(b), self.port_sets.of(b))
                nodes[i], sets[i] = hit[2], hit[3]
        return nodes, sets

    async def store(self, items: Sequence[StoreItem]) -> StoreOutcome:
        """Store the new batches among `items` in one transaction (keys must be unique in `items`)."""
        started = time.perf_counter()
        out = StoreOutcome()
        if not items:
            return out
        node_keys, set_keys = await self._entity_keys([it.batch for it in items])
        async with self.pool.connection() as conn, conn.transaction():
            out.new = await _insert_ledger(conn, items)
            if len(out.new) < len(items):
                stored_now = set(out.new)
                clashes = [i for i in range(len(items)) if i not in stored_now]
                keys = [items[i].batch.key for i in clashes]
                stored = await _ledger_ce_ids(conn, keys)
                for i, key in zip(clashes, keys, strict=True):
                    ce_id, digest = stored.get(key, (None, None))
                    out.stored_digests[i] = digest
                    if ce_id == items[i].ce_id:
                        out.redelivered.append(i)
                    elif digest is not None and items[i].digest is not None and digest != items[i].digest:
                        out.conflicts.append(i)
                    else:
                        out.duplicates.append(i)
            batches = [items[i].batch for i in out.new]
            if batches:
                # rows counts readings (GPUs, ports), as when the tables had one row per reading
                gpu = gpu_node_columns(batches, [node_keys[i] for i in out.new])
                out.rows["telemetry_gpu"] = await copy_array_rows(conn, "telemetry_gpu_node", gpu)
                out.rows["telemetry_rack"] = await copy_table(conn, "telemetry_rack", rack_columns(batches), RACK_TYPES)
                links = link_rack_columns(batches, [set_keys[i] for i in out.new])
                out.rows["telemetry_link"] = await copy_array_rows(conn, "telemetry_link_rack", links)
        out.seconds = time.perf_counter() - started
        return out

    async def store_equipment(self, rows: Sequence[tuple]) -> int:
        """Equipment rows (``domain.equipment.rows``) ON CONFLICT (equipment_id, time) DO NOTHING; returns
        the rows inserted (0 for a redelivered or re-sent batch)."""
        if not rows:
            return 0
        cols = list(zip(*rows, strict=True))
        async with self.pool.connection() as conn:
            cur = await conn.execute(_EQUIPMENT_INSERT, {f"c{i}": list(c) for i, c in enumerate(cols)})
            return max(cur.rowcount, 0)


_EQUIPMENT_TYPES = ("timestamptz", "text", "text", "text", "text") + ("float8",) * len(EQUIPMENT_COLUMNS)
_EQUIPMENT_INSERT = (
    "INSERT INTO telemetry_equipment (time, site_id, equipment_id, kind, source, " + ", ".join(EQUIPMENT_COLUMNS)
    + ") SELECT * FROM unnest(" + ", ".join(f"%(c{i})s::{t}[]" for i, t in enumerate(_EQUIPMENT_TYPES))
    + ") ON CONFLICT (equipment_id, time) DO NOTHING")


def _key_arrays(keys: Sequence[BatchKey]) -> tuple[list[str], list[datetime], list[int]]:
    return [k.rack_id for k in keys], [k.sample_time for k in keys], [k.sequence for k in keys]


# The ledger rows of a poll; answers the positions (1-based, WITH ORDINALITY) of the rows inserted: smaller to
# receive than their keys, and no key objects to build and hash on this side.
_LEDGER_INSERT = """
    WITH k AS (
        SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::bigint[], %b::text[], %b::text[],
                             %b::integer[], %b::bigint[], %b::integer[], %b::text[]) WITH ORDINALITY
            AS k(rack_id, sample_time, sequence, ce_id, source_topic, source_partition, source_offset, gpu_rows,
                 content_digest, i)
    ), inserted AS (
        INSERT INTO telemetry_batches
            (rack_id, sample_time, sequence, ce_id, source_topic, source_partition, source_offset, gpu_rows,
             content_digest)
        SELECT rack_id, sample_time, sequence, ce_id, source_topic, source_partition, source_offset, gpu_rows,
               content_digest FROM k
        ON CONFLICT (rack_id, sample_time, sequence) DO NOTHING
        RETURNING rack_id, sample_time, sequence
    )
    SELECT k.i FROM inserted JOIN k USING (rack_id, sample_time, sequence)
"""
_LEDGER_TYPES = ("text", "timestamptz", "int8", "text", "text", "int4", "int8", "int4", "text")
_LEDGER_FIELDS = attrgetter("batch.rack_id", "batch.sample_time", "batch.sequence", "ce_id", "topic", "partition",
                            "offset", "digest")


async def _insert_ledger(conn: AsyncConnection, items: Sequence[StoreItem]) -> list[int]:
    """Insert the ledger rows of `items` (ON CONFLICT DO NOTHING); returns the indexes of the rows inserted, in
    order."""
    # Binary parameters (%b): psycopg's text format escapes every array element through a regex; the
    # binary format does not (one poll of 1,562 batches: client CPU 16-26 -> 5-8 ms, insert 37-44 -> 23-25 ms);
    # built with numpy (array_param), not dumped element by element by psycopg.
    racks, times, seqs, ce_ids, topics, partitions, offsets, digests = zip(*map(_LEDGER_FIELDS, items), strict=True)
    gpu_rows = [len(it.batch.gpus.gpu_index) for it in items]
    params = [array_param(t, v) for t, v in zip(_LEDGER_TYPES, (racks, times, seqs, ce_ids, topics, partitions, offsets,
                                                                gpu_rows, digests), strict=True)]
    cur = await conn.execute(_LEDGER_INSERT, params)
    return sorted(i - 1 for (i,) in await cur.fetchall())


async def _ledger_ce_ids(conn: AsyncConnection, keys: Sequence[BatchKey]) -> dict[BatchKey, tuple[str, str | None]]:
    racks, times, seqs = _key_arrays(keys)
    cur = await conn.execute(
        """
        SELECT b.rack_id, b.sample_time, b.sequence, b.ce_id, b.content_digest
        FROM telemetry_batches b
        JOIN unnest(%b::text[], %b::timestamptz[], %b::bigint[]) AS k(rack_id, sample_time, sequence)
          USING (rack_id, sample_time, sequence)
        """,
        (racks, times, seqs),
    )
    return {BatchKey(r, t, s): (ce, digest) for r, t, s, ce, digest in await cur.fetchall()}


ARRAY_TABLES = {   # table -> (columns, COPY types) of the per-entity array tables
    "telemetry_gpu_node": (GPU_NODE_COLUMNS, GPU_NODE_TYPES),
    "telemetry_link_rack": (LINK_RACK_COLUMNS, LINK_RACK_TYPES),
}


async def copy_array_rows(conn: AsyncConnection, table: str, rows: ArrayRows, like: str | None = None) -> int:
    """Binary COPY of per-entity array rows into `table` (columns and types of ARRAY_TABLES[`like` or
    `table`]), one COPY per array width (a site has a few node types and rack port counts: a 50k-GPU tick's
    node rows sent as 1, 2 or 4 COPYs took 52, 50, 57 ms median, within noise); returns the readings stored."""
    names, types = ARRAY_TABLES[like or table]
    for group in rows.groups.values():
        await copy_columns(conn, table, list(names), types, [group[c] for c in names])
    return rows.readings


async def copy_table(conn: AsyncConnection, table: str, data: TableColumns, types: list[str]) -> int:
    """Binary COPY of column arrays into `table` (twin.core.db.copy_columns); NaN floats → NULL."""
    if len(data) == 0:
        return 0
    names = list(data.columns)
    arrays = [_null_invalid(a) if a.dtype.kind == "f" else a for a in data.columns.values()]
    return await copy_columns(conn, table, names, types, arrays)


def _null_invalid(values: np.ndarray) -> np.ndarray:
    """NaN/±inf → masked (NULL); an all-finite column (the usual case) is passed as is, unmasked."""
    return values if np.isfinite(values).all() else np.ma.masked_invalid(values)
