"""Landing and quarantine objects quoting a subject are rewritten without them (real S3, the
eraser's key, read on the operator's `erase` token as `mlsec erase` reads it); the rest of
each object stays."""

from __future__ import annotations

import hashlib
import io
import json
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

from mlsec_platform.privacy.erasure.scope import REDACTED
from mlsec_platform.settings import Zone
from mlsec_platform.storage.erasure.objects import erase_objects


def test_lines_rows_and_record_strings_quoting_the_subject_go(eraser):
    s3, quarantine = eraser.client(), eraser.bucket(Zone.QUARANTINE)
    who, name = f"{uuid.uuid4().hex}@example.com", "João Erasmo"
    prefix = f"gateway/file/{uuid.uuid4().hex}"
    csv = f'id,email,name\n1,{who},x\n2,other@example.com,y\n3,z,"{name}"\n'.encode()
    s3.put_object(Bucket=quarantine, Key=f"{prefix}/payload", Body=csv)
    record = {"reason": f"bad row: {who}", "name": "olist_customers", "rows": [name, "ok"]}
    s3.put_object(Bucket=quarantine, Key=f"{prefix}/reason.json", Body=json.dumps(record).encode())
    sink = io.BytesIO()
    pq.write_table(pa.table({"email": [who, "b@x.com"], "n": [1, 2]}), sink)
    s3.put_object(Bucket=quarantine, Key=f"{prefix}/failure_cases.parquet", Body=sink.getvalue())
    landing = eraser.bucket(Zone.LANDING)
    key = f"processed/olist_customers/{uuid.uuid4().hex}.csv"
    sha = hashlib.sha256(csv).hexdigest()
    s3.put_object(Bucket=landing, Key=key, Body=csv, Metadata={"sha256": sha, "uploader": "u"})

    done = erase_objects(eraser, Zone.QUARANTINE, [who, name], "e1")
    places = {d.place: d.removed for d in done}
    assert places == {
        f"quarantine/{prefix}/payload": 2,
        f"quarantine/{prefix}/reason.json": 2,
        f"quarantine/{prefix}/failure_cases.parquet": 1,
    }
    payload = s3.get_object(Bucket=quarantine, Key=f"{prefix}/payload")["Body"].read()
    assert payload == b"id,email,name\n2,other@example.com,y\n"
    kept = json.loads(s3.get_object(Bucket=quarantine, Key=f"{prefix}/reason.json")["Body"].read())
    assert kept == {
        "reason": f"bad row: {REDACTED}",
        "name": "olist_customers",
        "rows": [REDACTED, "ok"],
    }
    cases = s3.get_object(Bucket=quarantine, Key=f"{prefix}/failure_cases.parquet")["Body"]
    assert pq.read_table(io.BytesIO(cases.read())).to_pylist() == [{"email": "b@x.com", "n": 2}]

    (landed,) = erase_objects(eraser, Zone.LANDING, [who, name], "e1")
    assert landed.place == f"landing/{key}"
    rewritten = s3.get_object(Bucket=landing, Key=key)
    body = rewritten["Body"].read()
    assert body == payload  # the connector's check holds: the new content's digest
    assert rewritten["Metadata"] == {
        "sha256": hashlib.sha256(body).hexdigest(),
        "uploader": "u",
        "erased-by": "e1",
    }
    assert erase_objects(eraser, Zone.LANDING, [who, name], "e2") == []  # nothing left
