// kopernik console: live refresh only. Every element with data-live is
// replaced, every few seconds, by the same element of a fresh copy of the
// page; nothing else changes, so focus and scrolling stay where they are.
(function () {
  "use strict";
  var live = document.querySelectorAll("[data-live]");
  if (!live.length) return;
  var status = document.createElement("p");
  status.className = "live-status";
  status.setAttribute("aria-live", "polite");
  document.querySelector("main").appendChild(status);
  function refresh() {
    if (document.hidden) return;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var fresh = doc.querySelector('[data-live="' + el.dataset.live + '"]');
          if (fresh) el.replaceWith(fresh);
        });
        status.textContent = "";
        status.classList.remove("stale");
      })
      .catch(function (e) {
        status.textContent = "Live update failed (" + e.message + "); figures may be stale.";
        status.classList.add("stale");
      });
  }
  setInterval(refresh, 5000);
})();
