"""vega-embed, Vega-Lite and Vega as one script, from the vl-convert-python package (no CDN).

Building the bundle takes seconds, so it is written once per package version into var/ and
served from there; `make run` builds it ahead of the first chart.

The bundle's global `vegaEmbed` is made safe for our Content-Security-Policy in this one place, so
every page's charts are: Vega evaluates expressions with its interpreter (`ast: true`) instead of
`new Function` (which the policy refuses), and vega-embed and its tooltips inject no <style>
element (their styles are static/css/vega.css). A page's own options still apply on top.
"""

import os
import tempfile
from pathlib import Path

import vl_convert
from django.conf import settings

# Globals as vl-convert's default snippet sets them, with vegaEmbed wrapped for the CSP.
_SNIPPET = """
window.vega = vega;
window.vegaLite = vegaLite;
window.vegaEmbed = function (el, spec, options) {
  const cspSafe = { ast: true, defaultStyle: false, tooltip: { disableDefaultStyle: true } };
  return vegaEmbed(el, spec, Object.assign(cspSafe, options || {}));
};
"""
# Part of the file name and URL: bump it when the snippet changes, so browsers and var/ get the new one.
_SNIPPET_VERSION = "csp1"


def vega_bundle_version() -> str:
    embed, lite = vl_convert.get_vega_embed_version(), vl_convert.get_vegalite_versions()[-1]
    return f"{embed}-{lite}-{_SNIPPET_VERSION}"


def vega_bundle_path() -> Path:
    path = Path(settings.VAR_DIR) / "vendor" / f"vega-bundle-{vega_bundle_version()}.js"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(vl_convert.javascript_bundle(_SNIPPET))
        os.replace(tmp, path)
    return path
