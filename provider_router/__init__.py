"""provider-router: the OpenAI-compatible endpoint clients use (routing, fallback, history)."""
