(function () {
  var button = document.getElementById("copy-code"), field = document.getElementById("pay-code");
  if (!button || !field) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    var done = function () { button.textContent = button.getAttribute("data-copied"); };
    var fallback = function () { field.select(); document.execCommand("copy"); done(); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, fallback);
    } else {
      fallback();
    }
  });
})();