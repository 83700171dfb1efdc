"""`git model drift --sql`: the printed query, run by DuckDB over a table of a demo log, gives exactly the
counts our own reader gets, and its saved result reads back through --profile."""
from __future__ import annotations

import json

import pytest

from tests.func.monitorkit import demo_logs  # noqa: F401  (a fixture)
from tests.func.stagekit import gm, gm_ok

duckdb = pytest.importorskip("duckdb", reason="duckdb comes with the dev extra")

V2 = "sentiment@v1.2.0"
COLUMNS = {"ts": "VARCHAR", "model": "VARCHAR", "version": "VARCHAR", "input": "VARCHAR", "output": "VARCHAR",
           "label": "VARCHAR", "confidence": "DOUBLE", "category": "VARCHAR"}


def table_of(folder) -> "duckdb.DuckDBPyConnection":
    con = duckdb.connect()
    columns = ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items())
    con.execute(f"CREATE TABLE prod_logs AS SELECT * FROM read_json('{folder}/*.jsonl', "
                f"format = 'newline_delimited', columns = {{{columns}}})")
    return con


@pytest.mark.parametrize("window", [(), ("--since", "2026-01-01", "--until", "2999-01-01")])
def test_the_query_counts_what_our_reader_counts(released, demo_logs, tmp_path, window):
    query = gm_ok("drift", "sentiment", "--sql", "prod_logs", "--baseline", V2, *window).stdout
    assert "UNION ALL" in query and "GROUP BY" in query
    con = table_of(demo_logs["v3"])
    rows = con.execute(query).fetchall()
    result = tmp_path / "result.csv"
    con.execute(f"COPY ({query.rstrip()}) TO '{result}' (HEADER, DELIMITER ',')")
    ours = tmp_path / "ours.json"
    gm("drift", "sentiment", "--log", str(demo_logs["v3"]), "--baseline", V2, *window, "--save-profile", str(ours))
    expected = json.loads(ours.read_text())
    from gitmodel import profilesql, profiles

    binning = profiles.load(ours).binning
    counted = profilesql.from_rows([(s, b, n) for s, b, n in rows], binning, "sentiment", None, "duckdb").to_dict()
    assert counted["n"] == expected["n"] == 600
    for name, entry in expected["signals"].items():
        got = counted["signals"][name]
        assert (got["counts"], got["n"]) == (entry["counts"], entry["n"]), name
        assert got.get("unseen") == entry.get("unseen")
        if entry["kind"] == "continuous":
            assert (got["min"], got["max"]) == (entry["min"], entry["max"])
            assert got["sum"] == pytest.approx(entry["sum"])
    assert counted["signals"]["output.version"]["unseen"] == {"v1.10.0": 600}
    # the saved result, read back by --profile, gives the PSI the logs give
    from_sql = json.loads(gm("drift", "sentiment", "--profile", str(result), "--baseline", V2, "--json").stdout)
    from_log = json.loads(gm("drift", "sentiment", "--log", str(demo_logs["v3"]), "--baseline", V2, *window,
                             "--json").stdout)
    assert [(s["signal"], s["psi"], s["band"]) for s in from_sql["signals"]] == \
        [(s["signal"], s["psi"], s["band"]) for s in from_log["signals"]]


def test_a_query_result_of_another_baseline_is_refused(released, demo_logs, tmp_path):
    query = gm_ok("drift", "sentiment", "--sql", "prod_logs", "--baseline", "sentiment@v1.0.0").stdout
    result = tmp_path / "result.json"
    table_of(demo_logs["v2"]).execute(f"COPY ({query.rstrip()}) TO '{result}' (FORMAT JSON)")
    refused = gm("drift", "sentiment", "--profile", str(result), "--baseline", V2)
    assert refused.exit_code == 3
    assert "the query was written for other bins" in refused.stderr and "made against another baseline" in refused.stderr


def test_a_table_name_that_is_not_one_is_refused(released):
    result = gm("drift", "sentiment", "--sql", "logs; DROP TABLE x", "--baseline", V2)
    assert result.exit_code == 3 and "'logs; DROP TABLE x' is not a table name" in result.stderr
