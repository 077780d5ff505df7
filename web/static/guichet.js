/* Guichet: optional enhancements. Every page works without this file.
 *
 * Fields that a schema requires only in some cases (allOf/if/then, rendered with
 * data-when="field=value|...") are hidden while another answer is chosen, and disabled
 * so that nothing stale is sent. With no answer chosen yet every field stays visible.
 */
(function () {
  "use strict";

  function valueOf(form, name) {
    var controls = form.elements.namedItem(name);
    if (!controls) return "";
    if (controls instanceof RadioNodeList) {
      return controls.value || "";
    }
    return controls.value || "";
  }

  function update(form) {
    form.querySelectorAll("[data-when]").forEach(function (field) {
      var decided = false;
      var matches = false;
      field.getAttribute("data-when").split("|").forEach(function (rule) {
        var at = rule.indexOf("=");
        if (at < 1) return;
        var current = valueOf(form, rule.slice(0, at));
        if (current) decided = true;
        if (current === rule.slice(at + 1)) matches = true;
      });
      var show = !decided || matches;
      field.hidden = !show;
      field.querySelectorAll("input, select, textarea").forEach(function (control) {
        control.disabled = !show;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form").forEach(function (form) {
      if (!form.querySelector("[data-when]")) return;
      update(form);
      form.addEventListener("change", function () { update(form); });
    });
  });
})();
