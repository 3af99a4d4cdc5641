"""EventBridge's PutEvents for ``make run``: records what the stack would have put on the bus.

``make run`` points boto3's EventBridge client here (``AWS_ENDPOINT_URL_EVENTBRIDGE``), so the
delivery function makes its real call; the events land in ``.local/eventbridge.jsonl``, one JSON
object per line, readable at ``GET /_local/eventbridge`` and with ``make events``.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

PATH = "/_local/eventbridge"


class EventRecorder:
    """Appends put events to a JSON-lines file and reads them back."""

    def __init__(self, file: Path):
        self.file = file
        self._lock = threading.Lock()

    def put_events(self, body: bytes) -> dict[str, Any]:
        """Record a PutEvents request; its answer (every entry accepted)."""
        entries = json.loads(body or b"{}").get("Entries", [])
        answers = []
        with self._lock, self.file.open("a") as out:
            for entry in entries:
                event_id = str(uuid.uuid4())
                detail = json.loads(entry.get("Detail") or "{}")
                recorded = {
                    "id": event_id,
                    "source": entry.get("Source"),
                    "detail-type": entry.get("DetailType"),
                    "event-bus": entry.get("EventBusName") or "default",
                    "detail": detail,
                }
                out.write(json.dumps(recorded) + "\n")
                answers.append({"EventId": event_id})
        return {"FailedEntryCount": 0, "Entries": answers}

    def recorded(self) -> list[dict[str, Any]]:
        """Every event recorded, oldest first."""
        if not self.file.exists():
            return []
        return [json.loads(line) for line in self.file.read_text().splitlines() if line.strip()]
