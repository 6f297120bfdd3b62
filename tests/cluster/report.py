"""One scenario's accounting: what the client was answered, what each replica counted, the
table `make test-cluster` prints at the end."""

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.cluster.rig import Replica, Rig
from tests.cluster.workload import Writes
from tests.load import NO_RESPONSE, Record, Recorder

PROBES = frozenset({"health", "ready"})
# What a login storm may be answered: a token, a wrong password's 401, and the address
# throttle's 429 (the storm comes from one address; it stays under the limit as written).
STORM_ANSWERS = frozenset({200, 401, 429})  # direct probes of a replica, not API requests
METRICS_SETTLE = 5.0  # a worker counts a request just after its response is sent


@dataclass
class Row:
    scenario: str
    requests: int = 0
    ok: int = 0
    unavailable: int = 0  # 503s: the app's own, and HAProxy's when no replica was ready
    failed: Counter[str] = field(default_factory=Counter)  # why -> how many
    acknowledged: int = 0
    lost: int = 0
    duplicated: int = 0
    recovery: str = ""
    notes: list[str] = field(default_factory=list)


TABLE: list[Row] = []


def why_failed(record: Record) -> str | None:
    """None for a 2xx or a 503; else what the client saw."""
    if record.ok or record.status == 503:
        return None
    if record.status == NO_RESPONSE:
        return f"no response ({record.body.split(':')[0]})"
    if record.request_id is None:
        return f"{record.status} from HAProxy"
    if record.status == 412:
        return "412 (ETag moved by an unanswered write)"
    return f"{record.status} from the app"


def api_records(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if r.op not in PROBES]


class Scenario:
    """Counts at the start, what the client was answered, a row of the table at the end."""

    def __init__(self, rig: Rig, name: str) -> None:
        self.rig = rig
        self.row = Row(name)
        self.recorder = Recorder()
        self.started = time.monotonic()
        self.before = {r.key: r.scraped_api_requests() for r in rig.replicas.values()}
        self.elsewhere: Counter[str] = Counter()  # answered outside the recorder (the storm)
        self.storm_statuses: Counter[int] = Counter()

    def tabulate(self, writes: Writes) -> list[Record]:
        records = api_records(self.recorder.snapshot())
        row = self.row
        row.requests = len(records) + self.storm_statuses.total()
        row.ok = sum(r.ok for r in records) + sum(
            n for status, n in self.storm_statuses.items() if 200 <= status < 300
        )
        row.unavailable = sum(r.status == 503 for r in records)
        row.failed = Counter(reason for r in records if (reason := why_failed(r)))
        for status, n in self.storm_statuses.items():
            if status not in STORM_ANSWERS:
                row.failed[f"storm {status}"] += n
        row.acknowledged, row.lost, row.duplicated = (
            writes.acknowledged,
            writes.lost + writes.resurrected,
            writes.duplicated,
        )
        TABLE.append(row)
        return records

    def replicas_seen(self) -> list[Replica]:
        return [
            r for r in self.rig.all_replicas() if r.key in self.before or r.started >= self.started
        ]

    def answered(self) -> Counter[str]:
        """API requests each replica answered, as the client saw them (the app's X-Request-ID
        on the answer; X-Served-By or the port it was sent to names the replica)."""
        records = api_records(self.recorder.snapshot())
        return (
            Counter(r.served_by for r in records if r.request_id and r.served_by) + self.elsewhere
        )

    def counted(self, replica: Replica) -> int:
        """API requests a replica counted during the scenario: its /metrics while it runs,
        its metric files once stopped (still on this disk, even after a SIGKILL)."""
        total = replica.scraped_api_requests() if replica.alive() else replica.api_requests()
        return total - self.before.get(replica.key, 0)

    def compare_counts(self, killed: Replica | None = None) -> dict[str, tuple[int, int]]:
        """{replica: (answered, counted)}, once the counts have settled; for the killed one,
        what it answered but never counted is noted, the others must match exactly."""
        deadline = time.monotonic() + METRICS_SETTLE
        while True:
            answered = self.answered()
            counts = {r.key: (answered[r.key], self.counted(r)) for r in self.replicas_seen()}
            settled = all(a == c for key, (a, c) in counts.items() if not _is(killed, key))
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        total_answered = sum(a for a, _ in counts.values())
        total_counted = sum(c for _, c in counts.values())
        note = f"metrics: answered {total_answered}, counted {total_counted} over {len(counts)}"
        if killed is not None:
            answered_k, counted_k = counts[killed.key]
            note += f" (killed {killed.key}: answered {answered_k}, counted {counted_k})"
        self.row.notes.append(note)
        unknown = set(answered) - set(counts)
        assert not unknown, f"answers from replicas this scenario never had: {unknown}"
        return counts


def _is(replica: Replica | None, key: str) -> bool:
    return replica is not None and replica.key == key


def render(rows: Sequence[Row]) -> str:
    header = (
        "scenario",
        "requests",
        "2xx",
        "503",
        "failed (why)",
        "acked writes",
        "lost",
        "duplicated",
        "time to recover",
    )
    lines = [
        (
            row.scenario,
            str(row.requests),
            str(row.ok),
            str(row.unavailable),
            ", ".join(f"{n} {why}" for why, n in row.failed.items()) or "0",
            str(row.acknowledged),
            str(row.lost),
            str(row.duplicated),
            row.recovery,
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    out = [
        " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        for cells in [header, *lines]
    ]
    out.insert(1, "-+-".join("-" * width for width in widths))
    for row in rows:
        out.extend(f"  {row.scenario}: {note}" for note in row.notes)
    return "\n".join(out)
