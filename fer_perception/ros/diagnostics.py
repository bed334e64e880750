"""fer_node's /diagnostics status: a :class:`fer_perception.stats.Snapshot` as diagnostic_msgs.

Levels and keys are defined (and documented) in :mod:`fer_perception.stats`.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from fer_perception.stats import Snapshot


def to_diagnostic_status(snapshot: Snapshot, name: str, hardware_id: str = ""):
    status = DiagnosticStatus()
    status.level = bytes([snapshot.level])
    status.name = name
    status.message = snapshot.message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=k, value=v) for k, v in snapshot.values.items()]
    return status


def status_values(status) -> dict[str, str]:
    """{key: value} of a DiagnosticStatus (for listeners and tests)."""
    return {kv.key: kv.value for kv in status.values}


def status_level(status) -> int:
    level = status.level
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)
