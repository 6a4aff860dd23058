"""Review queues (the human in the loop): per deployment, how predictions are chosen for a
person to label, and the predictions chosen. A label given to an item is stored as that
prediction's feedback, with who gave it, so monitors and retraining policies count it like
any other label. ``sql_review`` implements the interface in SQL, ``http_loop`` over a team
server; the factory picks one by the store's URL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["STRATEGIES", "ReviewItem", "ReviewQueue", "ReviewStore"]

# lowest confidence first; primary and shadow disagree; a uniform sample
STRATEGIES = ("confidence", "disagreement", "random")
ITEM_STATES = ("open", "labelled", "skipped")


@dataclass(frozen=True)
class ReviewQueue:
    """How a deployment's predictions are chosen for review.

    Attributes:
        deployment: whose predictions.
        strategy: ``confidence`` (the model's least sure predictions, from its class
            probabilities), ``disagreement`` (where the shadow route answered otherwise than
            the primary) or ``random``.
        size: how many items may be open at once; filling tops the queue up to it.
        lookback_s: how far back, in seconds, filling looks for predictions.
        choices: the labels a reviewer picks from (JSON values); empty: any label.
        updated: when it was last set, ms since the epoch.
        user: who set it.
    """

    deployment: str
    strategy: str = "confidence"
    size: int = 20
    lookback_s: int = 7 * 24 * 3600
    choices: tuple[Any, ...] = ()
    updated: int = 0
    user: str = ""

    def spec(self) -> dict[str, Any]:
        """What a maintainer sets, as JSON keeps it."""
        return {
            "strategy": self.strategy,
            "size": self.size,
            "lookback_s": self.lookback_s,
            "choices": list(self.choices),
        }


@dataclass(frozen=True)
class ReviewItem:
    """A prediction chosen for a person to label.

    Attributes:
        deployment, prediction_id, prediction_time: the prediction (time in ms).
        reason: the strategy that chose it.
        score: the model's confidence (its highest class probability) for the
            ``confidence`` strategy; None for the others.
        features: the prediction's input, by feature.
        prediction: what the deployment answered.
        model, version: the model version that answered.
        shadow: what the shadow route answered, for a disagreement.
        added: when it was chosen, ms since the epoch.
        state: ``open``, ``labelled`` or ``skipped``.
        label: the label given, as JSON text.
        user: who labelled or skipped it.
        resolved: when, ms since the epoch.
    """

    deployment: str
    prediction_id: str
    prediction_time: int
    reason: str
    score: float | None
    features: dict[str, Any] = field(default_factory=dict)
    prediction: Any = None
    model: str = ""
    version: int = 0
    shadow: Any = None
    added: int = 0
    state: str = "open"
    label: str | None = None
    user: str = ""
    resolved: int | None = None


class ReviewStore(Protocol):
    """Review queues and their items; labelling an item writes its feedback too."""

    def set_queue(self, queue: ReviewQueue, *, user: str) -> ReviewQueue:
        """Create or change a deployment's queue as ``user`` (a team server records its
        token's user instead)."""
        ...

    def get_queue(self, deployment: str) -> ReviewQueue:
        """Raises NotFound."""
        ...

    def list_queues(self) -> list[ReviewQueue]: ...

    def add_items(self, items: Sequence[ReviewItem]) -> int:
        """Queue items; a prediction queued before (in any state) is left as it is.
        Returns how many were added."""
        ...

    def list_items(
        self, deployment: str, *, state: str | None = "open", limit: int = 100
    ) -> list[ReviewItem]:
        """Items of ``deployment`` in ``state`` (None: any), open ones lowest score first,
        others newest first."""
        ...

    def queued_ids(self, deployment: str, since: int) -> set[str]:
        """Ids of the predictions made since ``since`` (ms) that were ever queued."""
        ...

    def label(self, deployment: str, prediction_id: str, label: str, *, user: str) -> ReviewItem:
        """Label an item (``label`` is JSON text) and store it as the prediction's
        feedback, both at once. Raises NotFound, InvalidArgument."""
        ...

    def skip(self, deployment: str, prediction_id: str, *, user: str) -> ReviewItem:
        """Set an open item aside unlabelled. Raises NotFound, Conflict."""
        ...

    def close(self) -> None: ...
