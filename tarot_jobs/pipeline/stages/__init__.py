"""One module per pipeline stage; each reads the spec and earlier stages' files and writes its own.

data.py      load, split and check the problems          → data/{train,heldout}.jsonl, check.json
probe.py     pass@1 per tier of the base model           → probe/capability.json
select.py    capability + curriculum rule → policy       → policy.json
train.py     one curriculum phase of GRPO                → train/phase-<i>/
evaluate.py  pass@1 per tier, before and after training  → eval/{before,after}/evaluation.json
report.py    report.json, report.md, curves.png
"""
