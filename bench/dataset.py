"""A deterministic, Zipf-skewed usage data set: identifiers, agents, models, conversations."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate

TYPES = [
    ("tokens.input", 0.4, 800),
    ("tokens.output", 0.3, 300),
    ("message", 0.2, 1),
    ("conversation", 0.05, 1),
    ("log_insights.input", 0.05, 50),
]


@dataclass(frozen=True)
class Shape:
    """How big the data set is."""

    events: int
    identifiers: int = 1000
    agents: int = 50
    days: int = 30


def _zipf_weights(n: int, exponent: float = 1.1) -> list[float]:
    return list(accumulate(1 / (rank**exponent) for rank in range(1, n + 1)))


def identifier(rank: int) -> str:
    return f"user{rank:04d}@example.com"


def agent(rank: int) -> str:
    return f"agent-{rank:02d}"


def events(shape: Shape, seed: int, now: datetime | None = None) -> list[dict]:
    """``shape.events`` events over the last ``shape.days`` days, most active users and agents first."""
    rng = random.Random(seed)
    end = (now or datetime.now(UTC)).replace(microsecond=0) - timedelta(minutes=10)
    span = int(timedelta(days=shape.days).total_seconds()) - 3600
    who, bots = _zipf_weights(shape.identifiers), _zipf_weights(shape.agents)
    kinds = list(accumulate(weight for _, weight, _ in TYPES))
    result = []
    for n in range(shape.events):
        user = rng.choices(range(1, shape.identifiers + 1), cum_weights=who)[0]
        bot = rng.choices(range(1, shape.agents + 1), cum_weights=bots)[0]
        kind, _, scale = TYPES[rng.choices(range(len(TYPES)), cum_weights=kinds)[0]]
        moment = end - timedelta(seconds=rng.randrange(span))
        result.append(
            {
                "id": f"bench-{seed}-{n}",
                "type": kind,
                "count": max(1, int(rng.expovariate(1 / scale))),
                "credits": rng.randrange(0, 20),
                "timestamp": moment.isoformat(),
                "identifier": identifier(user),
                "agentId": agent(bot),
                "model": f"model-{(bot + n) % 3}",
                "conversationId": f"conv-{user}-{n // 20}",
                "meta": {"channel": "web" if n % 3 else "api"},
            }
        )
    return result


class LiveTraffic:
    """Events as they happen: 1,000 end users and 50 agents (Zipf), 3 models per agent,
    conversations of several events, timestamps left to the server (the moment of arrival)."""

    def __init__(self, seed: int, shape: Shape = Shape(events=0)):
        self.rng = random.Random(seed)
        self.shape, self.seed, self.sent = shape, seed, 0
        self.who, self.bots = _zipf_weights(shape.identifiers), _zipf_weights(shape.agents)
        self.kinds = list(accumulate(weight for _, weight, _ in TYPES))
        self.conversations: dict[int, tuple[str, int, int]] = {}  # user → (conversation, agent, events left)

    def user(self) -> int:
        """A Zipf-chosen end user (rank 1 is the most active)."""
        return self.rng.choices(range(1, self.shape.identifiers + 1), cum_weights=self.who)[0]

    def _conversation(self, user: int) -> tuple[str, int]:
        conversation, bot, left = self.conversations.get(user, ("", 0, 0))
        if left <= 0:
            bot = self.rng.choices(range(1, self.shape.agents + 1), cum_weights=self.bots)[0]
            conversation, left = f"live-{self.seed}-{user}-{self.sent}", self.rng.randint(3, 12)
        self.conversations[user] = (conversation, bot, left - 1)
        return conversation, bot

    def batch(self, size: int) -> list[dict]:
        """The next ``size`` events."""
        return [self._event(self.user()) for _ in range(size)]

    def firsts(self) -> list[dict]:
        """One event of every end user: the day's first of each, whatever the traffic after it."""
        return [self._event(user) for user in range(1, self.shape.identifiers + 1)]

    def _event(self, user: int) -> dict:
        conversation, bot = self._conversation(user)
        kind, _, scale = TYPES[self.rng.choices(range(len(TYPES)), cum_weights=self.kinds)[0]]
        event = {
            "id": f"live-{self.seed}-{self.sent}",
            "type": kind,
            "count": max(1, int(self.rng.expovariate(1 / scale))),
            "credits": self.rng.randrange(0, 20),
            "identifier": identifier(user),
            "agentId": agent(bot),
            "model": f"model-{(bot + self.rng.randrange(3)) % 3}",
            "conversationId": conversation,
            "meta": {"channel": self.rng.choice(["web", "api"])},
        }
        self.sent += 1
        return event
