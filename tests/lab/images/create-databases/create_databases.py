"""Create the portal's databases and users from the environment that the
MIP 7.1.0 compose file gives hbpmip/create-databases.

Reads DB_HOST, DB_PORT, DB_ADMIN_USER and DB_ADMIN_PASSWORD. Then, for each
n from 1 to 9 where DB<n> is set, it ensures that the user USER<n> exists with
the password PASSWORD<n> and owns the database DB<n>. Running it again changes
nothing but the passwords, which it sets to the given values. It waits up to
DB_WAIT_SECONDS (default 60) for the server, and exits 0 on success.
"""

import os
import subprocess
import sys
import time

MAX_DATABASES = 9


def quote_identifier(name):
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value):
    return "'" + value.replace("'", "''") + "'"


def run_psql(sql, database="postgres", capture=False):
    """Run SQL through psql as the admin user.

    The SQL goes on stdin so that passwords never appear in the process list.
    """
    env = dict(os.environ, PGPASSWORD=os.environ["DB_ADMIN_PASSWORD"])
    command = [
        "psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align",
        "-v", "ON_ERROR_STOP=1",
        "--host", os.environ["DB_HOST"], "--port", os.environ.get("DB_PORT", "5432"),
        "--username", os.environ["DB_ADMIN_USER"], "--dbname", database,
    ]
    result = subprocess.run(command, input=sql, env=env, text=True, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip())
    return result.stdout.strip() if capture else None


def wait_for_server(timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            run_psql("SELECT 1;", capture=True)
            return
        except RuntimeError as error:
            if time.monotonic() > deadline:
                raise RuntimeError("database server %s:%s did not accept connections within %d s: %s"
                                   % (os.environ["DB_HOST"], os.environ.get("DB_PORT", "5432"),
                                      timeout, error))
            time.sleep(2)


def ensure_database(database, user, password):
    role_exists = run_psql("SELECT 1 FROM pg_roles WHERE rolname = %s;" % quote_literal(user),
                           capture=True)
    verb = "ALTER" if role_exists else "CREATE"
    run_psql("%s ROLE %s LOGIN PASSWORD %s;" % (verb, quote_identifier(user), quote_literal(password)))

    database_exists = run_psql("SELECT 1 FROM pg_database WHERE datname = %s;" % quote_literal(database),
                               capture=True)
    if database_exists:
        print("create-databases: database %s exists; user %s updated" % (database, user))
        return
    # CREATE DATABASE cannot run inside a transaction block, so it goes alone.
    run_psql("CREATE DATABASE %s OWNER %s;" % (quote_identifier(database), quote_identifier(user)))
    print("create-databases: created database %s owned by %s" % (database, user))


def main():
    for name in ("DB_HOST", "DB_ADMIN_USER", "DB_ADMIN_PASSWORD"):
        if not os.environ.get(name):
            print("create-databases: environment variable %s is missing" % name, file=sys.stderr)
            return 2

    try:
        wait_for_server(int(os.environ.get("DB_WAIT_SECONDS", "60")))
        for index in range(1, MAX_DATABASES + 1):
            database = os.environ.get("DB%d" % index)
            if not database:
                continue
            user = os.environ.get("USER%d" % index, database)
            password = os.environ.get("PASSWORD%d" % index)
            if not password:
                print("create-databases: PASSWORD%d is missing for database %s" % (index, database),
                      file=sys.stderr)
                return 2
            ensure_database(database, user, password)
    except RuntimeError as error:
        print("create-databases: %s" % error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
