"""Who runs the stages, in which order, and how a run resumes.

    types.py            the planner's contract: children, observations, the Plan
    planner.py          the pure lifecycle planner: (spec, status, observed, now) -> Plan
    results.py          the small result each stage hands its executor (validated by the planner)
    local.py            `tarot run`: the planner driven by stages run on this machine
    progress_report.py  a train pod's live progress into the run's status

The operator (operator/tarot_operator/) drives the same planner with Kubernetes objects.
"""
