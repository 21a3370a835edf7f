/* vcita Connect inside vcita's frame: connect in a popup, then redeem its one-time code.
   vcita's sign-in page refuses to be framed, so Connect opens it in a window of its own.
   That window's last page (connected.js) hands this frame a one-time code with
   postMessage, which only a page of this app's own origin can send; the code redeems
   only with this frame's own session (app/app_market/handoffs.py). */
(function () {
  "use strict";
  var link = document.getElementById("connect");
  if (!link || !link.dataset.popupUrl) return;
  var notes = {
    waiting: document.getElementById("connect-waiting"),
    blocked: document.getElementById("connect-blocked"),
    lost: document.getElementById("connect-lost")
  };
  var popup = null;
  var watch = null;
  var handedOver = false;

  function show(name) {
    Object.keys(notes).forEach(function (key) { notes[key].hidden = key !== name; });
  }

  link.addEventListener("click", function (event) {
    event.preventDefault();
    popup = window.open(link.dataset.popupUrl, "vcita-connect", "popup,width=520,height=720");
    if (!popup) {
      show("blocked");
      return;
    }
    show("waiting");
    clearInterval(watch);
    watch = setInterval(function () {
      if (!popup.closed) return;
      clearInterval(watch);
      // The popup closes itself right after handing over: give its message a moment.
      setTimeout(function () { if (!handedOver) show("lost"); }, 1500);
    }, 500);
  });

  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin) return;
    var data = event.data;
    if (!data || data.type !== "vcita-connect:handoff" || typeof data.code !== "string") return;
    handedOver = true;
    var body = new URLSearchParams({ code: data.code, csrf_token: link.dataset.csrf });
    fetch(link.dataset.handoffUrl, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (answer) {
        if (answer && answer.connected) {
          window.location.assign(answer.location);
        } else {
          handedOver = false;
          show("lost");
        }
      }, function () {
        handedOver = false;
        show("lost");
      });
  });
})();
