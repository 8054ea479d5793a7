// Forms marked data-confirm (Release, Rotate token) ask first; without JavaScript they
// are sent at once, as before.
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});

// Live pages without a reload: every few seconds, fetch this page again and swap in the
// parts marked data-live that changed. Nothing is swapped while focus is inside one
// (the person is using it) or while the tab is hidden. Without JavaScript the pages work,
// they just do not update by themselves.
(function () {
  "use strict";
  var live = document.querySelectorAll("[data-live][id]");
  if (!live.length) return;
  var interval = 4000;
  function refresh() {
    if (document.hidden) return;
    fetch(location.href, { credentials: "same-origin", headers: { "X-Console-Live": "1" } })
      .then(function (response) {
        // Redirected: the session ended (signed out elsewhere, token rotated): show the sign-in page.
        if (response.redirected) { location.assign(response.url); return null; }
        if (!response.ok) return null;
        return response.text();
      })
      .then(function (text) {
        if (!text) return;
        var fresh = new DOMParser().parseFromString(text, "text/html");
        live.forEach(function (element) {
          var replacement = fresh.getElementById(element.id);
          if (!replacement || element.contains(document.activeElement)) return;
          if (replacement.innerHTML !== element.innerHTML) {
            element.innerHTML = replacement.innerHTML;
            element.setAttribute("data-updated", new Date().toISOString());
          }
        });
      })
      .catch(function () { /* the next round tries again */ });
  }
  setInterval(refresh, interval);
})();
