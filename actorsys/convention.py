"""Multi-host: Thespian's convention, and what each member system advertises.

The daemon (`actorsys run`) starts its actor system as the convention
leader; `actorsys join` starts a member system that registers with it.
Members are passive: they only advertise capabilities. The leader's actors
react to Thespian's ``ActorSystemConventionUpdate`` and place actors there
with capability requirements (``placed_on``):

* the WorkerMaster places a HostAgent and ``worker_slots`` Workers on every
  member that offers slots;
* the Supervisor places a KafkaConsumerActor on every member that offers to
  consume (a second consumer daemon in the same consumer group, feeding the
  leader's one JobManager).

Actor code must be importable on every host: install the same actorsys
version there. A member whose version differs is refused with a clear log
line and shown in `actorsys status`.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actorsys import __version__

CONVENTION_ADDRESS = "Convention Address.IPv4"
ADMIN_PORT = "Admin Port"
MEMBER_ID = "actorsys.member"
HOST = "actorsys.host"
WORKER_SLOTS = "actorsys.worker_slots"
CONSUMER = "actorsys.consumer"
VERSION = "actorsys.version"
# A requirement key: "place this actor on that member".
ON_MEMBER = "actorsys.on_member"


def member_id(host: str, admin_port: int) -> str:
    return f"{host}:{admin_port}"


def placed_on(member: str) -> dict[str, str]:
    """Requirements that place an actor on one member system."""
    return {ON_MEMBER: member}


def capability_check(capabilities: Mapping[str, Any], requirements: Mapping[str, Any]) -> bool:
    """``actorSystemCapabilityCheck`` of every placeable actor: without a
    placement requirement any system will do (the creator's own, normally)."""
    wanted = requirements.get(ON_MEMBER)
    return wanted is None or capabilities.get(MEMBER_ID) == wanted


@dataclass(frozen=True, slots=True)
class MemberCapabilities:
    """What one actor system advertises to the convention."""

    host: str
    admin_port: int
    leader: tuple[str, int]
    worker_slots: int
    consumer: bool

    @property
    def member_id(self) -> str:
        return member_id(self.host, self.admin_port)

    def as_capabilities(self) -> dict[str, Any]:
        return {
            ADMIN_PORT: self.admin_port,
            CONVENTION_ADDRESS: self.leader,
            MEMBER_ID: self.member_id,
            HOST: self.host,
            WORKER_SLOTS: self.worker_slots,
            CONSUMER: self.consumer,
            VERSION: __version__,
        }


def parse_address(text: str, what: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); ValueError with one line otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} must look like HOST:PORT, got {text!r}")
    return host, int(port)


def default_host_name() -> str:
    return socket.gethostname()
