"""qwen-proxy: the OpenAI chat API in front of Qwen's web chat (children.md)."""
