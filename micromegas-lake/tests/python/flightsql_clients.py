"""Queries a micromegas FlightSQL server with two independent clients and prints what they saw.

Usage: flightsql_clients.py PORT TOKEN QUERIES_JSON

- pyarrow.flight: Basic-auth handshake, then GetFlightInfo/DoGet with FlightSQL commands
  packed by hand (CommandStatementQuery, CommandGetTables, CommandGetSqlInfo), counting the
  record batches of each stream.
- ADBC (adbc-driver-flightsql): a bearer token, DB-API queries, table schemas and a
  prepared statement.

Prints one JSON object: {"pyarrow": {...}, "adbc": {...}, "refusals": {...}}.
"""

import json
import sys

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi
import pyarrow as pa
import pyarrow.flight as flight


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, wire_type, payload):
    key = varint((number << 3) | wire_type)
    if wire_type == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def any_command(name, body):
    """A FlightSQL command packed in google.protobuf.Any."""
    url = ("type.googleapis.com/arrow.flight.protocol.sql." + name).encode()
    return field(1, 2, url) + field(2, 2, body)


def statement(sql):
    return any_command("CommandStatementQuery", field(1, 2, sql.encode()))


def get_tables(include_schema):
    body = field(4, 2, b"BASE TABLE") + field(5, 0, varint(1 if include_schema else 0))
    return any_command("CommandGetTables", body)


def get_sql_info():
    return any_command("CommandGetSqlInfo", b"")


def fetch(client, options, command):
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command), options)
    assert len(info.endpoints) == 1, info.endpoints
    reader = client.do_get(info.endpoints[0].ticket, options)
    batches = []
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            break
        batches.append(chunk.data)
    table = pa.Table.from_batches(batches, schema=reader.schema)
    return info.schema, table, len(batches)


def rows(table):
    return json.loads(json.dumps(table.to_pylist(), default=str))


def with_pyarrow(port, token, queries):
    client = flight.FlightClient(f"grpc://127.0.0.1:{port}")
    header = client.authenticate_basic_token(b"grafana", token.encode())
    options = flight.FlightCallOptions(headers=[header])
    out = {"handshake_header": [h.decode() for h in header], "queries": [], "batches": {}}
    for sql in queries:
        schema, table, _ = fetch(client, options, statement(sql))
        assert schema == table.schema, (schema, table.schema)
        out["queries"].append(rows(table))
    _, big, n = fetch(client, options, statement("SELECT * FROM log_entries"))
    out["batches"] = {"rows": big.num_rows, "record_batches": n}
    _, tables, _ = fetch(client, options, get_tables(True))
    out["tables"] = {}
    for row in tables.to_pylist():
        schema = pa.ipc.read_schema(pa.py_buffer(row["table_schema"]))
        out["tables"][row["table_name"]] = {
            "catalog": row["catalog_name"],
            "schema": row["db_schema_name"],
            "type": row["table_type"],
            "columns": schema.names,
        }
    _, info, _ = fetch(client, options, get_sql_info())
    out["sql_info_rows"] = info.num_rows
    return out


def with_adbc(port, token, queries):
    out = {"queries": []}
    with adbc_driver_flightsql.dbapi.connect(
        f"grpc://127.0.0.1:{port}",
        db_kwargs={
            adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"
        },
        autocommit=True,
    ) as conn:
        with conn.cursor() as cur:
            for sql in queries:
                cur.execute(sql)
                out["queries"].append(rows(cur.fetch_arrow_table()))
            cur.adbc_prepare("SELECT COUNT(*) AS n FROM spans")
            cur.execute("SELECT COUNT(*) AS n FROM spans")
            out["prepared"] = rows(cur.fetch_arrow_table())
        out["spans_columns"] = conn.adbc_get_table_schema("spans").names
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        out["objects"] = sorted(
            t["table_name"]
            for c in objects
            for s in c["catalog_db_schemas"] or []
            for t in s["db_schema_tables"] or []
        )
    return out


def refusals(port, token):
    client = flight.FlightClient(f"grpc://127.0.0.1:{port}")
    out = {}
    try:
        client.get_flight_info(flight.FlightDescriptor.for_command(statement("SELECT 1")))
        out["no_token"] = "accepted"
    except flight.FlightUnauthenticatedError:
        out["no_token"] = "unauthenticated"
    try:
        client.authenticate_basic_token(b"grafana", b"wrong")
        out["wrong_token"] = "accepted"
    except flight.FlightUnauthenticatedError:
        out["wrong_token"] = "unauthenticated"
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
    for name, sql in [
        ("ddl", "CREATE TABLE t AS SELECT 1"),
        ("copy", "COPY (SELECT 1) TO '/tmp/micromegas-flightsql-copy.csv'"),
        ("set", "SET datafusion.execution.batch_size = 1"),
        ("syntax", "SELEC 1"),
    ]:
        try:
            client.get_flight_info(flight.FlightDescriptor.for_command(statement(sql)), options)
            out[name] = "accepted"
        except (flight.FlightError, pa.ArrowException) as e:
            out[name] = type(e).__name__ + ": " + str(e).splitlines()[0]
    return out


def main():
    port, token, queries = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    print(
        json.dumps(
            {
                "pyarrow": with_pyarrow(port, token, queries),
                "adbc": with_adbc(port, token, queries),
                "refusals": refusals(port, token),
            }
        )
    )


if __name__ == "__main__":
    main()
