#!/usr/bin/env python3
"""What the audit trail's indexes cost each group commit (docs/benchmarks.md, 2026-12-07).

Replays audit group commits the way the FHIR read benchmark makes them (13 entries per commit, the
reads spread over 200 patients, WAL with synchronous=FULL, a passive checkpoint now and then) on
the trail's schema before migration 0011, with all its indexes kept in audit_log (as before 0011),
without the (entity_type, entity_id, seq) index (as 0011 left it), and without any index but the
primary key (as 0012 leaves it; the indexes are then built in bulk), and prints commits per
second, CPU seconds and WAL bytes. Python's own SQLite does the work; only the differences
between the runs matter.

Run: python3 benches/audit_index_cost.py [--commits 3000] [--group 13] [--patients 200] [--rounds 2]
"""
import argparse
import hashlib
import os
import pathlib
import resource
import sqlite3
import tempfile
import time
import uuid

SCHEMA = pathlib.Path(__file__).resolve().parent.parent / "migrations/sqlite/0002_audit.sql"

# What each schema drops from 0002's audit_log.
SCHEMAS = [
    ("all indexes in audit_log", []),
    ("entity index in bulk (0011)", ["audit_log_entity"]),
    ("all indexes in bulk (0012)",
     ["audit_log_entity", "audit_log_actor", "audit_log_action", "audit_log_at"]),
]


def run(label, dropped, commits, group, patients, path):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA wal_autocheckpoint=25000")
    db.executescript(SCHEMA.read_text())
    for index in dropped:
        db.execute(f"DROP INDEX {index}")
    ids = [str(uuid.uuid4()) for _ in range(patients)]
    actor, seq, prev = str(uuid.uuid4()), 0, "0" * 64

    def entries():
        nonlocal seq, prev
        rows = []
        for n in range(group):
            seq += 1
            digest = hashlib.sha256(f"{prev}{seq}".encode()).hexdigest()
            patient = ids[(seq * 7919) % patients]
            rows.append((seq, int(time.time() * 1000), actor, "fhir.view", "Patient", patient,
                         "success", "127.0.0.1", "{}", prev, digest))
            prev = digest
        return rows

    insert = "INSERT INTO audit_log VALUES (?,?,?,?,?,?,?,?,?,?,?)"
    for _ in range(2000 // group):  # a trail that already holds entries
        db.execute("BEGIN IMMEDIATE")
        db.executemany(insert, entries())
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.time()
    for i in range(commits):
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE audit_head SET seq = seq + ? WHERE id = 1", (group,))
        db.executemany(insert, entries())
        db.execute("UPDATE audit_head SET hash = ? WHERE id = 1", (prev,))
        db.execute("COMMIT")
        if i % 800 == 799:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    wall = time.time() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    wal = os.path.getsize(path + "-wal")
    db.close()
    print(f"{label:<28}: {commits / wall:6.0f} commits/s, CPU {cpu:.2f} s "
          f"({cpu / commits * 1e3:.2f} ms per commit), WAL {wal / 1e6:.1f} MB "
          f"({wal / commits / 1024:.1f} KiB per commit)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--commits", type=int, default=3000)
    p.add_argument("--group", type=int, default=13)
    p.add_argument("--patients", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "audit.db")
        for _ in range(a.rounds):
            for label, dropped in SCHEMAS:
                run(label, dropped, a.commits, a.group, a.patients, path)


if __name__ == "__main__":
    main()
