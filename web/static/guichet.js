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

/* Countdowns to due dates ("3 h 20 min left", "overdue by 5 min"), re-counted every
 * 30 seconds from the data-due attribute the server rendered them with. */
(function () {
  "use strict";

  function words(seconds) {
    var days = Math.floor(seconds / 86400);
    var hours = Math.floor((seconds % 86400) / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    if (days) return days + " d " + hours + " h";
    if (hours) return hours + " h " + minutes + " min";
    return minutes ? minutes + " min" : "under 1 min";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) return;
      var seconds = Math.round((due - now) / 1000);
      el.textContent = seconds < 0 ? "overdue by " + words(-seconds) : words(seconds) + " left";
      el.classList.toggle("is-overdue", seconds < 0);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.querySelector(".countdown[data-due]")) return;
    window.setInterval(tick, 30000);
  });
})();
