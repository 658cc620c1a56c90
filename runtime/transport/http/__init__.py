"""The HTTP front door (`runtime serve`): OpenAI- and Anthropic-compatible endpoints over the runtime."""
