"""The PostgreSQL password reaches pg_dump/pg_restore through the environment, never their command line."""

from cove.services.backup import _pg_conn


def test_password_stays_off_the_command_line():
    conn, env = _pg_conn("postgresql+psycopg://cove:s3cret@db.internal:5432/hub?sslmode=require")
    assert "s3cret" not in conn
    assert conn == "postgresql://cove@db.internal:5432/hub?sslmode=require"
    assert env["PGPASSWORD"] == "s3cret"
