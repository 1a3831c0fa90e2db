"""`tarot curriculum list|show`: the policy portfolio as tables."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tarot_jobs.cli.output import exit_codes, stdout
from tarot_jobs.curriculum.policy import CurriculumPolicy, Phase, tier_letters, tier_order
from tarot_jobs.curriculum.portfolio import PORTFOLIO, get_policy
from tarot_jobs.problems.model import ALL_TIERS


def _schedule(policy: CurriculumPolicy) -> str:
    return "/".join("all" if len(p.tiers) == len(ALL_TIERS) else tier_letters(p.tiers) for p in policy.phases)


def _weights(phase: Phase, only_allowed: bool = False) -> str:
    tiers = tier_order(phase.tiers) if only_allowed else list(ALL_TIERS)
    return " ".join(f"{t.value[0].upper()}={phase.weights[t]:g}" for t in tiers)


def list_command() -> None:
    """Every policy in the portfolio: schedule, weights and length."""
    table = Table(
        title="Curriculum portfolio", caption="phases over training progress 0-0.2/0.2-0.4/0.4-0.6/0.6-1"
    )
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("schedule", no_wrap=True)
    table.add_column("weights B/I/C/E", no_wrap=True)
    table.add_column("epochs", justify="right")
    for name, policy in PORTFOLIO.items():
        weights = "/".join(f"{policy.phases[0].weights[t]:g}".removeprefix("0") for t in ALL_TIERS)
        table.add_row(name, _schedule(policy), weights, str(policy.epochs))
    stdout.print(table)
    stdout.print("`random` shuffles its tier order with the spec's curriculum.seed (listed: seed 0).")
    stdout.print("`tarot curriculum show NAME` prints a policy phase by phase.")


def show_command(
    name: Annotated[str, typer.Argument(help="A policy name from `tarot curriculum list`.")],
    seed: Annotated[int, typer.Option(help="Seed of the random policy's tier order.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the policy as JSON.")] = False,
) -> None:
    """One policy, phase by phase."""
    with exit_codes():
        policy = get_policy(name, seed=seed)
    if as_json:
        print(policy.model_dump_json(indent=2))
        return
    table = Table(title=f"{policy.name}: {policy.description}", caption=f"over {policy.epochs} epoch(s)")
    table.add_column("phase", justify="right")
    table.add_column("progress")
    table.add_column("tiers")
    table.add_column("weights of allowed tiers")
    for i, phase in enumerate(policy.phases):
        table.add_row(
            str(i),
            f"{phase.start:g} - {phase.end:g}",
            tier_letters(phase.tiers),
            _weights(phase, only_allowed=True),
        )
    stdout.print(table)


def register(app: typer.Typer) -> None:
    curriculum_app = typer.Typer(help="The curriculum policy portfolio.", no_args_is_help=True)
    curriculum_app.command("list")(list_command)
    curriculum_app.command("show")(show_command)
    app.add_typer(curriculum_app, name="curriculum")
