"""The TarotRun spec: examples validate, bad specs fail with field paths, `tarot validate` exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tarot_jobs.cli import app
from tarot_jobs.cli.output import ExitCode
from tarot_jobs.problems.model import Tier
from tarot_jobs.spec.model import (
    SpecError,
    TarotRunManifest,
    TarotRunSpec,
    load_document,
    load_spec,
    parse_document,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def manifest(spec: dict[str, Any], name: str = "demo") -> dict[str, Any]:
    return {"apiVersion": "tarot.dev/v1alpha1", "kind": "TarotRun", "metadata": {"name": name}, "spec": spec}


def issues(document: dict[str, Any]) -> dict[str, str]:
    """path -> messages of every problem in `document` (fails when it is valid)."""
    with pytest.raises(SpecError) as caught:
        parse_document(document)
    found: dict[str, str] = {}
    for issue in caught.value.issues:
        found[issue.path] = f"{found[issue.path]}\n{issue.message}" if issue.path in found else issue.message
    return found


def test_quickstart_example_is_valid_and_tiny() -> None:
    spec = load_spec(EXAMPLES / "quickstart.yaml")
    assert spec.model.name == "tiny"
    assert spec.dataset.source == "bundled"
    assert spec.resources.gpus == 0
    # a few minutes on 2 CPU cores
    assert spec.training.max_steps is not None and spec.training.max_steps <= 24
    assert spec.training.num_generations == 4
    assert spec.training.max_completion_length <= 128
    assert spec.probe.problems * spec.probe.samples <= 16
    assert spec.evaluation.samples == 1


def test_cluster_example_is_valid() -> None:
    document = load_document(EXAMPLES / "cluster-1.5b-8gpu.yaml")
    assert isinstance(document, TarotRunManifest)
    spec = document.spec
    assert spec.resources.gpus == 8
    assert spec.resources.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert spec.resources.tolerations[0].operator == "Exists"
    assert spec.resources.kueue_queue == "gpu-training"
    assert spec.training.generation == "vllm-colocate" and spec.training.generation_server() is None
    assert "1.5B" in spec.model.name


@pytest.mark.parametrize(
    "example", ["quickstart.yaml", "cluster-1.5b-8gpu.yaml", "reference-qwen2.5-coder-1.5b.yaml"]
)
def test_a_fully_defaulted_dump_validates_again(example: str) -> None:
    # The API server stores the spec with every CRD default filled in; that must still be valid.
    document = load_document(EXAMPLES / example)
    assert parse_document(document.model_dump(mode="json")) == document


def test_generation_backends() -> None:
    assert TarotRunSpec().training.generation == "transformers"
    served = parse_document({"model": {"name": "org/coder"}, "training": {"generation": "vllm-server"}})
    server = served.training.generation_server()
    assert server is not None and served.training.vllm_server is None  # unset: the server's defaults
    assert (server.url, server.gpus, server.parallel_size(), server.port) == (None, 1, 1, 8000)
    two = parse_document(
        {"model": {"name": "org/coder"}, "training": {"generation": "vllm-server", "vllmServer": {"gpus": 2}}}
    )
    assert two.training.vllm_server is not None and two.training.vllm_server.parallel_size() == 2
    # An external server may serve any model, even one tarot builds (the user started it).
    external = parse_document(
        {"training": {"generation": "vllm-server", "vllmServer": {"url": "http://vllm:8000"}}}
    )
    assert external.model.name == "tiny"
    found = issues({"training": {"generation": "vllm-server", "vllmServer": {"url": "vllm:8000"}}})
    assert list(found) == ["training.vllmServer.url"]
    for preset in ("tiny", "smollm2-135m", "/models/coder.gguf"):
        found = issues({"model": {"name": preset}, "training": {"generation": "vllm-server"}})
        assert list(found) == ["training.generation"] and "vllmServer.url" in found["training.generation"]


def test_defaults_fill_an_empty_spec() -> None:
    spec = TarotRunSpec()
    assert spec.curriculum.policy == "auto" and spec.curriculum.threshold == 0.5
    assert spec.tiers == [Tier.BASIC, Tier.INTERMEDIATE, Tier.COMPLEX, Tier.EDGE]
    assert parse_document({}) == spec


def test_camel_case_and_snake_case_are_both_accepted() -> None:
    camel = parse_document(
        {"training": {"maxSteps": 40, "learningRate": 2e-6}, "resources": {"nodeSelector": {"a": "b"}}}
    )
    snake = parse_document(
        {"training": {"max_steps": 40, "learning_rate": 2e-6}, "resources": {"node_selector": {"a": "b"}}}
    )
    assert camel == snake
    dumped = camel.model_dump(mode="json")  # manifests use camelCase
    assert dumped["training"]["maxSteps"] == 40 and "nodeSelector" in dumped["resources"]
    assert parse_document(dumped) == camel


def test_a_typo_is_an_error_naming_the_field_and_the_likely_intent() -> None:
    found = issues(manifest({"training": {"learningRat": 1e-6}}))
    assert list(found) == ["spec.training.learningRat"]
    assert "unknown field; did you mean 'learningRate'?" in found["spec.training.learningRat"]


def test_every_error_is_reported_with_its_path() -> None:
    found = issues(
        manifest(
            {
                "training": {"learningRate": -1, "numGenerations": 1},
                "sandbox": {"replicas": 0},
                "resources": {"memory": "lots"},
                "tiers": ["basic", "expert"],
            }
        )
    )
    assert set(found) == {
        "spec.training.learningRate",
        "spec.training.numGenerations",
        "spec.sandbox.replicas",
        "spec.resources.memory",
        "spec.tiers[1]",
    }
    assert "greater than 0 (got -1)" in found["spec.training.learningRate"]


def test_bad_custom_phases_name_the_phase_field() -> None:
    phases = [
        {"start": 0, "end": 0.5, "tiers": ["basic"]},
        {"start": 0.6, "end": 1.0, "tiers": ["edge"]},
    ]
    found = issues(manifest({"curriculum": {"policy": "custom", "phases": phases}}))
    assert "gap" in found["spec.curriculum.phases[1].start"]
    found = issues(manifest({"curriculum": {"policy": "custom"}}))
    assert "required when policy is custom" in found["spec.curriculum.phases"]
    found = issues(manifest({"curriculum": {"policy": "forward", "phases": phases}}))
    assert "only used with policy custom" in found["spec.curriculum.phases"]
    found = issues(
        manifest(
            {
                "curriculum": {
                    "policy": "custom",
                    "phases": [{"start": 0, "end": 1, "tiers": ["basic"], "weights": {"basic": 0}}],
                }
            }
        )
    )
    assert "weighs 0" in found["spec.curriculum.phases[0].weights"]


def test_unknown_policy_names_are_rejected() -> None:
    found = issues({"curriculum": {"policy": "forwards", "weakPolicy": "auto"}})
    assert "unknown policy 'forwards'" in found["curriculum.policy"]
    assert "unknown policy 'auto'" in found["curriculum.weakPolicy"]


def test_steps_or_epochs_not_both() -> None:
    found = issues({"training": {"maxSteps": 10, "epochs": 2}})
    assert "either maxSteps or epochs" in found["training.epochs"]


def test_cross_field_errors_are_reported_beside_plain_field_errors() -> None:
    found = issues(
        {
            "training": {"learningRate": -1, "maxSteps": 10, "epochs": 2},
            "evaluation": {"samples": 3, "maxNewTokens": 0},
            "tiers": ["edge"],
            "curriculum": {"policy": "basic-only"},
        }
    )
    assert set(found) == {
        "training.learningRate",
        "training.epochs",
        "evaluation.maxNewTokens",
        "evaluation.temperature",  # samples > 1 with the default greedy temperature
        "curriculum.policy",
    }


def test_num_generations_must_divide_the_generation_batch_as_trl_requires() -> None:
    found = issues(
        {"training": {"numGenerations": 8, "perDeviceTrainBatchSize": 4, "gradientAccumulationSteps": 1}}
    )
    assert "4 x 1 x 1 = 4" in found["training.numGenerations"]
    # The generation batch counts every GPU's process: 4 x 2 GPUs = 8 is fine.
    parse_document(
        {"training": {"numGenerations": 8, "perDeviceTrainBatchSize": 4}, "resources": {"gpus": 2}}
    )


def test_a_policy_phase_with_none_of_the_used_tiers_is_rejected() -> None:
    found = issues({"tiers": ["complex", "edge"], "curriculum": {"policy": "forward"}})
    assert "phase 0-0.2 B of policy forward" in found["curriculum.policy"]
    parse_document({"tiers": ["complex", "edge"], "curriculum": {"policy": "reverse"}})


def test_sampling_several_completions_needs_a_temperature() -> None:
    found = issues({"evaluation": {"samples": 4, "temperature": 0}})
    assert "must be > 0" in found["evaluation.temperature"]


def test_reward_weights_must_be_usable() -> None:
    found = issues({"reward": {"weights": {"basic": -1}}})
    assert "greater than or equal to 0 (got -1)" in found["reward.weights.basic"]
    assert "all zero" in issues({"reward": {"weights": {"basic": 0, "edge": 0}}})["reward.weights"]


def test_manifest_envelope_is_checked() -> None:
    found = issues(
        {"apiVersion": "tarot.dev/v1", "kind": "TarotRun", "metadata": {"name": "Run_1"}, "spec": {}}
    )
    assert "tarot.dev/v1alpha1" in found["apiVersion"]
    assert "not a lowercase DNS label" in found["metadata.name"]
    # Kubernetes metadata tarot does not read passes through; a status written by the operator is ignored.
    ok = parse_document(
        {
            **manifest({}),
            "metadata": {"name": "r", "uid": "1", "generation": 3},
            "status": {"phase": "Training"},
        }
    )
    assert isinstance(ok, TarotRunManifest)


def test_json_schema_is_generated_in_camel_case_with_closed_objects() -> None:
    schema = TarotRunSpec.model_json_schema(by_alias=True)
    training = schema["$defs"]["TrainingSpec"]
    assert "learningRate" in training["properties"] and "learning_rate" not in training["properties"]
    assert training["additionalProperties"] is False
    assert "forward-hard-heavy" in schema["$defs"]["CurriculumSpec"]["properties"]["policy"]["enum"]


def test_yaml_problems_are_spec_errors(tmp_path: Path) -> None:
    cases = {
        "dup.yaml": (
            "training:\n  maxSteps: 1\n  maxSteps: 2\n",
            "line 3, column 3: duplicate key 'maxSteps'",
        ),
        "broken.yaml": ("training: [1\n", "invalid YAML"),
        "two.yaml": ("a: 1\n---\nb: 2\n", "exactly one YAML document, found 2"),
        "list.yaml": ("- 1\n", "expected a mapping, got list"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(SpecError) as caught:
            load_spec(path)
        assert expected in str(caught.value), name
    with pytest.raises(SpecError, match="cannot read the file"):
        load_spec(tmp_path / "missing.yaml")


def test_validate_cli_exit_codes_and_messages(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(app, ["validate", str(EXAMPLES / "quickstart.yaml")])
    assert good.exit_code == 0, good.output
    assert "valid TarotRun 'quickstart'" in " ".join(good.output.split())

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(manifest({"training": {"learningRate": 0, "maxStep": 3}})))
    result = runner.invoke(app, ["validate", str(bad)])
    text = " ".join(result.output.split())
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "2 error(s)" in text
    assert "spec.training.learningRate: Input should be greater than 0 (got 0)" in text
    assert "spec.training.maxStep: unknown field; did you mean 'maxSteps'?" in text

    shown = runner.invoke(app, ["validate", str(EXAMPLES / "quickstart.yaml"), "--show"])
    assert shown.exit_code == 0
    dumped = yaml.safe_load(shown.output[shown.output.index("apiVersion") :])
    assert dumped["spec"]["training"]["learningRate"] == pytest.approx(1e-4)
    assert dumped["spec"]["storage"]["size"] == "20Gi"  # defaults are filled in


def test_the_cluster_fields_default_and_read_in_camel_case() -> None:
    spec = TarotRunSpec()
    assert spec.suspend is False
    assert (spec.resources.nodes, spec.resources.kueue_priority_class) == (1, None)
    assert spec.training.max_retries == 3
    assert spec.storage.retain_on_delete is False
    assert (spec.images.trainer, spec.images.sandbox) == (None, None)
    set_ = parse_document(
        {
            "suspend": True,
            "resources": {"nodes": 2, "kueueQueue": "gpu", "kueuePriorityClass": "high"},
            "training": {"maxRetries": 0},
            "storage": {"retainOnDelete": True},
            "images": {"trainer": "ghcr.io/tarot-dev/tarot-trainer:0.1.0"},
        }
    )
    assert isinstance(set_, TarotRunSpec) and set_.suspend and set_.storage.retain_on_delete
    assert set_.resources.kueue_priority_class == "high" and set_.training.max_retries == 0


def test_nodes_multiply_the_training_processes() -> None:
    spec = parse_document({"resources": {"gpus": 8, "nodes": 4}})
    assert isinstance(spec, TarotRunSpec) and spec.training_processes() == 32
    cpu = parse_document(
        {"resources": {"nodes": 3}, "training": {"numGenerations": 4, "perDeviceTrainBatchSize": 4}}
    )
    assert isinstance(cpu, TarotRunSpec) and cpu.training_processes() == 3


@pytest.mark.parametrize(
    "image",
    [
        "tarot-trainer",
        "ghcr.io/tarot-dev/tarot-trainer:0.1.0",
        "localhost:5000/tarot/sandbox:fix_1.2-rc",
        "registry.example.com/a/b/c@sha256:" + "0" * 64,
        "[::1]:5000/tarot/trainer:v1",
    ],
)
def test_image_references_in_the_distribution_grammar_are_accepted(image: str) -> None:
    parse_document({"images": {"trainer": image, "sandbox": image}})


@pytest.mark.parametrize(
    "image",
    ["Tarot/Trainer", "ghcr.io/tarot trainer", "ghcr.io/tarot:", "ghcr.io//tarot", "trainer@sha256:xyz"],
)
def test_bad_image_references_name_the_field(image: str) -> None:
    assert "string should match pattern" in issues({"images": {"sandbox": image}})["images.sandbox"].lower()


def test_random_needs_every_tier_whatever_the_seed() -> None:
    for seed in range(4):
        found = issues(
            {"tiers": ["basic", "intermediate", "complex"], "curriculum": {"policy": "random", "seed": seed}}
        )
        assert "random shuffles all four tiers" in found["curriculum.policy"]
    parse_document({"curriculum": {"policy": "random", "seed": 3}})
