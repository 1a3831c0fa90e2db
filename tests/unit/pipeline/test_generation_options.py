"""training.generation maps onto trl's GRPOConfig fields (checked against the installed trl's own config).

Only the mapping is tested here: neither vLLM nor a GPU is on this machine, so the vLLM paths
(vllm-colocate, vllm-server) have never trained here (docs/pipeline.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tarot_jobs.pipeline.errors import StageError
from tarot_jobs.pipeline.stages.train import check_training_options, generation_options
from tarot_jobs.spec.model import TarotRunSpec


def spec(**training: Any) -> TarotRunSpec:
    return TarotRunSpec.model_validate({"model": {"name": "org/coder"}, "training": training})


# trl's config still spells activation checkpointing the old way (as in stages/train.py).
@pytest.mark.filterwarnings("ignore:.*deprecated and will be removed in v6:FutureWarning")
@pytest.mark.parametrize(
    ("training", "expected"),
    [
        ({}, {"use_vllm": False}),
        ({"generation": "vllm-colocate"}, {"use_vllm": True, "vllm_mode": "colocate"}),
        (
            {"generation": "vllm-server", "vllmServer": {"url": "http://r1-generation-server.ns.svc:8000"}},
            {
                "use_vllm": True,
                "vllm_mode": "server",
                "vllm_server_base_url": "http://r1-generation-server.ns.svc:8000",
                "vllm_server_timeout": 600.0,
            },
        ),
    ],
)
def test_generation_maps_onto_trls_config(
    training: dict[str, Any], expected: dict[str, Any], tmp_path: Path
) -> None:
    from trl import GRPOConfig

    options = generation_options(spec(**training).training)
    assert options == expected
    config = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[], **options)
    for name, value in options.items():
        assert getattr(config, name) == value


def test_a_server_run_without_the_servers_url_is_refused() -> None:
    with pytest.raises(StageError, match=r"training\.vllmServer\.url: .*trl vllm-serve"):
        check_training_options(spec(generation="vllm-server"))


def test_transformers_generation_needs_nothing_more() -> None:
    check_training_options(spec())
