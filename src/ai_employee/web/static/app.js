// What htmx does not show by itself: an answer that is an error (htmx swaps only 2xx), or no answer.
// Text only (textContent): nothing from the server is parsed as HTML here.
(function () {
  "use strict";
  var words = {
    401: "The page's token is not valid any more (the server was restarted): open the URL from `vault status` again.",
    403: "Refused: reload the page (its CSRF token is stale) and try again.",
    404: "That is not there any more: it was decided or moved elsewhere. Reload the page.",
    421: "This page answers only to its own host name (see web.allowed_hosts)."
  };
  function notice(text) {
    var box = document.getElementById("notices");
    if (!box) { return; }
    var p = document.createElement("p");
    p.className = "notice error";
    p.setAttribute("data-outcome", "error");
    p.textContent = text;
    box.insertBefore(p, box.firstChild);
  }
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    notice(words[status] || "The page could not finish that (HTTP " + status + "): reload it to see whether it was done.");
  });
  document.addEventListener("htmx:sendError", function () {
    notice("The page's server does not answer (is `vault web` or the engine still running?).");
  });
})();
