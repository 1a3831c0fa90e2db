"""`tarot crd`: print the TarotRun CustomResourceDefinition (generated from the spec and status models)."""

from __future__ import annotations

import sys

import typer


def crd_command() -> None:
    """Print the TarotRun CRD as YAML: `tarot crd > crds/tarot.dev_tarotruns.yaml`."""
    from tarot_jobs.spec.crd import crd_yaml

    # Plain write, not the rich console: the YAML holds brackets that rich would read as markup.
    sys.stdout.write(crd_yaml())


def register(app: typer.Typer) -> None:
    app.command("crd")(crd_command)
