"""vega-embed, Vega-Lite and Vega as one script, from the vl-convert-python package (no CDN).

Building the bundle takes seconds, so it is written once per package version into var/ and
served from there; `make run` builds it ahead of the first chart.
"""

import os
import tempfile
from pathlib import Path

import vl_convert
from django.conf import settings


def vega_bundle_version() -> str:
    return f"{vl_convert.get_vega_embed_version()}-{vl_convert.get_vegalite_versions()[-1]}"


def vega_bundle_path() -> Path:
    path = Path(settings.VAR_DIR) / "vendor" / f"vega-bundle-{vega_bundle_version()}.js"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(vl_convert.javascript_bundle())
        os.replace(tmp, path)
    return path
