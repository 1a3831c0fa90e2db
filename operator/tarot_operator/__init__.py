"""The kopf operator for TarotRun resources (installed as `tarot_operator`).

The folder is named `operator/` by the design card; the package has another
name so that it never shadows the standard library's `operator` module.
"""
