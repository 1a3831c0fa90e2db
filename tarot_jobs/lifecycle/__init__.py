"""Who runs the stages, in which order, and how a run resumes.

    local.py    `tarot run`: every stage on this machine, resuming from the files it finds

The operator (operator/tarot_operator/) runs the same stages as Kubernetes Jobs.
"""
