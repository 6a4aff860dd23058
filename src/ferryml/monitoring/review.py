"""The review queue (the human in the loop): choose a deployment's predictions for a person
to label, and store the labels given as feedback with who gave them.

A deployment's queue says how predictions are chosen: ``confidence`` takes the ones its
model was least sure of (the lowest highest-class probability), ``disagreement`` the ones
where its shadow route answered otherwise than the route that answered the client, and
``random`` a uniform sample. ``fill_review_queue`` tops the queue up to its size from the
predictions of the last ``lookback_s`` seconds not yet labelled nor queued; the team server
does it when a person asks on the review page, and so can a script or a schedule.

Example:
    >>> configure_review("churn", strategy="confidence", size=20)
    >>> fill_review_queue("churn")
    20
    >>> label_prediction("churn", "0190f3a1c2d4e5f6a7b8c9d0e1f2a3b4", 1)
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ferryml._identity import current_user
from ferryml.config import Settings
from ferryml.errors import InvalidArgument, NotFound
from ferryml.serving.predlog import META_COLUMNS
from ferryml.store.factory import open_review_store
from ferryml.store.review import STRATEGIES, ReviewItem, ReviewQueue, ReviewStore

__all__ = ["choose_for_review", "configure_review", "fill_review_queue", "label_prediction"]

MAX_SIZE = 1000  # items open at once: a person's work, not a data set
_PAIRING_MS = 60_000  # a shadow's answer is logged within this long of the primary's
_META = {*META_COLUMNS, "prediction", "label"}  # the rest of a loaded window are features

Loader = Callable[[str, int], Any]


def configure_review(
    deployment: str,
    *,
    strategy: str = "confidence",
    size: int = 20,
    lookback_s: int = 7 * 24 * 3600,
    choices: Sequence[Any] = (),
    settings: Settings | None = None,
) -> ReviewQueue:
    """Create or change ``deployment``'s review queue (see the module's docstring).

    Raises:
        InvalidArgument: an unknown strategy, or a size or lookback out of range.
    """
    queue = review_queue(deployment, strategy, size, lookback_s, choices)
    store = open_review_store(settings or Settings.resolve())
    try:
        return store.set_queue(queue, user=current_user())
    finally:
        store.close()


def review_queue(
    deployment: str, strategy: str, size: int, lookback_s: int, choices: Sequence[Any]
) -> ReviewQueue:
    """A checked ``ReviewQueue``. Raises InvalidArgument."""
    if strategy not in STRATEGIES:
        raise InvalidArgument(
            f"Review strategy {strategy!r} is unknown; use one of {', '.join(STRATEGIES)}."
        )
    if not 1 <= size <= MAX_SIZE:
        raise InvalidArgument(f"Review queue size {size} is out of range; use 1 to {MAX_SIZE}.")
    if lookback_s < 1:
        raise InvalidArgument(f"Lookback {lookback_s} s must be at least 1 s.")
    if any(c is None for c in choices):
        raise InvalidArgument("A label choice cannot be null; give numbers or strings.")
    return ReviewQueue(deployment, strategy, int(size), int(lookback_s), tuple(choices))


def fill_review_queue(
    deployment: str,
    *,
    settings: Settings | None = None,
    store: ReviewStore | None = None,
    now: float | None = None,
) -> int:
    """Top ``deployment``'s review queue up to its size; how many predictions were added.

    Raises:
        NotFound: the deployment has no review queue, or logged no predictions.
        InvalidArgument: the strategy cannot be applied (``confidence`` on a model with no
            class probabilities).
    """
    from ferryml.monitoring._checks import ModelCache
    from ferryml.serving import predictions

    settings = settings or Settings.resolve()
    review = store or open_review_store(settings)
    models = ModelCache(settings)
    try:
        queue = review.get_queue(deployment)
        need = queue.size - len(review.list_items(deployment, state="open", limit=queue.size))
        if need <= 0:
            return 0
        now_ms = int((time.time() if now is None else now) * 1000)
        since = now_ms - queue.lookback_s * 1000
        frame = predictions.load(
            deployment, since=pd.Timestamp(since, unit="ms", tz="UTC"), settings=settings
        )
        queued = review.queued_ids(deployment, since)
        shadow = _shadow_route(settings, deployment)
        items = choose_for_review(frame, queue, need, queued=queued, shadow=shadow, load=models)
        return review.add_items(items)
    finally:
        models.close()
        if store is None:
            review.close()


def label_prediction(
    deployment: str,
    prediction_id: str,
    label: Any,
    *,
    settings: Settings | None = None,
    store: ReviewStore | None = None,
) -> ReviewItem:
    """Label a queued prediction: the label is stored as its feedback, given by the
    current user (through a team server, the token's user).

    Raises:
        NotFound: the prediction is not in the deployment's queue.
        InvalidArgument: the label is null or not JSON.
    """
    text = label_text(label)
    review = store or open_review_store(settings or Settings.resolve())
    try:
        return review.label(deployment, prediction_id, text, user=current_user())
    finally:
        if store is None:
            review.close()


def label_text(label: Any) -> str:
    """``label`` as the JSON text feedback keeps. Raises InvalidArgument."""
    if label is None or (isinstance(label, float) and not math.isfinite(label)):
        raise InvalidArgument(f"A label must be a number, a string or a list; got {label!r}.")
    try:
        return json.dumps(label, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"The label {label!r:.100} is not JSON: {e}.") from e


def choose_for_review(
    frame: pd.DataFrame,
    queue: ReviewQueue,
    need: int,
    *,
    queued: set[str] = frozenset(),  # type: ignore[assignment]
    shadow: str | None = None,
    load: Loader | None = None,
    seed: int | None = None,
) -> list[ReviewItem]:
    """Up to ``need`` items from a window of logged predictions (``predictions.load``'s
    frame), skipping labelled and ``queued`` ones; ``shadow`` names the shadow route, and
    ``load(model, version)`` loads a model for the ``confidence`` strategy."""
    if frame.empty or need <= 0:
        return []
    features = [c for c in frame.columns if c not in _META]
    answered = frame[frame["route"] != shadow] if shadow else frame
    fresh = ~answered["id"].isin(queued)
    if "label" in answered.columns:
        fresh &= answered["label"].isna().to_numpy()
    answered = answered[fresh]
    if answered.empty:
        return []
    scores: pd.Series | None = None
    shadows: pd.Series | None = None
    if queue.strategy == "confidence":
        if load is None:
            raise InvalidArgument("The confidence strategy needs the models; pass load.")
        scores = _confidence(answered, features, load)
        chosen = answered.loc[scores.nsmallest(need).index]
    elif queue.strategy == "disagreement":
        shadows = _shadow_answers(frame, answered, features, shadow)
        differ = shadows.index[
            [
                _differ(a, b)
                for a, b in zip(answered.loc[shadows.index, "prediction"], shadows, strict=True)
            ]
        ]
        chosen = answered.loc[differ].iloc[::-1].head(need)
    else:
        rng = random.Random(seed)
        picked = sorted(rng.sample(range(len(answered)), min(need, len(answered))))
        chosen = answered.iloc[picked]
    return [
        ReviewItem(
            deployment=str(row["deployment"]),
            prediction_id=str(row["id"]),
            prediction_time=int(pd.Timestamp(row["time"]).value // 1_000_000),
            reason=queue.strategy,
            score=None if scores is None else float(scores[index]),
            features={f: _plain(row[f]) for f in features},
            prediction=_plain(row["prediction"]),
            model=str(row["model"]),
            version=int(row["version"]),
            shadow=None if shadows is None else _plain(shadows[index]),
        )
        for index, row in chosen.iterrows()
    ]


def _confidence(rows: pd.DataFrame, features: list[str], load: Loader) -> pd.Series:
    """Each row's highest class probability under the model version that answered it."""
    scores = pd.Series(np.nan, index=rows.index, dtype=float)
    for (name, version), group in rows.groupby(["model", "version"], sort=False):
        model = load(str(name), int(version))
        if not getattr(model, "has_proba", False):
            raise InvalidArgument(
                f"Model {name}/{version} gives no class probabilities, so the review queue "
                "cannot find its least confident predictions; use the strategy 'random' or "
                "'disagreement'."
            )
        proba = np.asarray(model.predict_proba(group[features]), dtype=float)
        scores[group.index] = proba.max(axis=1)
    return scores


def _shadow_answers(
    frame: pd.DataFrame, answered: pd.DataFrame, features: list[str], shadow: str | None
) -> pd.Series:
    """The shadow's prediction for each answered row it also saw, by the answered row's
    index: the shadow's rows are logged under their own ids, so they are paired by equal
    features within ``_PAIRING_MS``."""
    if not shadow:
        return pd.Series(dtype=object)
    copies = frame[frame["route"] == shadow]
    if copies.empty:
        return pd.Series(dtype=object)

    def keyed(rows: pd.DataFrame) -> pd.DataFrame:
        key = pd.util.hash_pandas_object(rows[features].astype(str), index=False)
        return pd.DataFrame(
            {"key": key.to_numpy(), "time": rows["time"].to_numpy(), "row": rows.index}
        ).sort_values("time")

    left = keyed(answered)
    right = keyed(copies).rename(columns={"row": "copy"})
    paired = pd.merge_asof(
        left,
        right,
        on="time",
        by="key",
        direction="nearest",
        tolerance=pd.Timedelta(milliseconds=_PAIRING_MS),
    ).dropna(subset=["copy"])
    return pd.Series(
        frame.loc[paired["copy"].astype(int), "prediction"].to_numpy(),
        index=paired["row"].to_numpy(),
        dtype=object,
    )


def _differ(a: Any, b: Any) -> bool:
    return bool(_plain(a) != _plain(b))


def _shadow_route(settings: Settings, deployment: str) -> str | None:
    from ferryml.serving.deployments import Deployments

    manager = Deployments(settings)
    try:
        route = manager.get(deployment).route("shadow")
    except NotFound:  # a deployment served by name only has no shadow
        return None
    finally:
        manager.close()
    return None if route is None else route.name


def _plain(value: Any) -> Any:
    """``value`` as JSON would keep it: numpy scalars as numbers, NaN as None, times as
    ISO text."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp | np.datetime64):
        return pd.Timestamp(value).isoformat()
    if value is pd.NA or value is pd.NaT:
        return None
    return value
