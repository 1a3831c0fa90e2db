"""The pipeline's work, one stage at a time; the same code runs in a pod and on a laptop.

    stages/     one module per stage: data, probe, select, train, evaluate, report
    testgen/    `tarot generate-tests`: tiered tests from a model's inputs and the gold solution's outputs
    training/   inside the train stage: trl trainer subclass, phase plans, step log, metrics, checkpoints
    model/      model plumbing: loading, the tiny preset, generation, prompts, torch runtime settings
    selection.py  the spec's curriculum rule + the probed capability → the run's policy
    scoring.py  pass rates of sampled completions (probe and evaluation)
    context.py  what a stage needs first: sandbox, problems, base model
    sandbox_usage.py  which sandbox scored a stage's programs, and how many tests (in its result)
    progress.py progress bars / periodic lines
    errors.py   StageError, BadInput: the errors a user fixes in their input

Who runs the stages in order lives in tarot_jobs/lifecycle/ (locally) and the operator (on a cluster).
"""
