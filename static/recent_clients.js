/* The Recent clients panel fills itself: the page was made while vcita was still listing
   the clients, so the panel asks the app for itself again (GET /dashboard/recent-clients)
   until they are there, waiting longer each time. Without JavaScript, the panel's link
   opens the same panel as a page. The answer is HTML the app rendered and escaped; only
   its panel is taken. A redirect means the connection is gone (Disconnect elsewhere, or
   vcita revoked it): the page is loaded again, and says so. */
(function () {
  "use strict";
  var WAITS_MS = [500, 1000, 2000, 4000, 8000, 8000, 8000, 15000, 15000];
  var tries = 0;

  function panel() {
    return document.getElementById("recent-clients");
  }

  function askAgainLater() {
    var current = panel();
    if (!current || !current.dataset.panelUrl || tries >= WAITS_MS.length) return;
    setTimeout(ask, WAITS_MS[tries]);
    tries += 1;
  }

  function ask() {
    var current = panel();
    fetch(current.dataset.panelUrl, { credentials: "same-origin", redirect: "manual" })
      .then(function (response) {
        if (response.type === "opaqueredirect") {
          window.location.reload();
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (text) {
        if (text === null) return askAgainLater();
        var answer = new DOMParser().parseFromString(text, "text/html").getElementById("recent-clients");
        if (!answer) return askAgainLater();
        // The same element stays, so that a screen reader's place on the page stays too.
        current.replaceChildren.apply(current, Array.prototype.slice.call(answer.childNodes));
        ["aria-busy", "data-panel-url"].forEach(function (name) {
          if (answer.hasAttribute(name)) current.setAttribute(name, answer.getAttribute(name));
          else current.removeAttribute(name);
        });
        askAgainLater();
      }, askAgainLater);
  }

  if (panel() && panel().dataset.panelUrl) ask();
})();
