"""Actor messages lost and duplicated (the test hooks drop a share of the
BatchAcks and send a share of the batches twice): the offset chain dedupes,
retransmits recover, and every record is exactly once."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from actorsys.embedded_broker import EmbeddedBroker
from tests.support.daemon import DaemonProcess
from tests.support.scenario import ScenarioResult, scenario
from tests.support.scenarios.common import batches_of, jobs_rig, settled


def _metric_total(daemon: DaemonProcess, name: str) -> float:
    """The sum of every sample called ``name`` in the daemon's /metrics."""
    code, body = daemon.http("/metrics")
    assert code == 200, body
    return sum(
        s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == name
    )


@scenario("lost_messages")
def lost_messages(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """30 % of BatchAcks dropped and 30 % of batches sent twice (test hooks): the
    offset chain dedupes, retransmits recover; every record exactly once."""
    chaos = {
        "ACTORSYS_CHAOS_DROP_ACK": "0.3",
        "ACTORSYS_CHAOS_DUP_BATCH": "0.3",
        "ACTORSYS_CHAOS_SEED": "1234",
    }
    with jobs_rig(workdir, broker, "lost_messages") as rig:
        # Given 30,000 records cut into small batches (many messages to lose)
        report = rig.produce(30_000, seed=61)
        # When every Consumer drops 30 % of its ACKs and sends 30 % of its batches twice
        # (retransmits back off from 1 s up to 4 s: an ACK lost four times in a row
        # would otherwise wait 1 + 2 + 4 + 8 + 16 s)
        settings = batches_of(250)
        settings["batching"]["max_ack_timeout_ms"] = 4_000
        daemon = rig.start("daemon", env=chaos, **settings)
        drain_s = round(rig.wait_complete(daemon, report), 1)
        stats = settled(daemon, "job_manager", batches_stored=len(rig.jobs()))
        sent = _metric_total(daemon, "actorsys_batches_sent_total")
        retransmitted = _metric_total(daemon, "actorsys_batches_retransmitted_total")
        shutdown_s = round(rig.stop(daemon), 1)

        # Then the JobManager saw the duplicates and stored each batch once,
        # and the Consumers retransmitted what was not ACKed
        assert stats.get("duplicates", 0) >= 1, stats
        assert retransmitted >= 1
        # And every valid record is exactly once in raw, malformed ones once in the DLQ
        checked = rig.check(report)
        return ScenarioResult(
            "lost_messages",
            "30 % of BatchAcks dropped, 30 % of batches sent twice",
            {
                "records_in": report.produced,
                **checked,
                "batches_sent": int(sent),
                "batches_retransmitted": int(retransmitted),
                "batches_stored": stats.get("batches_stored"),
                "duplicates": stats.get("duplicates"),
                "out_of_order": stats.get("out_of_order"),
                "drain_s": drain_s,
                "shutdown_s": shutdown_s,
                "duration_s": rig.elapsed(),
            },
        )
