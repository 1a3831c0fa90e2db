"""Inside the train stage: one training trajectory, cut into phase Jobs.

trainer.py      trl's GRPOTrainer subclass: atomic checkpoints, per-epoch sampler order,
                dropping samples the sandbox failed on, generation clock
phases.py       how many optimizer steps each curriculum phase gets; which phase a step belongs to
boundary.py     the callback that saves and stops a phase Job at its boundary step
steplog.py      per-step records (steps.jsonl, completions.jsonl), reward meters, the phase switch
yardstick.py    the fixed yardstick: greedy pass@1 on a fixed problem set every N steps
metrics.py      Prometheus metrics of a training Job
checkpoints.py  which checkpoint-N directories are complete; clearing leftovers
"""
