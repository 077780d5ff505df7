"""Front-end packages installed by npm (package.json, ``npm ci``), served under /vendor.

Only the files of ``VENDOR_FILES`` are reachable; anything else of node_modules is a 404.
No sign-in is needed: these are public libraries.
"""

from __future__ import annotations

from flask import Blueprint, abort, send_from_directory

from . import ROOT

bp = Blueprint("vendor", __name__)
NODE_MODULES = ROOT / "node_modules"
VENDOR_FILES = frozenset({
    # the trace page (web/views/audit.py): the bpmn-js viewer that can move and zoom
    "bpmn-js/dist/bpmn-navigated-viewer.production.min.js",
    "bpmn-js/dist/assets/diagram-js.css",
    "bpmn-js/dist/assets/bpmn-js.css",
    # the process modeler (web/views/processes.py): bpmn-js Modeler, its palette font and
    # the properties panel; dmn-js for the decision tables
    "bpmn-js/dist/bpmn-modeler.production.min.js",
    "bpmn-js/dist/assets/bpmn-font/css/bpmn.css",
    "bpmn-js/dist/assets/bpmn-font/font/bpmn.woff2",
    "bpmn-js/dist/assets/bpmn-font/font/bpmn.woff",
    "bpmn-js-properties-panel/dist/bpmn-js-properties-panel.umd.js",
    "@bpmn-io/properties-panel/dist/assets/properties-panel.css",
    "dmn-js/dist/dmn-modeler.production.min.js",
    "dmn-js/dist/assets/diagram-js.css",
    "dmn-js/dist/assets/dmn-js-shared.css",
    "dmn-js/dist/assets/dmn-js-drd.css",
    "dmn-js/dist/assets/dmn-js-decision-table.css",
    "dmn-js/dist/assets/dmn-js-decision-table-controls.css",
    "dmn-js/dist/assets/dmn-js-literal-expression.css",
    "dmn-js/dist/assets/dmn-js-boxed-expression.css",
    "dmn-js/dist/assets/dmn-js-boxed-expression-controls.css",
    "dmn-js/dist/assets/dmn-font/css/dmn.css",
    "dmn-js/dist/assets/dmn-font/font/dmn.woff2",
    "dmn-js/dist/assets/dmn-font/font/dmn.woff",
})


@bp.get("/vendor/<path:path>")
def asset(path: str):
    if path not in VENDOR_FILES:
        abort(404)
    return send_from_directory(NODE_MODULES, path)
