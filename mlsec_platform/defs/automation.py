"""How curated data keeps up on its own: automation conditions, freshness, and their sensor.

Each curated asset takes its group's condition (and freshness, where one is set) from here.

New Raw data reaches Silver, Gold, the warehouse and the feature groups with no one launching
`curated`: each curated asset is materialized once its inputs changed and none of them is
still being written (Dagster's ``eager`` condition). The sensor that evaluates the conditions
runs every :data:`SENSOR_INTERVAL_SECONDS`, so the Raw batches that land within one interval
are taken by one run of each table rather than one run per batch; and since a run takes
everything its inputs gained since the versions its table's last commit recorded
(``storage/incremental.py``), a run that follows several batches loses none of them. While a
table's run is still going, ``eager`` waits for it: the batches that land meanwhile go to the
next run, so runs never pile up however short the interval.

Silver ignores missing Raw partitions: a Raw batch that was refused (quarantined) leaves its
partition unmaterialized for good, and ``eager`` would otherwise wait for it forever. Above
Silver a missing input is a real gap (a table never built), so Gold and the rest wait.

Silver does not wait for a Raw batch still being written either: each batch is a partition
of its own and one Delta commit, so a Silver run reads Raw with or without it, never half of
it, and the batch's commit counts as an update that the next tick answers with the next run.
Under a steady stream a Raw batch is nearly always in flight (the event sensor starts the
next as soon as one ends), and ``eager`` waiting for none to be would hold Silver, and every
table below it, back for as long as the stream lasts. Between curated tables the wait stays:
a table in flight is about to change what its readers would read.

Nor does Silver lose a Raw batch that commits while a Silver run is under way: ``eager``
counts any update of the asset as handling every change before it, so the Silver commit that
ends that run (made from Raw as it was when the step read it, before the batch) would mark the
batch handled, and its events would wait for the next batch to reach the online store, or
forever once the stream stops (measured: bench/freshness.py at 1M). Silver's condition
therefore also holds true from a Raw update until a Silver run is *requested* after it
(:data:`RAW_UNREAD`; Dagster sees a request at the tick after it, and a batch committed in
between is read by that run, whose step starts later than that). At worst that is one run
that finds the batch already read. Only Raw counts so: the tables Silver reads besides Raw
are written in the same run, before it, and would otherwise request a second run each time.

The sensor's runs carry :data:`RUN_TAGS` (``mlsec/job=curated_automation``,
``mlsec/trigger=automation``), shown on each run in the UI's run list and filterable there;
their job name stays Dagster's ``__ASSET_JOB``. Dagster 1.13 cannot name them otherwise: the
sensor requests each run for the assets its conditions selected, and such a run belongs to
the implicit asset job (``submit_asset_runs`` names a run only after a ``RunRequest``'s
``job_name``, which the sensor never sets). A named job's runs come only from a job-scoped
condition (``define_asset_job(automation_condition=...)``, preview), which launches the whole
job, every table of ``curated``, at each change, where ``eager`` runs only the tables below
the Raw batch that changed; and a sensor other than Dagster's default evaluates a job's
condition only through a hidden, internal argument. The tags are what Dagster's sensor offers
(``run_tags``), beside the ``dagster/sensor_name`` tag it sets itself. Manual `curated` runs
carry ``mlsec/trigger`` too (``cli``, ``demo``).
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

#: The Raw tables (connector batches), which Silver does not wait for (see the module).
RAW = dg.AssetSelection.key_prefixes("raw")

#: A Raw batch is handled only by a Silver run requested after it committed (see the module).
RAW_UNREAD = (
    dg.AutomationCondition.any_deps_updated()
    .allow(RAW)
    .since(dg.AutomationCondition.newly_requested() | dg.AutomationCondition.initial_evaluation())
)

#: Curated groups and the condition that keeps each up to date.
CONDITIONS: dict[str, dg.AutomationCondition] = {
    "silver": (
        dg.AutomationCondition.in_latest_time_window()
        & (
            (
                dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()
            ).since_last_handled()
            | RAW_UNREAD
        )
        & ~dg.AutomationCondition.any_deps_in_progress().ignore(RAW)
        & ~dg.AutomationCondition.in_progress()
    ).with_label("eager, and every Raw batch read"),
    "gold": dg.AutomationCondition.eager(),
    "warehouse": dg.AutomationCondition.eager(),
    "features": dg.AutomationCondition.eager(),
}

#: How stale a group may get before Dagster warns and then fails its freshness: the feature
#: store serves models online; Gold feeds dashboards and reports.
FRESHNESS: dict[str, dg.FreshnessPolicy] = {
    "gold": dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=24), warn_window=timedelta(hours=6)
    ),
    "features": dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=6), warn_window=timedelta(hours=1)
    ),
}

#: 10 s: an event waits half of it on average before its run is requested, so the interval
#: is a floor under the freshness an event sees (bench/freshness.py). A tick evaluates every
#: curated asset's condition against the instance, so not at every loop of Dagster's daemon
#: (5 s, below which nothing is gained) but at every other one.
SENSOR_INTERVAL_SECONDS = 10

#: Tags every run of the sensor carries, so the UI tells its runs from other asset runs.
RUN_TAGS = {"mlsec/job": "curated_automation", "mlsec/trigger": "automation"}

curated_automation = dg.AutomationConditionSensorDefinition(
    "curated_automation",
    target=dg.AssetSelection.groups(*CONDITIONS),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    run_tags=RUN_TAGS,
    description="Keeps Silver, Gold, the warehouse and the features up with Raw.",
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[curated_automation])
