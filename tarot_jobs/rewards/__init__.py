"""Rewards: the tiered test reward and the format reward, as trl reward functions."""

from tarot_jobs.rewards.extract import (
    completion_text,
    extract_code,
    format_reward,
    reference_format_reward,
)
from tarot_jobs.rewards.tiered import (
    RewardDetail,
    TestOutcome,
    TieredReward,
    TierTally,
    batch_metrics,
    score_batch,
    score_completion,
)

__all__ = [
    "RewardDetail",
    "TestOutcome",
    "TierTally",
    "TieredReward",
    "batch_metrics",
    "completion_text",
    "extract_code",
    "format_reward",
    "reference_format_reward",
    "score_batch",
    "score_completion",
]
