// bdp replay --html: hover a bar for its summary, click it for its events. Data is rendered with
// textContent only (issue ids and details are hostile text). One listener for the whole chart.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("bdp-attempts").textContent);
  var kinds = data.kinds;
  var svg = document.getElementById("chart");
  var tip = document.getElementById("tip");
  var title = document.getElementById("d-title");
  var body = document.getElementById("d-events");
  var selected = null;
  function barOf(target) {
    return target && target.getAttribute && target.getAttribute("data-i") !== null ? target : null;
  }
  function attempt(bar) {
    return data.attempts[Number(bar.getAttribute("data-i"))];
  }
  function label(a) {
    return a[0] + " #" + a[1] + " \u2014 " + a[2] + " (" + a[3] + ", " + a[4].length + " events)";
  }
  svg.addEventListener("mousemove", function (e) {
    var bar = barOf(e.target);
    if (!bar) { tip.hidden = true; return; }
    tip.textContent = label(attempt(bar));
    tip.style.left = (e.clientX + 12) + "px";
    tip.style.top = (e.clientY + 12) + "px";
    tip.hidden = false;
  });
  svg.addEventListener("mouseleave", function () { tip.hidden = true; });
  svg.addEventListener("click", function (e) {
    var bar = barOf(e.target);
    if (!bar) return;
    if (selected) selected.classList.remove("sel");
    selected = bar;
    bar.classList.add("sel");
    var a = attempt(bar);
    title.textContent = label(a);
    while (body.firstChild) body.removeChild(body.firstChild);
    a[4].forEach(function (ev) {
      var tr = document.createElement("tr");
      [String(ev[0]), ev[1], kinds[ev[2]], ev[3]].forEach(function (text) {
        var td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  });
})();
