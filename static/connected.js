/* The popup's last page: hand the one-time code to vcita's frame, then close.
   postMessage to this app's own origin only: no other site's window can read it. */
(function () {
  "use strict";
  var page = document.getElementById("handoff");
  var code = page && page.dataset.code;
  if (!code || !window.opener) return;
  window.opener.postMessage({ type: "vcita-connect:handoff", code: code }, window.location.origin);
  document.getElementById("returning").hidden = false;
  setTimeout(function () { window.close(); }, 300);
})();
