"""DDL of the append-only, hash-chained audit log (schema ``audit`` of the warehouse database).

Writers hold INSERT only. A SECURITY DEFINER trigger owned by ``audit_owner`` serialises
appends, numbers each event and links it to the one before:

    hash = sha256(canonical(seq, event_id, occurred_at, event_type, actor, run_id, payload,
                            prev_hash))

Another trigger refuses UPDATE, DELETE and TRUNCATE. The owner can still switch triggers off
and edit rows, which is why ``mlsec audit verify`` recomputes every link on its own (see
``chain.py``) and checks the head against an anchor kept in OpenBao.
"""

# Both this SQL and `chain.canonical_text` must build the same text; the verifier never
# trusts the database function.
CANONICAL_SQL = """
CREATE OR REPLACE FUNCTION audit.canonical(
    seq bigint, event_id uuid, occurred_at timestamptz, event_type text, actor text,
    run_id text, payload jsonb, prev_hash text
) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT concat_ws('|',
        seq::text,
        event_id::text,
        to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        event_type,
        actor,
        coalesce(run_id, ''),
        payload::text,
        prev_hash)
$$;
"""

AUDIT_DDL = f"""
CREATE TABLE IF NOT EXISTS audit.events (
    seq         bigint      PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    occurred_at timestamptz NOT NULL,
    event_type  text        NOT NULL,
    actor       text        NOT NULL,
    run_id      text,
    payload     jsonb       NOT NULL,
    prev_hash   text        NOT NULL,
    hash        text        NOT NULL
);
CREATE INDEX IF NOT EXISTS events_type_time ON audit.events (event_type, occurred_at);

{CANONICAL_SQL}

CREATE OR REPLACE FUNCTION audit.chain_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
DECLARE
    last_seq  bigint;
    last_hash text;
BEGIN
    -- One appender at a time, held until commit, so the chain never forks.
    PERFORM pg_advisory_xact_lock(hashtext('mlsec.audit.events'));
    SELECT e.seq, e.hash INTO last_seq, last_hash FROM audit.events e ORDER BY e.seq DESC LIMIT 1;
    NEW.seq         := coalesce(last_seq, 0) + 1;
    NEW.prev_hash   := coalesce(last_hash, repeat('0', 64));
    NEW.occurred_at := clock_timestamp();  -- server time: writers cannot backdate
    NEW.hash := encode(sha256(convert_to(audit.canonical(
        NEW.seq, NEW.event_id, NEW.occurred_at, NEW.event_type, NEW.actor, NEW.run_id,
        NEW.payload, NEW.prev_hash), 'UTF8')), 'hex');
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit.events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

DROP TRIGGER IF EXISTS events_chain ON audit.events;
CREATE TRIGGER events_chain BEFORE INSERT ON audit.events
    FOR EACH ROW EXECUTE FUNCTION audit.chain_event();
DROP TRIGGER IF EXISTS events_append_only ON audit.events;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON audit.events
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
DROP TRIGGER IF EXISTS events_no_truncate ON audit.events;
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON audit.events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

REVOKE ALL ON audit.events FROM PUBLIC;
GRANT INSERT ON audit.events TO audit_writer;
GRANT SELECT ON audit.events TO audit_reader;
REVOKE ALL ON FUNCTION audit.chain_event() FROM PUBLIC;
"""
