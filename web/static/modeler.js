/* Guichet: the process modeler of /processes/KEY/edit.
 *
 * BPMN: the bpmn-js Modeler with its properties panel (window.BpmnJS and
 * window.BpmnJSPropertiesPanel, from node_modules through /vendor), plus a side panel of
 * our own for what the engine reads from the diagram: the spiffworkflow:property entries
 * of user tasks (formJsonSchemaFilename, status, group or groupFrom, assigneeFrom) and end
 * events (status), the script of script tasks, the condition of sequence flows, the
 * decision a business rule task calls, and the JSON Schema form of the selected user task.
 * DMN: dmn-js (window.DmnJS) opened on its decision table view.
 *
 * "Validate" and "Deploy" POST {"xml", "forms"} as JSON with the CSRF token in the
 * X-CSRFToken header; every error is listed, and its element gets the "error-marker"
 * class on the canvas (a click on the error selects it and scrolls to it).
 */
(function () {
  "use strict";

  var SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core";
  var FORM = "formJsonSchemaFilename";
  var MARKER = "error-marker";
  var PALETTE = 110;     // px of the canvas's left side the palette covers
  var MIN_SCALE = 0.55;  // smaller, labels cannot be read
  var MIN_HEIGHT = 460;  // the palette's height, and some room

  /* The spiffworkflow elements Guichet's diagrams use, so that they round-trip. */
  var SPIFF_MODDLE = {
    name: "SpiffWorkflow",
    prefix: "spiffworkflow",
    uri: SPIFF_NS,
    xml: { tagAlias: "lowerCase" },
    associations: [],
    types: [
      { name: "Properties", superClass: ["Element"],
        properties: [{ name: "properties", type: "Property", isMany: true }] },
      { name: "Property", superClass: ["Element"],
        properties: [{ name: "name", type: "String", isAttr: true },
                     { name: "value", type: "String", isAttr: true }] },
      { name: "CalledDecisionId", superClass: ["Element"],
        properties: [{ name: "value", type: "String", isBody: true }] },
      { name: "ServiceTaskOperator", superClass: ["Element"],
        properties: [{ name: "id", type: "String", isAttr: true },
                     { name: "resultVariable", type: "String", isAttr: true },
                     { name: "parameterList", type: "Parameters" }] },
      { name: "Parameters", superClass: ["Element"],
        properties: [{ name: "parameters", type: "Parameter", isMany: true }] },
      { name: "Parameter", superClass: ["Element"],
        properties: [{ name: "id", type: "String", isAttr: true },
                     { name: "type", type: "String", isAttr: true },
                     { name: "value", type: "String", isAttr: true }] },
      { name: "PreScript", superClass: ["Element"],
        properties: [{ name: "value", type: "String", isBody: true }] },
      { name: "PostScript", superClass: ["Element"],
        properties: [{ name: "value", type: "String", isBody: true }] },
      { name: "InstructionsForEndUser", superClass: ["Element"],
        properties: [{ name: "value", type: "String", isBody: true }] }
    ],
    enumerations: []
  };

  var TYPE_LABELS = {
    "bpmn:UserTask": "User task", "bpmn:ScriptTask": "Script task",
    "bpmn:ServiceTask": "Service task", "bpmn:BusinessRuleTask": "Decision task",
    "bpmn:Task": "Task", "bpmn:StartEvent": "Start event", "bpmn:EndEvent": "End event",
    "bpmn:ExclusiveGateway": "Exclusive gateway", "bpmn:ParallelGateway": "Parallel gateway",
    "bpmn:InclusiveGateway": "Inclusive gateway", "bpmn:SequenceFlow": "Sequence flow",
    "bpmn:Participant": "Pool", "bpmn:Lane": "Lane", "bpmn:Process": "Process",
    "bpmn:BoundaryEvent": "Boundary event", "bpmn:SubProcess": "Sub-process",
    "bpmn:IntermediateCatchEvent": "Waiting event", "bpmn:TextAnnotation": "Annotation"
  };

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === undefined || value === null || value === false) return;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : value);
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function humanize(text) {
    text = String(text || "").replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function isA(bo, type) {
    return !!(bo && bo.$instanceOf && bo.$instanceOf(type));
  }

  /* -- spiffworkflow:properties on a business object ------------------------------------ */

  function extensionValues(bo) {
    return (bo.extensionElements && bo.extensionElements.get("values")) || [];
  }

  function spiffProperties(bo) {
    return extensionValues(bo).filter(function (v) {
      return isA(v, "spiffworkflow:Properties");
    })[0] || null;
  }

  function spiffProperty(bo, name) {
    var props = spiffProperties(bo);
    return props ? props.get("properties").filter(function (p) { return p.name === name; })[0]
      : null;
  }

  function getSpiff(bo, name) {
    var prop = spiffProperty(bo, name);
    return prop ? (prop.value || "") : "";
  }

  function Editor(root) {
    this.root = root;
    this.kind = root.getAttribute("data-kind");
    this.canvasEl = root.querySelector("[data-canvas]");
    this.panel = document.getElementById("guichet-panel");
    this.statusEl = document.getElementById("modeler-status");
    this.errorsEl = document.getElementById("model-errors");
    this.versionEl = document.querySelector("[data-opened-version]");
    this.buttons = document.querySelectorAll("[data-action]");
    this.csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
    this.modeler = null;
    this.model = null;
    this.forms = {};       // file name -> the form as loaded (or last deployed)
    this.formTexts = {};   // file name -> the text in the editor, once touched
    this.dirtyForms = {};  // file names to send with the next validation or deployment
    this.selected = null;
    this.marked = [];
    this.changed = false;
    this.fields = [];      // {input, read(), apply()} of the side panel's diagram fields
  }

  /* -- loading ------------------------------------------------------------------------- */

  Editor.prototype.load = function () {
    var self = this;
    return fetch(this.root.getAttribute("data-model-url"), {
      credentials: "same-origin", headers: { Accept: "application/json" }
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (model) {
      self.model = model;
      self.forms = model.forms || {};
      // Opened from an older version: its forms go along, not the current version's.
      if (model.version !== model.current) {
        Object.keys(self.forms).forEach(function (name) { self.dirtyForms[name] = true; });
      }
      return self.kind === "dmn" ? self.openDmn(model.xml) : self.openBpmn(model.xml);
    }).then(function () {
      self.root.classList.add("is-ready");
      var note = self.root.querySelector("[data-modeler-message]");
      if (note) note.hidden = true;
      self.buttons.forEach(function (button) { button.disabled = false; });
    });
  };

  Editor.prototype.openBpmn = function (xml) {
    var self = this;
    var panels = window.BpmnJSPropertiesPanel;
    this.modeler = new window.BpmnJS({
      container: this.canvasEl,
      propertiesPanel: { parent: "#properties-panel" },
      additionalModules: [panels.BpmnPropertiesPanelModule, panels.BpmnPropertiesProviderModule],
      moddleExtensions: { spiffworkflow: SPIFF_MODDLE }
    });
    return this.modeler.importXML(xml).then(function (result) {
      (result.warnings || []).forEach(function (w) { console.warn("bpmn-js:", w.message); });
      self.fit();
      self.controls();
      var bus = self.modeler.get("eventBus");
      bus.on("selection.changed", function (event) {
        var chosen = event.newSelection.length === 1 ? event.newSelection[0] : null;
        self.select(chosen);
      });
      bus.on("elements.changed", function (event) {
        var mine = self.selected && event.elements.some(function (e) {
          return e === self.selected || e.id === self.selected.id;
        });
        if (mine) self.refresh();
      });
      bus.on("commandStack.changed", function () { self.changed = true; });
      self.select(null);
    });
  };

  /* The diagram from its top-left corner, right of the palette: whole when it fits,
   * else at a scale where labels stay readable (drag or zoom for the rest). */
  Editor.prototype.fit = function () {
    var canvas = this.modeler.get("canvas");
    canvas.zoom("fit-viewport");
    var box = canvas.viewbox();
    var inner = box.inner;
    if (!inner || !inner.width) return;
    // As tall as the window leaves room for (the foot below it included), no taller than
    // the diagram at full size.
    var top = this.canvasEl.getBoundingClientRect().top + window.scrollY;
    var room = window.innerHeight - top - 100;
    var height = Math.max(MIN_HEIGHT, Math.min(room, Math.round(inner.height + 64)));
    this.canvasEl.style.height = height + "px";
    canvas.resized();
    box = canvas.viewbox();
    var scale = Math.min((box.outer.width - PALETTE - 24) / inner.width,
                         (box.outer.height - 48) / inner.height);
    scale = Math.max(MIN_SCALE, Math.min(1, scale));
    canvas.viewbox({ x: inner.x - PALETTE / scale, y: inner.y - 32 / scale,
                     width: box.outer.width / scale, height: box.outer.height / scale });
  };

  /* Buttons for those who cannot drag or scroll: zoom out and in, the whole diagram. */
  Editor.prototype.controls = function () {
    var self = this;
    var box = document.querySelector("[data-zoom]");
    if (!box) return;
    box.hidden = false;
    box.querySelectorAll("[data-zoom-step]").forEach(function (button) {
      button.addEventListener("click", function () {
        self.modeler.get("zoomScroll").stepZoom(Number(button.getAttribute("data-zoom-step")));
      });
    });
    box.querySelector("[data-zoom-fit]").addEventListener("click", function () {
      self.modeler.get("canvas").zoom("fit-viewport", "auto");
    });
  };

  Editor.prototype.openDmn = function (xml) {
    var self = this;
    this.modeler = new window.DmnJS({ container: this.canvasEl });
    return this.modeler.importXML(xml).then(function () {
      var table = self.modeler.getViews().filter(function (view) {
        return view.type === "decisionTable";
      })[0];
      return table ? self.modeler.open(table) : null;
    }).then(function () {
      var viewer = self.modeler.getActiveViewer();
      if (viewer) {
        viewer.get("eventBus").on("elements.changed", function () { self.changed = true; });
      }
    });
  };

  /* -- the side panel -------------------------------------------------------------------- */

  Editor.prototype.select = function (element) {
    if (element && element.type === "label") element = element.labelTarget;
    this.selected = element;
    this.render();
  };

  Editor.prototype.render = function () {
    var panel = this.panel;
    if (!panel) return;
    var body = panel.querySelector("[data-panel-body]");
    body.textContent = "";
    this.fields = [];
    var element = this.selected;
    var bo = element && element.businessObject;
    if (!bo || element === this.modeler.get("canvas").getRootElement()) {
      body.appendChild(el("p", { className: "muted small", text: "Select a task, an event, a " +
        "gateway or a flow on the diagram to edit what the engine reads from it." }));
      return;
    }
    var type = TYPE_LABELS[bo.$type] || humanize(bo.$type.replace(/^bpmn:/, ""));
    body.appendChild(el("p", { className: "panel-element" }, [
      el("strong", { text: type }), " ", el("span", { className: "mono small muted", text: bo.id })
    ]));

    if (!isA(bo, "bpmn:Process")) this.textField(body, "name", "Name", bo.name || "", {
      apply: function (value) { this.modeler.get("modeling").updateLabel(element, value); },
      read: function () { return element.businessObject.name || ""; }
    });

    if (isA(bo, "bpmn:UserTask")) this.userTask(body, element);
    else if (isA(bo, "bpmn:EndEvent")) this.endEvent(body, element);
    else if (isA(bo, "bpmn:ScriptTask")) this.scriptTask(body, element);
    else if (isA(bo, "bpmn:BusinessRuleTask")) this.decisionTask(body, element);
    else if (isA(bo, "bpmn:SequenceFlow")) this.sequenceFlow(body, element);
  };

  /* Values the model changed elsewhere (properties panel, undo): shown unless being typed. */
  Editor.prototype.refresh = function () {
    this.fields.forEach(function (field) {
      if (document.activeElement === field.input) return;
      var value = field.read();
      if (field.input.type === "checkbox") field.input.checked = !!value;
      else if (field.input.value !== value) field.input.value = value;
    });
  };

  /* Apply what is typed in a field that has not lost the focus yet. */
  Editor.prototype.flush = function () {
    this.fields.forEach(function (field) { field.commit(); });
  };

  Editor.prototype.fieldId = function (name) {
    return "gp-" + name;
  };

  Editor.prototype.addField = function (parent, name, label, control, help) {
    var wrap = el("div", { className: "field", "data-panel-field": name }, [
      el("label", { className: "label", "for": this.fieldId(name), text: label }), control
    ]);
    if (help) {
      var helpEl = el("p", { className: "help", id: this.fieldId(name) + "-help", text: help });
      control.setAttribute("aria-describedby", helpEl.id);
      wrap.appendChild(helpEl);
    }
    parent.appendChild(wrap);
    return wrap;
  };

  Editor.prototype.bind = function (input, spec) {
    var self = this;
    var field = {
      input: input,
      read: spec.read.bind(this),
      commit: function () {
        var value = input.type === "checkbox" ? input.checked : input.value;
        var current = field.read();
        if (input.type === "checkbox" ? value === !!current : value === current) return;
        spec.apply.call(self, value);
      }
    };
    input.addEventListener("change", field.commit);
    this.fields.push(field);
    return field;
  };

  Editor.prototype.textField = function (parent, name, label, value, spec, options) {
    options = options || {};
    var input;
    if (options.multiline) {
      input = el("textarea", { id: this.fieldId(name), name: name, rows: options.rows || 4,
                               className: "mono", spellcheck: "false" });
      input.value = value;
    } else {
      input = el("input", { type: "text", id: this.fieldId(name), name: name, value: value,
                            list: options.list, autocomplete: "off",
                            placeholder: options.placeholder });
    }
    this.addField(parent, name, label, input, options.help);
    this.bind(input, spec);
    return input;
  };

  Editor.prototype.selectField = function (parent, name, label, value, choices, spec, help) {
    var select = el("select", { id: this.fieldId(name), name: name });
    choices.forEach(function (choice) {
      var option = el("option", { value: choice[0], text: choice[1] });
      if (choice[0] === value) option.selected = true;
      select.appendChild(option);
    });
    if (value && !choices.some(function (c) { return c[0] === value; })) {
      select.appendChild(el("option", { value: value, text: value + " (unknown)",
                                        selected: true }));
    }
    this.addField(parent, name, label, select, help);
    this.bind(select, spec);
    return select;
  };

  Editor.prototype.spiffField = function (parent, element, name, label, options) {
    options = options || {};
    var spec = {
      read: function () { return getSpiff(element.businessObject, name); },
      apply: function (value) { this.setSpiff(element, name, value); }
    };
    if (options.choices) {
      return this.selectField(parent, name, label, getSpiff(element.businessObject, name),
                              options.choices, spec, options.help);
    }
    return this.textField(parent, name, label, getSpiff(element.businessObject, name), spec,
                          options);
  };

  Editor.prototype.datalist = function (parent, id, values) {
    var list = el("datalist", { id: id });
    values.forEach(function (v) {
      list.appendChild(el("option", { value: v[0], label: v[1] || v[0] }));
    });
    parent.appendChild(list);
    return id;
  };

  Editor.prototype.userTask = function (body, element) {
    var self = this;
    var model = this.model;
    var groups = (model.groups || []).map(function (g) { return [g.key, g.name]; });
    groups.push(["requester", "The ticket's requester"]);
    var statuses = [["", "Default (in progress)"]].concat(
      (model.task_statuses || []).map(function (s) { return [s, humanize(s)]; }));
    var formNames = Object.keys(this.forms).concat(Object.keys(this.formTexts))
      .filter(function (n, i, all) { return all.indexOf(n) === i; }).sort()
      .map(function (n) { return [n]; });

    var box = el("fieldset", { className: "panel-group" }, [
      el("legend", { className: "panel-legend", text: "Engine properties" })]);
    body.appendChild(box);
    this.spiffField(box, element, "group", "Group", {
      list: this.datalist(box, "gp-groups", groups),
      help: "The group whose queue gets the task, or requester." });
    this.spiffField(box, element, "groupFrom", "Group from variable", {
      placeholder: "e.g. group",
      help: "Instead of a group: the process variable that holds the group's key." });
    this.spiffField(box, element, "assigneeFrom", "Assignee from variable", {
      placeholder: "optional", help: "A process variable holding a user name." });
    this.spiffField(box, element, "status", "Ticket status while waiting here",
                    { choices: statuses });
    this.spiffField(box, element, FORM, "Form file", {
      list: this.datalist(box, "gp-forms", formNames) });
    this.formEditor(body, element);
    // A new form file name opens its form at once.
    var formInput = document.getElementById(this.fieldId(FORM));
    formInput.addEventListener("change", function () { self.formEditor(body, element); });
  };

  Editor.prototype.formEditor = function (body, element) {
    var self = this;
    var old = body.querySelector("[data-form-editor]");
    if (old) old.remove();
    var name = getSpiff(element.businessObject, FORM);
    var box = el("div", { className: "panel-group form-editor", "data-form-editor": name });
    body.appendChild(box);
    if (!name) {
      box.appendChild(el("p", { className: "muted small",
                                text: "Name a form file to edit the task's form." }));
      return;
    }
    var text = this.formTexts[name];
    var isNew = false;
    if (text === undefined) {
      if (Object.prototype.hasOwnProperty.call(this.forms, name)) {
        text = JSON.stringify(this.forms[name], null, 2);
      } else {
        isNew = true;
        text = JSON.stringify({
          "$schema": "https://json-schema.org/draft/2020-12/schema",
          title: element.businessObject.name || element.businessObject.id,
          type: "object", properties: {}, required: []
        }, null, 2);
        this.formTexts[name] = text;
        this.dirtyForms[name] = true;
      }
    }
    var area = el("textarea", { id: "gp-form-json", className: "mono form-json", rows: 16,
                                spellcheck: "false", "aria-describedby": "gp-form-help" });
    area.value = text;
    var problem = el("p", { className: "error", id: "gp-form-error", hidden: true });
    box.appendChild(el("label", { className: "label", "for": "gp-form-json" }, [
      "Form (JSON Schema) ", el("span", { className: "mono small", text: name })]));
    box.appendChild(area);
    box.appendChild(problem);
    box.appendChild(el("p", { className: "help", id: "gp-form-help", text: isNew ?
      "A new form: it is deployed with the diagram." :
      "Edited forms are deployed with the diagram." }));
    var check = function () {
      try {
        JSON.parse(area.value);
        problem.hidden = true;
        area.removeAttribute("aria-invalid");
      } catch (err) {
        problem.textContent = "Not valid JSON: " + err.message;
        problem.hidden = false;
        area.setAttribute("aria-invalid", "true");
      }
    };
    area.addEventListener("input", function () {
      self.formTexts[name] = area.value;
      self.dirtyForms[name] = true;
      self.changed = true;
      check();
    });
    check();
  };

  Editor.prototype.endEvent = function (body, element) {
    var statuses = [["", "Default (closed)"]].concat(
      (this.model.end_statuses || []).map(function (s) { return [s, humanize(s)]; }));
    this.spiffField(body, element, "status", "Ticket status at this end", {
      choices: statuses });
  };

  Editor.prototype.scriptTask = function (body, element) {
    this.textField(body, "script", "Script (Python, run in the sandbox)",
                   element.businessObject.script || "", {
      read: function () { return element.businessObject.script || ""; },
      apply: function (value) {
        this.modeler.get("modeling").updateProperties(element, {
          script: value, scriptFormat: element.businessObject.scriptFormat || "python" });
      }
    }, { multiline: true, rows: 8 });
  };

  Editor.prototype.decisionTask = function (body, element) {
    var self = this;
    var read = function () {
      var found = extensionValues(element.businessObject).filter(function (v) {
        return isA(v, "spiffworkflow:CalledDecisionId");
      })[0];
      return found ? (found.value || "").trim() : "";
    };
    var choices = [["", "None"]].concat((this.model.decisions || []).map(function (d) {
      return [d, d];
    }));
    this.selectField(body, "calledDecisionId", "Decision table", read(), choices, {
      read: read,
      apply: function (value) { self.setCalledDecision(element, value); }
    });
  };

  Editor.prototype.sequenceFlow = function (body, element) {
    var bo = element.businessObject;
    var source = bo.sourceRef;
    var gateway = isA(source, "bpmn:ExclusiveGateway") || isA(source, "bpmn:InclusiveGateway");
    this.textField(body, "condition", "Condition (Python expression)",
                   (bo.conditionExpression && bo.conditionExpression.body) || "", {
      read: function () {
        var expr = element.businessObject.conditionExpression;
        return (expr && expr.body) || "";
      },
      apply: function (value) { this.setCondition(element, value); }
    }, { multiline: true, rows: 3, help: gateway ?
      "Taken when true, e.g. action == \"resolve\"." : "Usually only on flows out of gateways." });
    if (!gateway) return;
    var box = el("input", { type: "checkbox", id: this.fieldId("default"), name: "default" });
    box.checked = source.default === bo;
    var wrap = el("div", { className: "field field-check" }, [
      el("label", { className: "check", "for": this.fieldId("default") }, [
        box, "Default flow of the gateway (taken when no condition holds)"])]);
    body.appendChild(wrap);
    this.bind(box, {
      read: function () {
        return element.businessObject.sourceRef.default === element.businessObject;
      },
      apply: function (checked) {
        var shape = this.modeler.get("elementRegistry").get(source.id);
        this.modeler.get("modeling").updateProperties(shape, {
          "default": checked ? element.businessObject : undefined });
      }
    });
  };

  /* -- writing to the model -------------------------------------------------------------- */

  Editor.prototype.ensureExtensions = function (element) {
    var bo = element.businessObject;
    var ext = bo.extensionElements;
    if (!ext) {
      ext = this.modeler.get("moddle").create("bpmn:ExtensionElements", { values: [] });
      ext.$parent = bo;
      this.modeler.get("modeling").updateProperties(element, { extensionElements: ext });
    }
    return ext;
  };

  Editor.prototype.setSpiff = function (element, name, value) {
    var modeling = this.modeler.get("modeling");
    var moddle = this.modeler.get("moddle");
    var bo = element.businessObject;
    value = (value || "").trim();
    var props = spiffProperties(bo);
    var prop = spiffProperty(bo, name);
    if (!value) {
      if (prop) {
        modeling.updateModdleProperties(element, props, {
          properties: props.get("properties").filter(function (p) { return p !== prop; })
        });
      }
      return;
    }
    if (prop) {
      modeling.updateModdleProperties(element, prop, { value: value });
      return;
    }
    var ext = this.ensureExtensions(element);
    if (!props) {
      props = moddle.create("spiffworkflow:Properties", { properties: [] });
      props.$parent = ext;
      modeling.updateModdleProperties(element, ext, { values: ext.get("values").concat([props]) });
    }
    prop = moddle.create("spiffworkflow:Property", { name: name, value: value });
    prop.$parent = props;
    modeling.updateModdleProperties(element, props, {
      properties: props.get("properties").concat([prop]) });
  };

  Editor.prototype.setCalledDecision = function (element, value) {
    var modeling = this.modeler.get("modeling");
    var ext = this.ensureExtensions(element);
    var found = ext.get("values").filter(function (v) {
      return isA(v, "spiffworkflow:CalledDecisionId");
    })[0];
    if (!value) {
      if (found) {
        modeling.updateModdleProperties(element, ext, {
          values: ext.get("values").filter(function (v) { return v !== found; }) });
      }
      return;
    }
    if (found) {
      modeling.updateModdleProperties(element, found, { value: value });
      return;
    }
    found = this.modeler.get("moddle").create("spiffworkflow:CalledDecisionId", { value: value });
    found.$parent = ext;
    modeling.updateModdleProperties(element, ext, { values: ext.get("values").concat([found]) });
  };

  Editor.prototype.setCondition = function (element, value) {
    var modeling = this.modeler.get("modeling");
    var bo = element.businessObject;
    value = (value || "").trim();
    if (!value) {
      modeling.updateProperties(element, { conditionExpression: undefined });
      return;
    }
    if (bo.conditionExpression) {
      modeling.updateModdleProperties(element, bo.conditionExpression, { body: value });
      return;
    }
    var expr = this.modeler.get("moddle").create("bpmn:FormalExpression", { body: value });
    expr.$parent = bo;
    modeling.updateProperties(element, { conditionExpression: expr });
  };

  /* -- validate and deploy ---------------------------------------------------------------- */

  Editor.prototype.payload = function () {
    var self = this;
    this.flush();
    var forms = {};
    Object.keys(this.dirtyForms).forEach(function (name) {
      var text = self.formTexts[name];
      if (text === undefined) {
        forms[name] = self.forms[name];
        return;
      }
      try {
        forms[name] = JSON.parse(text);
      } catch (err) {
        forms[name] = text; // the engine names the task whose form this is
      }
    });
    return this.modeler.saveXML({ format: true }).then(function (result) {
      return { xml: result.xml, forms: forms };
    });
  };

  Editor.prototype.post = function (url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json",
                 "X-CSRFToken": this.csrf },
      body: JSON.stringify(body)
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      var read = type.indexOf("json") !== -1 ? response.json() : Promise.resolve({
        error: "The server answered " + response.status + " " + response.statusText + "." });
      return read.then(function (data) { return { status: response.status, data: data }; });
    });
  };

  Editor.prototype.run = function (action) {
    var self = this;
    var url = this.root.getAttribute(action === "deploy" ? "data-deploy-url" : "data-validate-url");
    this.busy(true, action === "deploy" ? "Deploying…" : "Validating…");
    return this.payload().then(function (body) {
      return self.post(url, body);
    }).then(function (answer) {
      var data = answer.data || {};
      if (action === "validate" && answer.status === 200) {
        if (data.ok) {
          self.showErrors([]);
          self.say("ok", "No problem found: this diagram can be deployed.");
        } else {
          self.showErrors(data.errors, "Not deployed (validation only): " +
                          self.count(data.errors) + " to fix");
        }
      } else if (action === "deploy" && (answer.status === 201 || answer.status === 200)) {
        self.showErrors([]);
        self.deployed(data);
      } else if (answer.status === 422 && data.errors) {
        self.showErrors(data.errors, "Not deployed: " + self.count(data.errors) + " to fix");
      } else {
        self.say("error", data.error || ("The server answered " + answer.status + "."));
      }
    }).catch(function (err) {
      self.say("error", "The request failed: " + err.message);
    }).then(function () {
      self.busy(false);
    });
  };

  Editor.prototype.count = function (errors) {
    var n = (errors || []).length;
    return n + (n === 1 ? " problem" : " problems");
  };

  Editor.prototype.deployed = function (data) {
    var self = this;
    Object.keys(this.dirtyForms).forEach(function (name) {
      var text = self.formTexts[name];
      if (text === undefined) return;
      try { self.forms[name] = JSON.parse(text); } catch (err) { /* kept as typed */ }
    });
    this.dirtyForms = {};
    this.changed = false;
    this.model.version = this.model.current = data.version;
    if (this.versionEl) this.versionEl.textContent = String(data.version);
    this.say("ok", data.message || ("Deployed as version " + data.version + "."),
             data.url ? { href: data.url, text: "See the versions" } : null);
  };

  Editor.prototype.busy = function (on, text) {
    this.buttons.forEach(function (button) { button.disabled = on; });
    this.root.setAttribute("aria-busy", on ? "true" : "false");
    if (on) this.say("info", text);
  };

  Editor.prototype.say = function (kind, text, link) {
    var box = this.statusEl;
    box.className = "modeler-status modeler-status-" + kind;
    box.textContent = text;
    if (link) {
      box.appendChild(document.createTextNode(" "));
      box.appendChild(el("a", { href: link.href, text: link.text }));
    }
    box.hidden = false;
  };

  /* -- errors on the diagram ----------------------------------------------------------------- */

  Editor.prototype.findElement = function (id) {
    if (!id || this.kind !== "bpmn") return null;
    var registry = this.modeler.get("elementRegistry");
    var found = registry.get(id);
    if (found) return found;
    // The process itself: its pool stands for it.
    return registry.filter(function (e) {
      var ref = e.businessObject && e.businessObject.processRef;
      return ref && ref.id === id;
    })[0] || null;
  };

  Editor.prototype.findCells = function (id) {
    if (!id || this.kind !== "dmn") return [];
    var escaped = window.CSS && CSS.escape ? CSS.escape(id) : id;
    return Array.prototype.slice.call(this.canvasEl.querySelectorAll(
      '[data-row-id="' + escaped + '"], [data-col-id="' + escaped + '"]'));
  };

  Editor.prototype.clearMarks = function () {
    var canvas = this.kind === "bpmn" ? this.modeler.get("canvas") : null;
    this.marked.forEach(function (mark) {
      if (canvas && mark.id) canvas.removeMarker(mark, MARKER);
      else if (mark.classList) mark.classList.remove(MARKER);
    });
    this.marked = [];
  };

  Editor.prototype.showErrors = function (errors, title) {
    var self = this;
    this.clearMarks();
    if (errors.length) this.statusEl.hidden = true;
    this.errorsEl.querySelector("h2").textContent = title || "Problems to fix";
    var list = this.errorsEl.querySelector("ol");
    list.textContent = "";
    this.errorsEl.hidden = errors.length === 0;
    if (!errors.length) return;
    var canvas = this.kind === "bpmn" ? this.modeler.get("canvas") : null;
    errors.forEach(function (error) {
      var element = self.findElement(error.element);
      var cells = self.findCells(error.element);
      if (element && canvas) {
        if (!canvas.hasMarker(element, MARKER)) canvas.addMarker(element, MARKER);
        self.marked.push(element);
      }
      cells.forEach(function (cell) {
        cell.classList.add(MARKER);
        self.marked.push(cell);
      });
      var name = element && element.businessObject && element.businessObject.name;
      var index = cells.filter(function (c) { return c.classList.contains("rule-index"); })[0];
      if (index) name = "Rule " + index.textContent.trim();
      var item = el("li", { "data-error-element": error.element || "" });
      if (element || cells.length) {
        var button = el("button", { type: "button", className: "link-button" }, [
          name || error.element]);
        button.addEventListener("click", function () { self.reveal(element, cells); });
        item.appendChild(button);
        if (name && name !== error.element) {
          item.appendChild(el("span", { className: "mono small muted", text: " " + error.element }));
        }
      } else if (error.element) {
        item.appendChild(el("strong", { className: "mono", text: error.element }));
      }
      item.appendChild(document.createTextNode((error.element ? ": " : "") + error.message));
      list.appendChild(item);
    });
    this.errorsEl.focus();
  };

  Editor.prototype.reveal = function (element, cells) {
    if (element) {
      this.modeler.get("selection").select(element);
      this.modeler.get("canvas").scrollToElement(element, { top: 80, bottom: 80, left: 80,
                                                          right: 80 });
      this.canvasEl.scrollIntoView({ block: "nearest" });
    } else if (cells && cells.length) {
      cells[0].scrollIntoView({ block: "center" });
      cells[0].focus && cells[0].focus();
    }
  };

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.querySelector("[data-model-url]");
    if (!root) return;
    var editor = new Editor(root);
    var kind = root.getAttribute("data-kind");
    var ready = kind === "dmn" ? typeof window.DmnJS === "function" :
      typeof window.BpmnJS === "function" && !!window.BpmnJSPropertiesPanel;
    var note = root.querySelector("[data-modeler-message]");
    if (!ready) {
      note.textContent = "The modeler is not installed (run npm ci, or make): the diagram " +
        "cannot be edited here.";
      return;
    }
    editor.buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        editor.run(button.getAttribute("data-action"));
      });
    });
    window.addEventListener("beforeunload", function (event) {
      if (!editor.changed) return;
      event.preventDefault();
      event.returnValue = "";
    });
    editor.load().catch(function (err) {
      note.textContent = "The diagram could not be opened: " + err.message;
      note.hidden = false;
    });
    window.guichetModeler = editor; // to inspect from the browser console
  });
})();
