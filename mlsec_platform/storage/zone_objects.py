"""Objects in the zone buckets: a source's partition folders, their keys, and deleting them
(the lifecycle's last step, once the Delta log no longer references them)."""

from urllib.parse import unquote

from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.archive import PARTITION, LifecycleError


def partition_folders(lake: S3LakeResource, zone: Zone, source: str) -> dict[str, str]:
    """Batch id -> ``<source>/_batch_id=<id>/`` for every partition folder in the bucket."""
    s3 = lake.client()
    prefix = f"{source}/"
    folders = {}
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=lake.bucket(zone), Prefix=prefix, Delimiter="/"
    )
    for page in pages:
        for common in page.get("CommonPrefixes", []):
            name = common["Prefix"][len(prefix) : -1]
            if name.startswith(f"{PARTITION}="):
                folders[unquote(name[len(PARTITION) + 1 :])] = common["Prefix"]
    return folders


def folder_keys(lake: S3LakeResource, zone: Zone, folder: str) -> list[str]:
    """Every object key under ``folder``."""
    pages = (
        lake.client()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=lake.bucket(zone), Prefix=folder)
    )
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def delete_keys(lake: S3LakeResource, zone: Zone, keys: list[str]) -> None:
    """Delete these objects (1,000 per request); raises if the store refused any."""
    s3 = lake.client()
    bucket = lake.bucket(zone)
    for start in range(0, len(keys), 1000):
        chunk = [{"Key": key} for key in keys[start : start + 1000]]
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
        if response.get("Errors"):
            first = response["Errors"][0]
            raise LifecycleError(
                f"could not delete {first['Key']} from {bucket}: {first.get('Code')}"
            )


def clear_folder(lake: S3LakeResource, zone: Zone, folder: str, keys: list[str]) -> None:
    """Delete a partition folder's objects, then the folder itself: SeaweedFS keeps an empty
    directory (still listed as a prefix) until it is deleted; other stores answer 204."""
    delete_keys(lake, zone, keys)
    lake.client().delete_object(Bucket=lake.bucket(zone), Key=folder)
