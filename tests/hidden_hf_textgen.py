"""The first lines of every child script that must run without hf_textgen (remote code, exported folders).

Such a script runs under `python -I` (no PYTHONPATH, no user site, no script folder on sys.path) and starts with
`HIDE_HF_TEXTGEN`, which makes any `import hf_textgen...` fail before transformers loads the folder: only what the
folder carries, or what transformers ships, can be running. The preamble imports `json` and `sys` for the script.
"""

HIDE_HF_TEXTGEN = """\
import importlib.abc
import json
import sys


class _HideHfTextgen(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "hf_textgen" or name.startswith("hf_textgen."):
            raise ModuleNotFoundError(f"{name} is hidden for this test", name=name)
        return None


sys.meta_path.insert(0, _HideHfTextgen())
"""
