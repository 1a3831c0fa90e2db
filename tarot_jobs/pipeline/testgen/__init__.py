"""`tarot generate-tests`: tiered tests for problems that have only a statement and a gold solution.

A model behind an OpenAI-compatible API proposes test INPUTS, one request per tier; the gold solution,
run in the sandbox, computes every expected output (the model never decides an answer); `data check`
then judges the result like any other problem set.

    prompts.py   one prompt per tier, explaining what the tier means
    endpoint.py  the chat-completions client: bounded concurrency, retries with exponential backoff
    answers.py   a model answer → candidate inputs (a JSON list of stdin texts), or why it is unusable
    outputs.py   candidate inputs → tests: the gold solution's outputs, crashes/timeouts/duplicates dropped
    generate.py  the loop over problems: data check, resumable output
    report.py    the per-tier report: kept, and dropped by reason
"""
