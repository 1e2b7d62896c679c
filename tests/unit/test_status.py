"""Typed status snapshots: the /status JSON they make, and read back."""

from __future__ import annotations

import json

from actorsys.roles import Role
from actorsys.status import (
    JobManagerStatus,
    KafkaConsumerStatus,
    PartitionStatus,
    RetentionStatus,
    StatusDocument,
    StatusPacer,
    SupervisorStatus,
    TableStatus,
    WorkerHostStatus,
    WorkerMasterStatus,
)


def document() -> StatusDocument:
    partition = PartitionStatus("iot", 0, position=10, committed=8, high_watermark=12, lag=4)
    return StatusDocument(
        {
            Role.KAFKA_CONSUMER: KafkaConsumerStatus((partition,), broker_ok=True),
            "kafka_consumer@b:1": KafkaConsumerStatus(
                (PartitionStatus("iot", 1, paused=True),), records_consumed=7
            ),
            Role.JOB_MANAGER: JobManagerStatus(
                jobs={"PENDING": 2},
                retention=(RetentionStatus("iot", 5.0, 3600.0, 3595.0),),
                counters={"rows_ingested": 900, "files_ingested": 3},
            ),
            Role.WORKER_MASTER: WorkerMasterStatus(
                workers=3, worker_hosts={"b:1": WorkerHostStatus("b", 2, False, 0.4)}
            ),
            "committer:raw": TableStatus("raw", version=4, counters={"commits": 4}),
            Role.SUPERVISOR: SupervisorStatus(ready=("job_manager",), lost_roles={}),
        }
    )


def test_the_json_is_flat_and_reads_back_to_the_same_snapshots() -> None:
    # Given a document of every kind of snapshot
    doc = document()
    # When it becomes the JSON of /status, and is read back from it
    wire = json.loads(json.dumps(doc.to_json()))
    back = StatusDocument.from_json(wire)
    # Then counters sit beside the other fields, and nothing is lost
    assert wire["job_manager"]["rows_ingested"] == 900
    assert "counters" not in wire["job_manager"]
    assert wire["committer:raw"]["commits"] == 4
    assert back == StatusDocument({str(k): v for k, v in doc.components.items()})


def test_readers_get_typed_views_with_defaults_for_what_has_not_reported() -> None:
    doc = document()
    assert doc.job_manager().rows_ingested == 900
    assert list(doc.kafka_consumers()) == ["leader", "b:1"]
    assert [(p.topic, p.partition) for p in doc.partitions()] == [("iot", 0), ("iot", 1)]
    assert doc.tables()["raw"].version == 4
    empty = StatusDocument()
    assert empty.job_manager() == JobManagerStatus()
    assert empty.leader_consumer().broker_ok is None
    assert empty.supervisor().ready == ()


def test_unknown_fields_and_components_are_ignored() -> None:
    # Given a document from a newer daemon
    wire: dict[str, dict[str, object]] = {
        "job_manager": {"jobs": {"DONE": 1}, "new_field": [1, 2], "flag": True},
        "something_new": {"x": 1},
    }
    # When read, Then what is known is typed; a bool is not taken for a counter
    doc = StatusDocument.from_json(wire)
    assert doc.job_manager().jobs == {"DONE": 1}
    assert doc.job_manager().counters == {}
    assert list(doc.components) == ["job_manager"]


def test_a_status_is_pushed_when_it_changes_or_when_the_last_push_is_old() -> None:
    pacer = StatusPacer(refresh_s=5.0)
    assert pacer.due({"done": 1}, 10.0)  # the first
    assert not pacer.due({"done": 1}, 11.0)  # unchanged
    assert pacer.due({"done": 2}, 11.5)  # changed
    assert not pacer.due({"done": 2}, 16.4)
    assert pacer.due({"done": 2}, 16.5)  # unchanged, but 5 s old
    assert not pacer.due({"done": 2}, 17.0)


def test_each_key_of_a_component_is_paced_on_its_own() -> None:
    pacer = StatusPacer(refresh_s=5.0)
    assert pacer.due("v1", 0.0, key="committer:raw")
    assert pacer.due("v1", 0.1, key="committer:agg")  # another table: its first push
    assert not pacer.due("v1", 0.2, key="committer:raw")
