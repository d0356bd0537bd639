"""What the daemon and both child programs share: the store, its errors, logging, redaction.

Importing this package loads no aiohttp server, Socket.IO or ``apiserver`` module: the children
(``provider_router``, ``qwen_proxy``) import it and nothing else of this distribution.
"""
