"""How far the observation is outside the training data, per tick (no ROS, no torch).

The artifact carries the statistics of the training observations per frame column (mean,
normalization std, min, max: ``metadata.extra['observation_statistics']``). Each tick the
monitor takes the newest frame and finds its largest z-score ``|x - mean| / std`` and the
columns outside the training range; a policy asked about a state it never saw (a start pose
far from every demonstration, a goal beyond the demonstrated ones) extrapolates, and that is
what the count shows before the robot shows it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from il_policy_node.errors import PolicyArtifactError
from il_policy_node.runtime.observation import ObservationSpec

STATISTICS_KEY = 'observation_statistics'
STATISTICS_FIELDS = ('mean', 'std', 'min', 'max')


def column_names(spec: ObservationSpec) -> list[str]:
    """``field:joint`` (state) or ``topic:field:joint`` (further inputs) per frame column."""
    return [f'{field.value}:{joint}' if topic is None else f'{topic}:{field.value}:{joint}'
            for topic, field, _, joints in spec.blocks() for joint in joints]


@dataclass(frozen=True)
class OodReading:
    """One tick: the largest z-score, its column, and how many columns left the range."""

    max_z: float
    column: str
    outside_range: int


class OodMonitor:
    """Z-scores and range checks of the newest observation frame against the training data."""

    def __init__(self, spec: ObservationSpec, statistics: Mapping[str, Sequence[float]]) -> None:
        frame = spec.frame_size
        try:
            values = {k: np.asarray(statistics[k], np.float64) for k in STATISTICS_FIELDS}
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyArtifactError(f'metadata {STATISTICS_KEY} is malformed ({exc})') from None
        bad = [k for k, v in values.items() if v.shape != (frame,) or not np.isfinite(v).all()]
        if bad or (values['std'] <= 0).any():
            raise PolicyArtifactError(f'metadata {STATISTICS_KEY}: {bad or ["std"]} must be '
                                      f'{frame} finite values (std > 0)')
        self.mean, self.std = values['mean'], values['std']
        self.low, self.high = values['min'], values['max']
        self.names = column_names(spec)
        self._frame = np.zeros(frame)
        self._z = np.zeros(frame)

    @classmethod
    def of_metadata(cls, spec: ObservationSpec, extra: Mapping[str, Any]) -> 'OodMonitor | None':
        """The monitor of an artifact's statistics; None when the artifact has none."""
        statistics = extra.get(STATISTICS_KEY)
        return None if statistics is None else cls(spec, statistics)

    def read(self, blocks: Sequence[np.ndarray]) -> OodReading:
        """The reading of one frame, given as its blocks in layout order."""
        np.concatenate(blocks, out=self._frame)
        z = self._z
        np.subtract(self._frame, self.mean, out=z)
        np.abs(z, out=z)
        z /= self.std
        worst = int(np.argmax(z))
        outside = int(np.count_nonzero((self._frame < self.low) | (self._frame > self.high)))
        return OodReading(float(z[worst]), self.names[worst], outside)
