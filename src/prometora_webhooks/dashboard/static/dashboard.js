// Prometora dashboard: small enhancements over plain HTML forms (copy, confirm, reveal, live
// updates). Everything works without this script; it only makes it nicer.
(function () {
  "use strict";

  var POLL_MS = 2000;

  function announce(text) {
    var region = document.getElementById("live-announcer");
    if (region) { region.textContent = text; }
  }

  // -- Copy buttons: <button data-copy="#selector"> ------------------------------------------
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "sr-only";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }

  function onCopy(button) {
    var target = document.querySelector(button.getAttribute("data-copy"));
    if (!target) { return; }
    var text = "value" in target ? target.value : target.textContent;
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    copyText(text).then(function () {
      button.textContent = "Copied!";
      announce("Signing secret copied to the clipboard.");
    }, function () {
      if (target.select) { target.select(); }
      button.textContent = "Press Ctrl+C";
    }).then(function () {
      window.setTimeout(function () { button.textContent = label; }, 2000);
    });
  }

  // -- Confirmation dialogs: <form data-confirm="…" data-confirm-button="…"> -------------------
  function confirmThen(form, proceed) {
    var dialog = document.getElementById("confirm-dialog");
    var text = form.getAttribute("data-confirm");
    if (!dialog || typeof dialog.showModal !== "function") {
      if (window.confirm(text)) { proceed(); }
      return;
    }
    document.getElementById("confirm-title").textContent =
      form.getAttribute("data-confirm-title") || "Are you sure?";
    document.getElementById("confirm-text").textContent = text;
    var ok = document.getElementById("confirm-ok");
    ok.textContent = form.getAttribute("data-confirm-button") || "Confirm";
    ok.className = "btn " + (form.hasAttribute("data-confirm-danger") ? "btn-danger" : "btn-primary");
    dialog.returnValue = "";
    dialog.onclose = function () {
      dialog.onclose = null;
      if (dialog.returnValue === "confirm") { proceed(); }
    };
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-confirm")) { return; }
    event.preventDefault();
    confirmThen(form, function () {
      var field = form.getAttribute("data-confirm-field");
      if (field && !form.querySelector("input[name='" + field + "']")) {
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = field;
        input.value = "yes";
        form.appendChild(input);
      }
      form.submit();
    });
  });

  // -- Reveal / hide a signing secret ---------------------------------------------------------
  function reveal(link) {
    var id = link.getAttribute("data-reveal");
    var box = document.getElementById("secret-" + id);
    var input = document.getElementById("secret-value-" + id);
    if (!box || !input) { window.location.href = link.href; return; }
    fetch("/dashboard/webhooks/endpoints/" + encodeURIComponent(id) + "/secret", {
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (data) {
      input.value = data.secret;
      box.hidden = false;
      link.textContent = "Secret shown";
      input.focus();
      input.select();
    }).catch(function () { window.location.href = link.href; });
  }

  document.addEventListener("click", function (event) {
    var el = event.target.closest ? event.target.closest("[data-copy], [data-reveal], [data-hide]") : null;
    if (!el) { return; }
    event.preventDefault();
    if (el.hasAttribute("data-copy")) { onCopy(el); return; }
    if (el.hasAttribute("data-reveal")) { reveal(el); return; }
    var id = el.getAttribute("data-hide");
    var box = document.getElementById("secret-" + id);
    if (box) {
      box.hidden = true;
      document.getElementById("secret-value-" + id).value = "";
      var link = document.querySelector("[data-reveal='" + id + "']");
      if (link) { link.textContent = "Reveal secret"; link.focus(); }
    }
  });

  // -- Live updates: poll the page's fragments and swap the ones that changed ----------------
  function swap(container, part) {
    var open = [];
    container.querySelectorAll("details[open][id]").forEach(function (d) { open.push(d.id); });
    var focusedId = document.activeElement && container.contains(document.activeElement)
      ? document.activeElement.id : null;
    container.innerHTML = part.html;
    container.setAttribute("data-hash", part.hash);
    open.forEach(function (id) {
      var d = document.getElementById(id);
      if (d) { d.open = true; }
    });
    if (focusedId) {
      var again = document.getElementById(focusedId);
      if (again) { again.focus(); }
    }
  }

  function attemptIds(container) {
    return Array.prototype.map.call(container.querySelectorAll("[data-attempt]"), function (el) {
      return el.getAttribute("data-attempt");
    });
  }

  function apply(data) {
    var cards = document.querySelectorAll("article[data-endpoint]");
    var onPage = Array.prototype.map.call(cards, function (c) { return c.getAttribute("data-endpoint"); });
    document.getElementById("stale-notice").hidden = onPage.join(",") === data.order.join(",");
    var fresh = 0;
    data.order.forEach(function (id) {
      var card = document.getElementById("ep-" + id);
      var parts = data.endpoints[id];
      if (!card || !parts) { return; }
      Object.keys(parts).forEach(function (key) {
        var container = card.querySelector("[data-live='" + key + "']");
        if (!container || container.getAttribute("data-hash") === parts[key].hash) { return; }
        var before = key === "deliveries" ? attemptIds(container) : [];
        swap(container, parts[key]);
        if (key === "deliveries") {
          fresh += attemptIds(container).filter(function (a) { return before.indexOf(a) < 0; }).length;
        }
        if (key === "head") {
          var pill = container.querySelector("[data-status]");
          if (pill) {
            card.className = card.className.replace(/\bstatus-\S+/, "status-" + pill.getAttribute("data-status"));
          }
        }
      });
    });
    if (fresh) { announce(fresh === 1 ? "1 new delivery." : fresh + " new deliveries."); }
  }

  function startPolling(section) {
    var url = section.getAttribute("data-live-url");
    var indicator = document.getElementById("live-status");
    var timer = null;
    var busy = false;

    function poll() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) {
          if (response.status === 401) {
            document.getElementById("signed-out-notice").hidden = false;
            window.clearInterval(timer);
            if (indicator) { indicator.classList.add("is-paused"); indicator.textContent = "Paused"; }
            return null;
          }
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) {
          if (data) { apply(data); }
          if (indicator) { indicator.classList.remove("is-paused"); }
        })
        .catch(function () { if (indicator) { indicator.classList.add("is-paused"); } })
        .then(function () { busy = false; });
    }

    timer = window.setInterval(poll, POLL_MS);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { poll(); } });
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.querySelector("[data-live-url]");
    if (section) { startPolling(section); }
  });
})();
