"""MinIO user admin through the real ``minio.MinioAdmin`` client, against a server answering
as MinIO's admin API does (``minio_admin.py``: no MinIO server runs here). The IAM path is
exercised on the embedded SeaweedFS by every stack test (bootstrap mints its keys)."""

from __future__ import annotations

import pytest
from minio.error import MinioAdminException

from mlsec_platform.identities.catalog import S3_IDENTITIES
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.bootstrap.s3 import user_admin
from mlsec_platform.stack.bootstrap.s3_users import IamUsers, MinioUsers, policy_name
from mlsec_platform_tests.stack.bootstrap.minio_admin import MinioAdminState, serve

ADMIN = {"access_key": "minio-root", "secret_key": "minio-root-secret-0123"}


@pytest.fixture
def minio():
    state = MinioAdminState(ADMIN["access_key"], ADMIN["secret_key"])
    server, endpoint = serve(state)
    yield state, endpoint
    server.shutdown()


def _users(endpoint: str, secret: str = ADMIN["secret_key"]) -> MinioUsers:
    return MinioUsers.connect(endpoint, ADMIN["access_key"], secret, "us-east-1")


def test_every_identity_gets_its_policy_file_and_a_key_bound_to_it(minio):
    state, endpoint = minio
    users = _users(endpoint)
    keys = {}
    for identity in S3_IDENTITIES:
        users.ensure_user(identity, "acme-")
        keys[identity.name] = users.mint_key(identity.name)
    for identity in S3_IDENTITIES:
        key = keys[identity.name]
        # The same policy JSON as on the IAM path, bucket names filled in.
        assert state.policies[policy_name(identity.name)] == identity.s3_policy("acme-")
        assert state.users[key.access_key_id]["secret"] == key.secret_access_key
        assert state.users[key.access_key_id]["policies"] == [policy_name(identity.name)]
        assert users.key_ids(identity.name) == {key.access_key_id}
    assert len({k.secret_access_key for k in keys.values()}) == len(keys)
    assert all(8 <= len(k.secret_access_key) <= 40 for k in keys.values())  # MinIO's bounds


def test_rotation_adds_a_key_then_deleting_the_old_one_revokes_it(minio):
    state, endpoint = minio
    users = _users(endpoint)
    pipeline = next(i for i in S3_IDENTITIES if i.name == "pipeline")
    users.ensure_user(pipeline, "acme-")
    old = users.mint_key("pipeline")
    new = users.mint_key("pipeline")
    assert users.key_ids("pipeline") == {old.access_key_id, new.access_key_id}
    users.delete_key("pipeline", old.access_key_id)
    assert users.key_ids("pipeline") == {new.access_key_id}
    assert old.access_key_id not in state.users


def test_a_key_of_another_identity_is_never_deleted(minio):
    _, endpoint = minio
    users = _users(endpoint)
    for identity in S3_IDENTITIES:
        users.ensure_user(identity, "acme-")
    broker = users.mint_key("broker")
    with pytest.raises(ValueError, match="not a key of"):
        users.delete_key("pipeline", broker.access_key_id)
    assert users.key_ids("broker") == {broker.access_key_id}


def test_a_key_whose_policy_cannot_be_attached_is_not_left_behind(minio):
    state, endpoint = minio
    users = _users(endpoint)  # no ensure_user: the identity's policy does not exist
    with pytest.raises(MinioAdminException):
        users.mint_key("connector")
    assert state.users == {}


def test_an_admin_key_the_server_does_not_know_is_refused_not_ignored(minio):
    state, endpoint = minio
    users = MinioUsers.connect(endpoint, "someone-else", ADMIN["secret_key"], "us-east-1")
    with pytest.raises(MinioAdminException):
        users.key_ids("pipeline")
    assert state.users == {}


def test_the_setting_chooses_the_admin_api():
    minio = PlatformSettings(s3_user_admin="minio")
    assert isinstance(user_admin(minio, "http://127.0.0.1:9000", ADMIN), MinioUsers)
    iam = PlatformSettings()
    assert isinstance(user_admin(iam, "http://127.0.0.1:9000", ADMIN), IamUsers)
