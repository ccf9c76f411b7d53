#!/usr/bin/env python3
"""The insert-only floor of HL7 ingest's SQLite write set (docs/benchmarks.md, HL7 section).

Replays the rows a real `hl7_ingest` run left behind (saved with `--keep-db PATH`) into a fresh
database built from migrations/sqlite, `batch` messages per transaction, with the pragmas Wardline
uses (WAL, synchronous=FULL), one `executemany` per table and transaction so the interpreter adds
about a microsecond per row. It answers: how fast could *any* code store this write set here?

What it leaves out makes the real ingest dearer, never cheaper: every read (duplicate check,
encounter and room lookups, users), every update and delete (encounter updates, membership
removals, the stream position and audit head), parsing, sealing, hashing, ACKs and TCP. Foreign
keys are off by default because each table's rows are split across transactions in proportion,
not message by message (`--foreign-keys on` fails for that reason, not for Wardline's).

    cargo bench --bench hl7_ingest -- --connections 1 --messages 3000 --keep-db /tmp/ingest.db
    python3 benches/sqlite_floor.py /tmp/ingest.db --batch 1,8 [--skip audit_log] [--audit-only hl7.receive]
"""
import argparse
import glob
import multiprocessing
import os
import sqlite3
import tempfile
import time
import uuid

TABLES = ["data_keys", "patients", "patient_identifiers", "encounters", "rooms", "room_members",
          "messages", "hl7_inbox", "audit_log"]
SEEDED = ["users", "stream_position", "audit_head"]


def fresh(directory, foreign_keys):
    db = sqlite3.connect(os.path.join(directory, "floor.db"), isolation_level=None)
    migrations = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "migrations", "sqlite")
    for path in sorted(glob.glob(os.path.join(migrations, "*.sql"))):
        with open(path, encoding="utf-8") as f:
            db.executescript(f.read())
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(f"PRAGMA foreign_keys={foreign_keys}")
    return db


def insert(db, table, rows, verb="INSERT"):
    db.executemany(f"{verb} INTO {table} VALUES ({','.join('?' * len(rows[0]))})", rows)


def load(src, tables, audit_only):
    data = {t: src.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
    if audit_only and "audit_log" in data:
        keep = set(audit_only)
        data["audit_log"] = [r for r in data["audit_log"] if r[3] in keep]  # column 3: action
    return data


def replay(src, batch, tables, foreign_keys, audit_only):
    messages = src.execute("SELECT COUNT(*) FROM hl7_inbox").fetchone()[0]
    data = load(src, tables, audit_only)
    rows = sum(len(v) for v in data.values())
    with tempfile.TemporaryDirectory() as directory:
        db = fresh(directory, foreign_keys)
        for t in SEEDED:
            seed = src.execute(f"SELECT * FROM {t}").fetchall()
            if seed:
                insert(db, t, seed, "INSERT OR REPLACE")  # migrations seed some
        batches = -(-messages // batch)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for b in range(batches):
            db.execute("BEGIN IMMEDIATE")
            for t in tables:
                lo, hi = len(data[t]) * b // batches, len(data[t]) * (b + 1) // batches
                if hi > lo:
                    insert(db, t, data[t][lo:hi])
            db.execute("COMMIT")
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        db.close()
    print(f"batch {batch:3}: {messages} messages, {rows / messages:.1f} rows each "
          f"({', '.join(tables)}): {wall * 1e6 / messages:.0f} us/msg wall = {messages / wall:,.0f} msg/s, "
          f"{cpu * 1e6 / messages:.0f} us/msg CPU")


def chunk(rows, i, parts):
    return rows[len(rows) * i // parts:len(rows) * (i + 1) // parts]


def pg_writer(url, data, tables, messages, k, writers):
    """One PostgreSQL session committing its share of the messages one by one (stop-and-wait)."""
    import psycopg  # imported here: only `--postgres` needs it
    with psycopg.connect(url) as db:
        db.execute("SET session_replication_role = replica")  # foreign keys off, as on SQLite
        db.commit()
        for m in range(k, messages, writers):
            with db.transaction(), db.cursor() as cur:
                for t in tables:
                    rows = chunk(data[t], m, messages)
                    if rows:
                        cur.executemany(f"INSERT INTO {t} VALUES ({','.join(['%s'] * len(rows[0]))})", rows)


def replay_pg(server, src, writers, tables, audit_only):
    import psycopg
    messages = src.execute("SELECT COUNT(*) FROM hl7_inbox").fetchone()[0]
    data = load(src, tables, audit_only)
    name = f"wl_floor_{uuid.uuid4().hex}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = f"{server}/{name}"
    try:
        migrations = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "migrations", "postgres")
        with psycopg.connect(url, autocommit=True) as db:
            for path in sorted(glob.glob(os.path.join(migrations, "*.sql"))):
                with open(path, encoding="utf-8") as f:
                    db.execute(f.read())
            for t in SEEDED:
                seed = src.execute(f"SELECT * FROM {t}").fetchall()
                db.execute(f"DELETE FROM {t}")
                if seed:
                    with db.cursor() as cur:
                        cur.executemany(f"INSERT INTO {t} VALUES ({','.join(['%s'] * len(seed[0]))})", seed)
        busy0, pg0 = cpu_busy(), postgres_cpu()
        wall0 = time.perf_counter()
        procs = [multiprocessing.Process(target=pg_writer, args=(url, data, tables, messages, k, writers))
                 for k in range(writers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
            if p.exitcode:
                raise SystemExit(f"a writer failed (exit {p.exitcode})")
        wall = time.perf_counter() - wall0
        busy = cpu_busy() - busy0
        pg = postgres_cpu() - pg0  # the writers' backends have exited: counted via the postmaster
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    rows = sum(len(v) for v in data.values())
    print(f"PostgreSQL, {writers} writers, one message per transaction: {messages} messages, "
          f"{rows / messages:.1f} rows each: {wall * 1e6 / messages:.0f} us/msg wall = "
          f"{messages / wall:,.0f} msg/s; CPU per message: {pg * 1e6 / messages:.0f} us in PostgreSQL, "
          f"{busy * 1e6 / messages:.0f} us on the whole machine")


def postgres_cpu():
    """CPU-seconds used so far by live `postgres` processes (the server's share of the work)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.index("(") + 1:stat.rindex(")")] == "postgres":
            v = stat[stat.rindex(")") + 2:].split()
            total += int(v[11]) + int(v[12]) + int(v[13]) + int(v[14])  # own and waited-for children
    return total / os.sysconf("SC_CLK_TCK")


def cpu_busy():
    """CPU-seconds the whole machine spent not idle (all processes: PostgreSQL's included)."""
    with open("/proc/stat", encoding="ascii") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("db", help="a database saved by `hl7_ingest --keep-db`")
    p.add_argument("--batch", default="1,8", help="messages per transaction, comma-separated")
    p.add_argument("--skip", default="", help="tables to leave out, comma-separated")
    p.add_argument("--foreign-keys", default="off", choices=["on", "off"])
    p.add_argument("--audit-only", default="",
                   help="replay only these audit actions, comma-separated (what one entry per message would cost)")
    p.add_argument("--postgres", metavar="SERVER_URL",
                   help="replay into a fresh database on this server instead (psycopg 3 needed)")
    p.add_argument("--writers", default="1,8", help="with --postgres: concurrent sessions, comma-separated")
    a = p.parse_args()
    src = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True)
    skip = set(filter(None, a.skip.split(",")))
    tables = [t for t in TABLES if t not in skip]
    audit_only = list(filter(None, a.audit_only.split(",")))
    if a.postgres:
        for writers in (int(w) for w in a.writers.split(",")):
            replay_pg(a.postgres, src, writers, tables, audit_only)
        return
    print(f"SQLite {sqlite3.sqlite_version} (Python's; Wardline bundles its own)")
    for batch in (int(b) for b in a.batch.split(",")):
        replay(src, batch, tables, a.foreign_keys, audit_only)


if __name__ == "__main__":
    main()
