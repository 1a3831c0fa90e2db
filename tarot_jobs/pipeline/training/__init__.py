"""Inside the train stage.

trainer.py      trl's GRPOTrainer subclass: atomic checkpoints, generation clock
phases.py       how many optimizer steps each curriculum phase gets
steplog.py      per-step records (steps.jsonl, completions.jsonl) and reward meters
metrics.py      Prometheus metrics of a training Job
checkpoints.py  which checkpoint-N directories are complete; clearing leftovers
"""
