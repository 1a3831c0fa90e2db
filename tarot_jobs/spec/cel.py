"""CEL twins of the spec model's validators, for the CRD (`x-kubernetes-validations`).

The pydantic validators in model.py (and curriculum/policy.py for phases) are the
reference; each rule here mirrors one of them exactly, so the API server rejects
what `tarot validate` rejects (tests/data/bad_specs.yaml holds one case per rule,
checked against both). Messages start with the field they are about; the API
server prefixes them with the rule's path (plus fieldPath).

Also here: the rules that only make sense on a cluster object: the run name's
length (child object names append suffixes), and which fields are immutable once
the run has started.

The rules need Kubernetes >= 1.33: the phases rule uses a two-variable comprehension
(`all(i, p, ...)`, in the CEL environment since 1.32), and an API server checks new rules
against the previous minor version's environment.
"""

from __future__ import annotations

from tarot_jobs.curriculum.policy import BOUNDARY_SLACK
from tarot_jobs.curriculum.portfolio import PORTFOLIO
from tarot_jobs.problems.model import ALL_TIERS
from tarot_jobs.spec.model import BUILT_MODELS, MAX_RUN_NAME, RANDOM_POLICY, VLLM_SERVER
from tarot_jobs.spec.openapi import JSON, Extras, Rule, cel_list, cel_string

TIERS: list[str] = [t.value for t in ALL_TIERS]
SLACK = f"{BOUNDARY_SLACK:.0e}".replace("e-0", "e-")  # CEL double literal, e.g. 1e-9

# What a user may change while the run is going (camelCase paths under spec). Everything else is
# fixed once status.phase has left Pending: the model, data, tiers, curriculum, reward, training
# hyper-parameters and the evaluation define the one training trajectory the run reports on
# (a phase Job resumes the previous one's checkpoint, so changing them mid-run would mix two
# experiments), the GPU/node count sets trl's generation batch, and the volume exists already.
# What stays mutable is operational: pausing (suspend), retry budget, sandbox scale, scheduling
# (cpu/memory/placement/queue, for a run stuck unschedulable), images (to roll out a fixed image
# for the next Jobs) and whether the volume outlives the run.
MUTABLE_WHILE_RUNNING: tuple[str, ...] = (
    "suspend",
    "training.maxRetries",
    "sandbox.replicas",
    "sandbox.workers",
    "sandbox.url",
    "resources.cpu",
    "resources.memory",
    "resources.nodeSelector",
    "resources.tolerations",
    "resources.kueueQueue",
    "resources.kueuePriorityClass",
    "storage.retainOnDelete",
    "images",
)
STARTED = "has(oldSelf.status) && has(oldSelf.status.phase) && oldSelf.status.phase != 'Pending'"


def _policy_groups() -> dict[tuple[tuple[str, ...], ...], list[str]]:
    """Portfolio policies grouped by what they need of spec.tiers: one tier of each phase's tiers.

    A phase whose tiers include another phase's tiers needs nothing more, so it is left out
    (forward needs basic; reverse needs complex). `random` needs all four (phase_tier_problems)."""
    groups: dict[tuple[tuple[str, ...], ...], list[str]] = {}
    for name, policy in PORTFOLIO.items():
        if name == RANDOM_POLICY:
            sets = [frozenset({t}) for t in ALL_TIERS]
        else:
            sets = [frozenset(p.tiers) for p in policy.phases]
        # Any tier satisfies a phase that allows all four (spec.tiers is never empty).
        minimal = {s for s in sets if not any(other < s for other in sets) and len(s) < len(ALL_TIERS)}
        needs = tuple(sorted((tuple(t.value for t in ALL_TIERS if t in s) for s in minimal), key=_tier_order))
        if needs:
            groups.setdefault(needs, []).append(name)
    return groups


def _tier_order(tiers: tuple[str, ...]) -> list[int]:
    return [TIERS.index(t) for t in tiers]


def _candidate(names: list[str]) -> str:
    """CEL: the run may train with one of `names` (the policy, or a candidate of auto)."""
    listed = cel_list(names)
    return (
        f"self.curriculum.policy in {listed} || (self.curriculum.policy == 'auto' && "
        f"(self.curriculum.weakPolicy in {listed} || self.curriculum.strongPolicy in {listed}))"
    )


def _allows_each(needs: tuple[tuple[str, ...], ...]) -> str:
    """CEL: spec.tiers holds one tier of every set in `needs`."""
    return " && ".join(
        f"{cel_string(tiers[0])} in self.tiers"
        if len(tiers) == 1
        else f"self.tiers.exists(t, t in {cel_list(list(tiers))})"
        for tiers in needs
    )


# ResourcesSpec.node_processes() x nodes: the phase's world size.
_NODE_PROCESSES = (
    "(has(self.resources.processesPerNode) ? self.resources.processesPerNode"
    " : (self.resources.gpus > 0 ? self.resources.gpus : 1))"
)
_BATCH = (
    f"self.training.perDeviceTrainBatchSize * {_NODE_PROCESSES}"
    " * self.resources.nodes * self.training.gradientAccumulationSteps"
)

SPEC_RULES: list[Rule] = [
    # phase_tier_problems, portfolio policies (both candidates of auto)
    *(
        Rule(
            rule=f"!({_candidate(names)}) || ({_allows_each(needs)})",
            message=f"policy {' / '.join(names)} (with auto: as weakPolicy or strongPolicy) has a phase "
            f"that allows none of the tiers in spec.tiers: it needs {' and '.join(map('/'.join, needs))} "
            f"in spec.tiers; use more tiers or another policy",
            field_path=".curriculum.policy",
        )
        for needs, names in _policy_groups().items()
    ),
    # TarotRunSpec._whole_prompt_groups (trl's generation batch must hold whole prompt groups)
    Rule(
        rule=f"({_BATCH}) % self.training.numGenerations == 0",
        message="numGenerations must divide the generation batch perDeviceTrainBatchSize x processes "
        "(per node x nodes) x gradientAccumulationSteps (trl needs whole prompt groups)",
        field_path=".training.numGenerations",
    ),
    # phase_tier_problems, custom phases
    Rule(
        rule="!has(self.curriculum.phases) || "
        "self.curriculum.phases.all(p, p.tiers.exists(t, t in self.tiers))",
        message="phases[].tiers: every phase must allow at least one of the tiers in spec.tiers",
        field_path=".curriculum.phases",
    ),
    # TarotRunSpec._server_loads_the_model
    Rule(
        rule=f"self.training.generation != '{VLLM_SERVER}' || "
        "(has(self.training.vllmServer) && has(self.training.vllmServer.url)) || "
        f"!(self.model.name in {cel_list(list(BUILT_MODELS))} || self.model.name.endsWith('.gguf'))",
        message=f"generation: with {VLLM_SERVER} the operator starts a vLLM server that loads model.name "
        "itself, and the models tarot builds on the run's volume (tiny, smollm2-135m, .gguf) are not there; "
        "use a hub model id, generation vllm-colocate, or set vllmServer.url to a server you started",
        field_path=".training.generation",
    ),
]

_CURRICULUM_RULES: list[Rule] = [
    # CurriculumSpec._phases_match_policy
    Rule(
        rule="self.policy != 'custom' || has(self.phases)",
        message="phases: required when policy is custom",
        field_path=".phases",
    ),
    Rule(
        rule="self.policy == 'custom' || !has(self.phases)",
        message="phases: only used with policy custom",
        field_path=".phases",
    ),
]

# contiguity_problems (curriculum/policy.py): phases tile [0, 1] in order, with BOUNDARY_SLACK.
_PHASES_RULES: list[Rule] = [
    Rule(
        rule=f"size(self) == 0 || self[0].start <= {SLACK}",  # minItems reports an empty list
        message="phases[0].start: the first phase must start at 0",
    ),
    Rule(
        rule=f"self.all(i, p, i == 0 || (p.start <= self[i - 1].end + {SLACK} && "
        f"p.start >= self[i - 1].end - {SLACK}))",
        message="phases[i].start: every phase must start where the previous one ends (no gap, no overlap)",
    ),
    Rule(
        rule=f"size(self) == 0 || self[size(self) - 1].end >= 1.0 - {SLACK}",
        message="phases[last].end: the last phase must end at 1",
    ),
]

# Phase._check_range_and_weights (curriculum/policy.py)
_PHASE_RULES: list[Rule] = [
    Rule(
        rule=f"self.end > self.start + {SLACK}", message="end must be greater than start", field_path=".end"
    ),
    Rule(
        rule="self.tiers.exists(t, !has(self.weights) || !(t in self.weights) || self.weights[t] > 0.0)",
        message="weights: every allowed tier weighs 0, so nothing earns reward",
        field_path=".weights",
    ),
]

EXTRAS = Extras(
    model_rules={
        "TarotRunSpec": SPEC_RULES,
        "CurriculumSpec": _CURRICULUM_RULES,
        "Phase": _PHASE_RULES,
        # TrainingSpec._steps_or_epochs
        "TrainingSpec": [
            Rule(
                rule="!has(self.maxSteps) || !has(self.epochs)",
                message="set either maxSteps or epochs, not both",
                field_path=".epochs",
            ),
            # TrainingSpec._server_mode_only
            Rule(
                rule=f"!has(self.vllmServer) || self.generation == '{VLLM_SERVER}'",
                message=f"vllmServer: only used with generation {VLLM_SERVER}",
                field_path=".vllmServer",
            ),
        ],
        # VllmServerSpec._fits_the_pod
        "VllmServerSpec": [
            Rule(
                rule="!has(self.tensorParallelSize) || self.tensorParallelSize <= self.gpus",
                message="tensorParallelSize exceeds gpus: vLLM shards the model over the server pod's GPUs",
                field_path=".tensorParallelSize",
            )
        ],
        # ResourcesSpec._one_process_per_gpu
        "ResourcesSpec": [
            Rule(
                rule="!has(self.processesPerNode) || self.gpus == 0 || self.processesPerNode == self.gpus",
                message="processesPerNode must equal gpus on GPU nodes (one training process per GPU), "
                "or be left unset",
                field_path=".processesPerNode",
            )
        ],
        # EvaluationSpec._sampling_needs_temperature
        "EvaluationSpec": [
            Rule(
                rule="self.temperature > 0.0 || self.samples <= 1",
                message="temperature must be > 0 when samples > 1 (greedy decoding repeats one completion)",
                field_path=".temperature",
            )
        ],
    },
    field_rules={
        ("CurriculumSpec", "phases"): _PHASES_RULES,
        # RewardSpec._usable_weights
        ("RewardSpec", "weights"): [
            Rule(
                rule="size(self) == 0 || self.exists(k, self[k] > 0.0)",
                message="weights are all zero, so no test would earn reward",
            )
        ],
    },
    field_patches={
        # Phase._weights_are_not_negative; a phase allows at most the four tiers.
        ("Phase", "weights"): {"additionalProperties": {"minimum": 0}},
        ("Phase", "tiers"): {"maxItems": len(ALL_TIERS)},
    },
)


def name_rules() -> list[Rule]:
    """ObjectMeta._dns_label: child objects are named `<run>-<suffix>` and must stay DNS labels."""
    return [
        Rule(
            rule=f"size(self.metadata.name) <= {MAX_RUN_NAME}",
            message=f"metadata.name: at most {MAX_RUN_NAME} characters (child object names add suffixes "
            "and must stay DNS labels)",
        ),
        Rule(
            rule="self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
            message="metadata.name: must be a lowercase DNS label (a-z, 0-9 and '-', starting and ending "
            "with a letter or digit)",
        ),
    ]


def immutability_rules(spec_schema: JSON) -> list[Rule]:
    """Transition rules at the object's root (they need status.phase): one per spec section,
    comparing every field not in MUTABLE_WHILE_RUNNING with its old value."""
    rules: list[Rule] = []
    sections = spec_schema["properties"]
    for section, schema in sections.items():
        if section in MUTABLE_WHILE_RUNNING:
            continue
        kept = [m.removeprefix(section + ".") for m in MUTABLE_WHILE_RUNNING if m.startswith(section + ".")]
        if kept:
            same = " && ".join(
                _unchanged(f"spec.{section}", name, field)
                for name, field in schema["properties"].items()
                if name not in kept
            )
            what = f"spec.{section} (all but {', '.join(kept)})"
        else:
            same = _unchanged("spec", section, schema)
            what = f"spec.{section}"
        rules.append(
            Rule(
                rule=f"!({STARTED}) || ({same})",
                message=f"{what} cannot change once the run has started (status.phase is past Pending); "
                "create a new TarotRun instead",
                field_path=f".spec.{section}",
                reason="FieldValueForbidden",
            )
        )
    return rules


def _unchanged(parent: str, name: str, schema: JSON) -> str:
    """CEL: field `parent.name` of self equals oldSelf's (both unset counts as equal)."""
    new, old = f"self.{parent}.{name}", f"oldSelf.{parent}.{name}"
    if "default" in schema:  # always set once the API server has defaulted the object
        return f"{new} == {old}"
    return f"(has({new}) ? has({old}) && {new} == {old} : !has({old}))"
