"""Each identity's S3 keys can do exactly what the catalog says, enforced by SeaweedFS itself."""

import uuid

import pytest

from mlsec_platform.identities.catalog import DELETES, READS, S3_IDENTITIES, WRITES
from mlsec_platform.settings import Zone
from mlsec_platform_tests.helpers import s3_admin, s3_as, s3_error_code

IDENTITY_NAMES = [i.name for i in S3_IDENTITIES]


@pytest.fixture
def probe_objects(supervisor, settings):
    """One fresh object per zone, put there by the admin, for read and delete probes."""
    admin = s3_admin(supervisor, settings)
    key = f"probes/{uuid.uuid4()}.txt"
    for zone in Zone:
        admin.put_object(Bucket=settings.bucket(zone), Key=key, Body=b"probe")
    return key


@pytest.mark.parametrize("identity", IDENTITY_NAMES)
def test_s3_permissions_match_the_catalog(identity, settings, endpoints, probe_objects):
    s3 = s3_as(identity, settings, endpoints)
    observed, expected = {}, {}
    for zone in Zone:
        bucket = settings.bucket(zone)
        put = s3_error_code(
            lambda b=bucket: s3.put_object(Bucket=b, Key=f"{identity}/{uuid.uuid4()}", Body=b"x")
        )
        get = s3_error_code(lambda b=bucket: s3.get_object(Bucket=b, Key=probe_objects))
        delete = s3_error_code(lambda b=bucket: s3.delete_object(Bucket=b, Key=probe_objects))
        observed[zone] = (put is None, get is None, delete is None)
        expected[zone] = (
            zone in WRITES[identity],
            zone in READS[identity],
            zone in DELETES[identity],
        )
        for code in (put, get, delete):
            assert code in (None, "AccessDenied"), f"{identity} on {zone}: unexpected {code}"
    assert observed == expected


def test_broker_cannot_write_any_zone_or_read_raw(settings, endpoints, probe_objects):
    s3 = s3_as("broker", settings, endpoints)
    for zone in Zone:
        code = s3_error_code(
            lambda z=zone: s3.put_object(
                Bucket=settings.bucket(z), Key="broker-was-here", Body=b"x"
            )
        )
        assert code == "AccessDenied", zone
    raw = settings.bucket(Zone.RAW)
    assert s3_error_code(lambda: s3.get_object(Bucket=raw, Key=probe_objects)) == "AccessDenied"
    assert s3_error_code(lambda: s3.list_objects_v2(Bucket=raw)) == "AccessDenied"


def test_pipeline_cannot_write_raw(settings, endpoints):
    s3 = s3_as("pipeline", settings, endpoints)
    raw = settings.bucket(Zone.RAW)
    assert s3_error_code(lambda: s3.put_object(Bucket=raw, Key="x", Body=b"x")) == "AccessDenied"


def test_anonymous_requests_are_refused(settings, endpoints):
    import requests

    response = requests.get(
        f"{endpoints.s3_endpoint}/{settings.bucket(Zone.GOLD)}",
        timeout=5,
        verify=settings.server_ca("s3"),
    )
    assert response.status_code == 403


def test_rotation_revokes_the_old_key_at_once(settings, endpoints):
    from click.testing import CliRunner

    from mlsec_platform.cli import main

    old = s3_as("auditor", settings, endpoints)
    bucket = settings.bucket(Zone.GOLD)
    assert s3_error_code(lambda: old.list_objects_v2(Bucket=bucket)) is None
    result = CliRunner().invoke(main, ["rotate", "s3-keys", "auditor"])
    assert result.exit_code == 0, result.output
    assert s3_error_code(lambda: old.list_objects_v2(Bucket=bucket)) == "InvalidAccessKeyId"
    new = s3_as("auditor", settings, endpoints)
    assert s3_error_code(lambda: new.list_objects_v2(Bucket=bucket)) is None


def test_rotation_rejects_unknown_identities(settings):
    from click.testing import CliRunner

    from mlsec_platform.cli import main

    result = CliRunner().invoke(main, ["rotate", "s3-keys", "mallory"])
    assert result.exit_code == 2 and "unknown identity mallory" in result.output
