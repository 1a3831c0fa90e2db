"""tarot: TAROT curriculum reinforcement fine-tuning of code LLMs.

Everything that runs inside a pod, and locally. Heavy dependencies (torch,
transformers, trl) are imported only by the subcommands that need them.
"""

__version__ = "0.1.0"
