#!/usr/bin/env python3
"""Times SQL queries in DuckDB over a lake's Parquet partitions (same files micromegas reads).

Usage: duckdb_bench.py LAKE_DIR RUNS < queries.json
queries.json: {"name": "SQL with {log_entries}, {measures} or {spans}", ...}
Prints {"name": {"seconds": [...], "rows": N}} as JSON. The first run of each query is a
warm-up and is not reported.
"""
import json
import sys
import time

import duckdb


def main():
    lake, runs = sys.argv[1], int(sys.argv[2])
    queries = json.load(sys.stdin)
    con = duckdb.connect()
    out = {}
    for name, sql in queries.items():
        for t in ("log_entries", "measures", "spans"):
            sql = sql.replace("{%s}" % t, "read_parquet('%s/tables/%s/*/*/*.parquet')" % (lake, t))
        rows = len(con.sql(sql).fetchall())  # warm-up
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            rows = len(con.sql(sql).fetchall())
            seconds.append(time.perf_counter() - start)
        out[name] = {"seconds": seconds, "rows": rows}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
