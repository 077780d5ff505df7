/* Guichet: the process trace of a ticket drawn with the bpmn-js viewer.
 *
 * The page works without this file: the server lists the elements passed and every
 * event, and ?element=ID shows the events of one element. Here, the diagram of the
 * ticket's process version is drawn from /tickets/NUMBER/trace.json (data-trace-url):
 * elements passed get the marker class "visited", open tasks "waiting", elements passed
 * more than once a count; clicking an element shows only its events (the list items
 * carry data-element="ID ..."), clicking the background shows them all again.
 */
(function () {
  "use strict";

  var CONTAINERS = ["bpmn:Process", "bpmn:Collaboration", "bpmn:Participant", "bpmn:Lane"];

  function elementsOf(item) {
    return (item.getAttribute("data-element") || "").split(" ").filter(Boolean);
  }

  function Trace(holder) {
    this.holder = holder;
    this.list = document.getElementById("trace-events");
    this.status = document.getElementById("trace-filter");
    this.none = document.querySelector("[data-none]");
    this.names = {};
    this.canvas = null;
    this.selected = null;
  }

  Trace.prototype.nameOf = function (id) {
    return this.names[id] || id;
  };

  /* Show the events of one element, or all of them (id null). */
  Trace.prototype.show = function (id, remember) {
    var shown = 0;
    var items = this.list ? this.list.querySelectorAll("li[data-seq]") : [];
    items.forEach(function (item) {
      var visible = !id || elementsOf(item).indexOf(id) !== -1;
      item.hidden = !visible;
      if (visible) shown += 1;
    });
    if (this.none) this.none.hidden = !id || shown > 0;

    var text = this.status.querySelector("[data-filter-text]");
    var all = this.status.querySelector("[data-show-all]");
    text.textContent = "";
    if (id) {
      text.appendChild(document.createTextNode("Events on "));
      var strong = document.createElement("strong");
      strong.textContent = this.nameOf(id);
      text.appendChild(strong);
      text.appendChild(document.createTextNode(": " + shown));
    } else {
      text.textContent = "All " + items.length + " events, oldest first.";
    }
    all.hidden = !id;

    document.querySelectorAll("[data-element-row]").forEach(function (row) {
      var on = row.getAttribute("data-element-row") === id;
      row.classList.toggle("is-selected", on);
      var link = row.querySelector("[data-element-link]");
      if (link) {
        if (on) link.setAttribute("aria-current", "true");
        else link.removeAttribute("aria-current");
      }
    });
    if (this.canvas) {
      if (this.selected && this.canvas.hasMarker(this.selected, "trace-selected")) {
        this.canvas.removeMarker(this.selected, "trace-selected");
      }
      if (id) this.canvas.addMarker(id, "trace-selected");
    }
    this.selected = id;

    if (remember && window.history && window.history.replaceState) {
      var url = new URL(window.location.href);
      if (id) url.searchParams.set("element", id);
      else url.searchParams.delete("element");
      window.history.replaceState(null, "", url.toString());
    }
  };

  Trace.prototype.message = function (text) {
    var note = this.holder.querySelector("[data-trace-message]");
    if (note) {
      note.textContent = text;
      note.hidden = false;
    }
  };

  Trace.prototype.draw = function (trace) {
    var self = this;
    this.names = trace.names || {};
    var note = this.holder.querySelector("[data-trace-message]");
    if (note) note.hidden = true;
    var viewer = new window.BpmnJS({ container: this.holder });
    return viewer.importXML(trace.xml).then(function () {
      var canvas = viewer.get("canvas");
      var overlays = viewer.get("overlays");
      var registry = viewer.get("elementRegistry");
      self.canvas = canvas;
      self.fit(canvas);

      Object.keys(trace.visits || {}).forEach(function (id) {
        if (!registry.get(id)) return;
        canvas.addMarker(id, "visited");
        var times = trace.visits[id];
        if (times > 1) {
          var badge = document.createElement("span");
          badge.className = "visit-count";
          badge.textContent = String(times);
          badge.title = "Passed " + times + " times";
          overlays.add(id, "visit-count", { position: { top: -10, right: 12 }, html: badge });
        }
      });
      (trace.waiting || []).forEach(function (id) {
        if (registry.get(id)) canvas.addMarker(id, "waiting");
      });

      viewer.get("eventBus").on("element.click", function (event) {
        var element = event.element && (event.element.labelTarget || event.element);
        var container = !element || !element.businessObject ||
          CONTAINERS.indexOf(element.type) !== -1 || element === canvas.getRootElement();
        self.show(container ? null : element.id, true);
      });
      self.controls(viewer, canvas);
      self.holder.classList.add("is-ready");
      if (self.selected) self.show(self.selected, false);
    });
  };

  /* The whole diagram in view, the canvas no taller than the diagram needs. */
  Trace.prototype.fit = function (canvas) {
    var inner = canvas.viewbox().inner;
    if (inner && inner.width > 0) {
      var wanted = Math.round(this.holder.clientWidth * inner.height / inner.width) + 48;
      this.holder.style.height = Math.max(240, Math.min(560, wanted)) + "px";
      canvas.resized();
    }
    canvas.zoom("fit-viewport", "auto");
  };

  /* Buttons for those who cannot scroll or drag: zoom in and out, back to the whole. */
  Trace.prototype.controls = function (viewer, canvas) {
    var self = this;
    var box = document.querySelector("[data-zoom]");
    if (!box) return;
    box.hidden = false;
    box.querySelectorAll("[data-zoom-step]").forEach(function (button) {
      button.addEventListener("click", function () {
        viewer.get("zoomScroll").stepZoom(Number(button.getAttribute("data-zoom-step")));
      });
    });
    box.querySelector("[data-zoom-fit]").addEventListener("click", function () {
      self.fit(canvas);
    });
  };

  document.addEventListener("DOMContentLoaded", function () {
    var holder = document.querySelector("[data-trace-url]");
    if (!holder) return;
    var trace = new Trace(holder);
    var initial = new URL(window.location.href).searchParams.get("element");
    trace.selected = initial && document.querySelector('[data-element-row="' +
      (window.CSS && CSS.escape ? CSS.escape(initial) : initial) + '"]') ? initial : null;

    document.querySelectorAll("[data-element-link]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        trace.show(link.getAttribute("data-element-link"), true);
      });
    });
    var all = document.querySelector("[data-show-all]");
    if (all) {
      all.addEventListener("click", function (event) {
        event.preventDefault();
        trace.show(null, true);
      });
    }

    if (typeof window.BpmnJS !== "function") {
      trace.message("The diagram viewer is not installed (npm ci); the elements passed and " +
        "the events are listed below.");
      return;
    }
    fetch(holder.getAttribute("data-trace-url"), {
      credentials: "same-origin", headers: { Accept: "application/json" }
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (data) {
      return trace.draw(data);
    }).catch(function () {
      trace.message("The diagram could not be drawn; the elements passed and the events " +
        "are listed below.");
    });
  });
})();
