"""Runs a job on the current ClickHouse engine, in process (chdb-core).

Reads a JSON job on stdin:
  {"config": "<clickhouse config xml text>",
   "statements": ["CREATE ...", ...],
   "inserts": [{"table": "db.t", "rows": [{...}, ...]}],
   "after": ["INSERT ... SELECT ...", ...],
   "queries": {"name": "SELECT ...", ...}}
and prints {"version": "...", "results": {"name": [row, ...]}} where rows are
JSON objects. Any error exits non-zero with the failing statement.
"""
import json
import os
import sys
import tempfile

import chdb


def main():
    job = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "config.xml")
        with open(config, "w") as f:
            f.write(job["config"])
        conn = chdb.connect(f":memory:?config-file={config}")
        cur = conn.cursor()

        def run(sql):
            try:
                cur.execute(sql)
            except Exception as e:  # report which statement failed
                sys.exit(f"chdb failed: {e}\n--- statement ---\n{sql}")

        run("SELECT version()")
        version = cur.fetchone()[0]
        for sql in job["statements"]:
            run(sql)
        for insert in job["inserts"]:
            lines = "\n".join(json.dumps(r) for r in insert["rows"])
            run(f"INSERT INTO {insert['table']} FORMAT JSONEachRow\n{lines}")
        for sql in job.get("after", []):
            run(sql)
        results = {}
        for name, sql in job["queries"].items():
            run(sql)
            cols = [d[0] for d in cur.description]
            results[name] = [dict(zip(cols, row)) for row in cur.fetchall()]
        print(json.dumps({"version": version, "results": results}, default=str))


if __name__ == "__main__":
    main()
