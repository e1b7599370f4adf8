"""Runs one query through ADBC's FlightSQL driver over TLS and prints the integer it returns.

Usage: flightsql_tls_count.py PORT CA_FILE SQL
"""

import sys

import adbc_driver_flightsql.dbapi

port, ca_file, sql = sys.argv[1], sys.argv[2], sys.argv[3]
with open(ca_file) as f:
    ca = f.read()
with adbc_driver_flightsql.dbapi.connect(
    f"grpc+tls://127.0.0.1:{port}",
    db_kwargs={"adbc.flight.sql.client_option.tls_root_certs": ca},
) as conn:
    with conn.cursor() as cursor:
        cursor.execute(sql)
        print(cursor.fetchone()[0])
