// Progressive enhancement only: every action works without this script.
// Keeps the "N conversations selected" count in step with the checkboxes.
document.addEventListener("change", function (event) {
  var box = event.target;
  if (!box.matches || !box.matches("input[name=pick]")) return;
  var count = document.querySelector("[data-selected-count]");
  if (!count) return;
  var n = parseInt(count.getAttribute("data-selected-count"), 10) + (box.checked ? 1 : -1);
  count.setAttribute("data-selected-count", String(n));
  count.textContent = n === 1 ? "1 conversation selected" : n + " conversations selected";
});

// A job on a file's page: follows its Server-Sent Events and reloads the
// page when it ends (the "Refresh" link does the same without JavaScript).
(function () {
  var box = document.querySelector("[data-job]");
  if (!box || !window.EventSource) return;
  var events = new EventSource("/api/jobs/" + box.getAttribute("data-job") + "/events");
  function show(event) {
    var job = JSON.parse(event.data);
    box.querySelector("[data-job-state]").textContent = job.state;
    box.querySelector("[data-job-phase]").textContent = job.phase;
    box.querySelector("[data-job-done]").textContent = job.done;
    box.querySelector("[data-job-total]").textContent = job.total;
    box.querySelector("[data-job-eta]").textContent = job.eta_seconds == null ? "–" : "about " + Math.ceil(job.eta_seconds) + " s left";
    var bar = box.querySelector("[data-job-bar]");
    bar.max = Math.max(job.total, 1);
    bar.value = job.done;
  }
  events.addEventListener("progress", show);
  ["succeeded", "failed", "cancelled"].forEach(function (name) {
    events.addEventListener(name, function (event) {
      show(event);
      events.close();
      window.location.reload();
    });
  });
})();
