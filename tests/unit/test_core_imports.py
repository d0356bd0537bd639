"""The shared core package stays free of the daemon and its web stack (the children import it)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("aiohttp.web", "socketio", "engineio", "apiserver")


def test_core_store_imports_no_server_modules() -> None:
    # A fresh interpreter (this test process has the daemon's modules loaded already) imports
    # the store and then every other module of the core package.
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import qwenstack_core.store\n"
        "for info in pkgutil.walk_packages(qwenstack_core.__path__, 'qwenstack_core.'):\n"
        "    importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=True
    )
    loaded = json.loads(result.stdout)
    assert {"qwenstack_core.store.db", "qwenstack_core.logsetup"} <= set(loaded)
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == []
