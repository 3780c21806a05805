"""PostgreSQL roles, databases and grants (idempotent, run as the bootstrap superuser).

Group roles hold the privileges; people and workloads never log in as them. Vault's database
engine creates short-lived login users inside these groups (see ``vault.py``):

    warehouse_owner   owns the warehouse schemas' tables (writers act as it)
    warehouse_writer  member of warehouse_owner
    warehouse_reader  SELECT on gold and features, nothing else
    audit_owner       owns audit.events and its triggers
    audit_writer      INSERT on audit.events only
    audit_reader      SELECT on audit.events only
    lineage_reader    CONNECT on the Dagster database, SELECT on its tables (the broker's
                      lineage); never the Dagster owner login, nothing in the warehouse
    row_scope_owner   owns the row-scope signing key and the function verifying a reader's
                      scope (``storage/row_scope.py``); no login, no member
    limits_keeper     the counters of schema ``limits`` (rates, quotas, in-flight slots the
                      broker's replicas share), nothing else
"""

from __future__ import annotations

from contextlib import closing

import psycopg2
from psycopg2 import sql

from mlsec_platform.audit.schema import AUDIT_DDL
from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.serving.counters import COUNTERS_DDL
from mlsec_platform.serving.disclosures import DISCLOSURES_DDL
from mlsec_platform.settings import Zone
from mlsec_platform.storage import row_scope

GROUP_ROLES = (
    "warehouse_owner",
    "warehouse_writer",
    "warehouse_reader",
    "audit_owner",
    "audit_writer",
    "audit_reader",
    "lineage_reader",
    row_scope.OWNER,
    "limits_keeper",
)
#: Groups whose dynamic users work in the warehouse database.
WAREHOUSE_GRANTABLE = (
    "warehouse_writer",
    "warehouse_reader",
    "audit_writer",
    "audit_reader",
    "limits_keeper",
)
LINEAGE_READER = "lineage_reader"
#: Roles Vault's database engine puts its dynamic users into.
VAULT_GRANTABLE = (*WAREHOUSE_GRANTABLE, LINEAGE_READER)
VAULT_ADMIN = "vault_admin"
DAGSTER_USER = "dagster"
WAREHOUSE_SCHEMAS = ("gold", "features")


def _role_exists(cur, name: str) -> bool:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
    return cur.fetchone() is not None


def _database_exists(cur, name: str) -> bool:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    return cur.fetchone() is not None


def _login_role(cur, name: str, password: str, *extra: str) -> None:
    options = sql.SQL(" ".join(("LOGIN", *extra, "PASSWORD")))
    verb = "ALTER" if _role_exists(cur, name) else "CREATE"
    cur.execute(
        sql.SQL("{} ROLE {} WITH {} {}").format(
            sql.SQL(verb), sql.Identifier(name), options, sql.Literal(password)
        )
    )


def bootstrap_postgres(
    superuser_dsn: dict,
    *,
    warehouse_db: str,
    dagster_db: str,
    vault_admin_password: str,
    dagster_password: str,
) -> None:
    """Create or update every role, database, schema and grant the platform relies on."""
    with closing(psycopg2.connect(**{**superuser_dsn, "dbname": "postgres"})) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            for role in GROUP_ROLES:
                if not _role_exists(cur, role):
                    cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            cur.execute("GRANT warehouse_owner TO warehouse_writer")
            _login_role(cur, VAULT_ADMIN, vault_admin_password, "CREATEROLE")
            for role in VAULT_GRANTABLE:
                cur.execute(
                    sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(
                        sql.Identifier(role), sql.Identifier(VAULT_ADMIN)
                    )
                )
            # Revocation ends the sessions of expired users, not only their logins.
            cur.execute(
                sql.SQL("GRANT pg_signal_backend TO {}").format(sql.Identifier(VAULT_ADMIN))
            )
            _login_role(cur, DAGSTER_USER, dagster_password)

            for db, owner in ((warehouse_db, "warehouse_owner"), (dagster_db, DAGSTER_USER)):
                if not _database_exists(cur, db):
                    cur.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(db), sql.Identifier(owner)
                        )
                    )
                cur.execute(
                    sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db))
                )
            cur.execute("REVOKE CONNECT ON DATABASE postgres FROM PUBLIC")
            cur.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(warehouse_db),
                    sql.SQL(", ").join(map(sql.Identifier, (*WAREHOUSE_GRANTABLE, VAULT_ADMIN))),
                )
            )
            cur.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(dagster_db), sql.Identifier(LINEAGE_READER)
                )
            )

    _grant_lineage_reader(superuser_dsn, dagster_db)

    with closing(psycopg2.connect(**{**superuser_dsn, "dbname": warehouse_db})) as conn:
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            for schema in WAREHOUSE_SCHEMAS:
                cur.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION warehouse_owner").format(
                        sql.Identifier(schema)
                    )
                )
                ident = sql.Identifier(schema)
                cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO warehouse_reader").format(ident))
                cur.execute(
                    sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO warehouse_reader").format(
                        ident
                    )
                )
                cur.execute(
                    sql.SQL(
                        "ALTER DEFAULT PRIVILEGES FOR ROLE warehouse_owner IN SCHEMA {} "
                        "GRANT SELECT ON TABLES TO warehouse_reader"
                    ).format(ident)
                )
            row_scope.install(cur)
            row_scope.redeclare(cur, row_secured_tables())
            cur.execute("CREATE SCHEMA IF NOT EXISTS audit AUTHORIZATION audit_owner")
            cur.execute("GRANT USAGE ON SCHEMA audit TO audit_writer, audit_reader")
            # Objects are created as audit_owner so the chain trigger runs with its rights.
            cur.execute("SET ROLE audit_owner")
            cur.execute(AUDIT_DDL)
            cur.execute("RESET ROLE")
            # Shared limits: owned by the bootstrap role, so their keeper cannot alter them.
            cur.execute("CREATE SCHEMA IF NOT EXISTS limits")
            cur.execute(COUNTERS_DDL)
            cur.execute(DISCLOSURES_DDL)
        conn.commit()


def row_secured_tables() -> list[tuple[str, str, str]]:
    """(schema, table, row-security key) of each warehouse table the pipeline loads with a
    row-security key: Gold tables under their names, feature groups' online stores."""
    tables = []
    for spec in CATALOG.values():
        key, group = spec.row_security_key, spec.feature_group
        if key is not None and group is not None:
            tables.append((group.online_schema, group.online_name, key))
        elif key is not None and spec.zone is Zone.GOLD:
            tables.append((Zone.GOLD.value, spec.name, key))
    return tables


def _grant_lineage_reader(superuser_dsn: dict, dagster_db: str) -> None:
    """SELECT on the Dagster instance's tables, today's and those Dagster creates later.

    Dagster creates its tables lazily, as its owner login, at the instance's first use: the
    default privileges of that owner cover them whenever they appear.
    """
    reader, owner = sql.Identifier(LINEAGE_READER), sql.Identifier(DAGSTER_USER)
    conn = psycopg2.connect(**{**superuser_dsn, "dbname": dagster_db})
    with closing(conn), conn, conn.cursor() as cur:
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(reader))
        cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(reader))
        cur.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}"
            ).format(owner, reader)
        )
