"""Capture LLM usage where it is reported: LiteLLM, OpenAI, Anthropic and LangChain.

Each call's tokens become disjoint events, so every ``tokens*`` type adds up to the call's total once:
``tokens.input`` (fresh input), ``tokens.input.cached`` (read from a prompt cache),
``tokens.input.cache_creation`` (written to it), ``tokens.output`` (visible output) and
``tokens.output.reasoning``. Each event's id is the provider's or framework's call id plus its type,
so a call tracked twice is counted once.
"""
