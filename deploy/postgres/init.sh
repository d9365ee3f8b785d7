#!/bin/sh
# Run by the postgres image on its first start (an empty data directory): the role Grafana's
# 督查考核 dashboard signs in with. The ledger creates its tables later; the compose service
# ledger-grants then lets this role read the case tables, and only those (the console's users
# and sessions share the database).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE grafana_reader LOGIN PASSWORD '${GRAFANA_READER_PASSWORD}';
GRANT CONNECT ON DATABASE "$POSTGRES_DB" TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
SQL
