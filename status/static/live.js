// vidgen status page: local times, and live job updates from /api/events (Server-Sent Events).
// Everything a job says is put into the page as text, never as HTML.
(function () {
  "use strict";

  var CLIP_STATUS = { queued: "queued", active: "generating", completed: "ready", failed: "failed", cancelled: "cancelled" };
  var COUNTED = ["active", "queued", "failed", "completed", "cancelled"]; // as jobs.html lists them
  var shown = new Map(); // job id -> updatedAtUs of what the page shows

  function pad(number) {
    return String(number).padStart(2, "0");
  }

  // Today's times as 13:20:30, older ones as 2026-11-26 13:20, in the reader's time zone.
  function localTime(iso) {
    var moment = new Date(iso);
    if (isNaN(moment.getTime())) return null;
    var clock = pad(moment.getHours()) + ":" + pad(moment.getMinutes());
    if (moment.toDateString() === new Date().toDateString()) {
      return clock + ":" + pad(moment.getSeconds());
    }
    return moment.getFullYear() + "-" + pad(moment.getMonth() + 1) + "-" + pad(moment.getDate()) + " " + clock;
  }

  function localizeTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var text = localTime(el.getAttribute("datetime"));
      if (text) {
        el.title = el.textContent;
        el.textContent = text;
      }
    });
  }

  function setBadge(badge, status, label) {
    if (!badge) return;
    badge.className = "badge status-" + status;
    badge.textContent = label || status;
  }

  function setProgress(root, job) {
    root.querySelectorAll("progress.bar").forEach(function (bar) {
      bar.value = job.progressPercent;
      bar.textContent = Math.round(job.progressPercent) + " %";
      bar.className = "bar status-" + job.jobStatus;
    });
    root.querySelectorAll(".pct").forEach(function (el) {
      el.textContent = Math.round(job.progressPercent) + " %";
    });
    var failed = job.jobStatus === "failed" && Boolean(job.errorMessage);
    root.querySelectorAll(".stage").forEach(function (el) {
      // A failed job's stage repeats its error, which is shown once, below.
      el.textContent = failed ? "" : job.currentStage || "";
      el.hidden = failed;
    });
    root.querySelectorAll(".error-text").forEach(function (el) {
      el.textContent = failed ? job.errorMessage : "";
      el.hidden = !failed;
    });
  }

  function updateJob(root, job) {
    root.dataset.status = job.jobStatus;
    root.dataset.updatedUs = String(job.updatedAtUs);
    setProgress(root, job);
    var badge = root.querySelector(".status-cell .badge, .page-head .badge");
    setBadge(badge, job.jobStatus);
    var priority = root.querySelector("td.priority");
    if (priority) {
      priority.textContent = job.priority;
      priority.className = "priority priority-" + job.priority;
    }
    var time = root.querySelector("td.updated time");
    if (time) {
      time.setAttribute("datetime", job.updatedAt);
      time.textContent = localTime(job.updatedAt) || job.updatedAt;
    }
  }

  function updateClip(card, job) {
    if (job.jobType !== "generate") return;
    var status = CLIP_STATUS[job.jobStatus] || job.jobStatus;
    setBadge(card.querySelector(".clip-status .badge"), status);
    if (job.jobStatus === "completed") {
      var block = card.querySelector(".progress-block");
      if (block) {
        block.querySelector(".stage").textContent = "ready: reload the page to play it";
      }
    }
  }

  // A live job the page does not show goes where its age puts it among the rows (newest first;
  // jobs made in one transaction may arrive in any order); one older than every row of a full
  // page sits on a later page. The page keeps its length; the oldest row moves on.
  function addRow(job) {
    var body = document.querySelector("tbody[data-prepend]");
    var template = document.getElementById("job-row-template");
    if (!body || !template) return null;
    var perPage = Number(body.dataset.perPage) || 0;
    var before = null;
    var rows = body.querySelectorAll("tr[data-created-us]");
    for (var i = 0; i < rows.length; i++) {
      if (Number(rows[i].dataset.createdUs) < job.createdAtUs) { before = rows[i]; break; }
    }
    if (!before && perPage && rows.length >= perPage) return null;
    var row = template.content.firstElementChild.cloneNode(true);
    row.dataset.jobId = job.id;
    row.dataset.createdUs = String(job.createdAtUs);
    var project = row.querySelector(".project-link");
    project.textContent = job.displayName || job.projectName;
    project.setAttribute("href", "/projects/" + encodeURIComponent(job.projectName));
    var link = row.querySelector(".job-link");
    link.textContent = job.jobType;
    link.setAttribute("href", "/jobs/" + encodeURIComponent(job.id));
    row.querySelector(".job-short").textContent = job.id.slice(0, 8);
    body.insertBefore(row, before);
    while (perPage && body.rows.length > perPage) body.deleteRow(-1);
    var table = body.closest("table");
    if (table) table.hidden = false;
    return row;
  }

  function updateCounts(counts) {
    var list = document.querySelector("ul.counts");
    if (!list) return;
    list.textContent = "";
    COUNTED.forEach(function (status) {
      var count = counts.statusCounts[status];
      if (!count) return;
      var item = document.createElement("li");
      var badge = document.createElement("span");
      setBadge(badge, status, count + " " + status);
      item.appendChild(badge);
      list.appendChild(item);
    });
  }

  // The first event message carries a page of live jobs, not all of them: when jobs were left
  // out, the page reads the ones it shows from its own JSON (data-refresh).
  var refreshing = false;
  function refresh() {
    var url = document.body.dataset.refresh;
    if (!url || refreshing || !window.fetch) return;
    refreshing = true;
    window.fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) return;
        (Array.isArray(data.jobs) ? data.jobs : [data]).forEach(function (job) {
          if (job && job.id) apply(job);
        });
      })
      .catch(function (problem) {
        if (window.console) window.console.warn("vidgen: could not refresh the jobs", problem);
      })
      .then(function () { refreshing = false; });
  }

  function apply(job) {
    var known = shown.get(job.id) || 0;
    if (job.updatedAtUs < known) return; // older than what the page already shows
    shown.set(job.id, job.updatedAtUs);
    var selector = '[data-job-id="' + CSS.escape(job.id) + '"]';
    var targets = Array.prototype.slice.call(document.querySelectorAll(selector));
    if (targets.length === 0 && (job.jobStatus === "queued" || job.jobStatus === "active")) {
      var row = addRow(job);
      if (row) targets.push(row);
    }
    targets.forEach(function (el) {
      if (el.dataset.kind === "clip") {
        setProgress(el, job);
      } else {
        updateJob(el, job);
      }
    });
    (job.clipIds || []).forEach(function (clipId) {
      document.querySelectorAll('[data-clip-id="' + CSS.escape(clipId) + '"]').forEach(function (card) {
        updateClip(card, job);
      });
    });
  }

  function listen() {
    var indicator = document.getElementById("live-indicator");
    function state(name, text) {
      if (!indicator) return;
      indicator.dataset.state = name;
      indicator.textContent = text;
    }
    var source = new EventSource("/api/events");
    source.addEventListener("open", function () { state("open", "live"); });
    source.addEventListener("error", function () { state("retrying", "reconnecting…"); });
    source.addEventListener("counts", function (event) {
      try {
        var counts = JSON.parse(event.data);
        updateCounts(counts);
        if (counts.more) refresh();
      } catch (problem) {
        if (window.console) window.console.warn("vidgen: ignored an event", problem);
      }
    });
    ["progress", "completed", "error"].forEach(function (type) {
      source.addEventListener(type, function (event) {
        try {
          apply(JSON.parse(event.data));
        } catch (problem) {
          // A malformed event must not stop the ones after it.
          if (window.console) window.console.warn("vidgen: ignored an event", problem);
        }
      });
    });
  }

  function start() {
    localizeTimes(document);
    document.querySelectorAll("[data-job-id][data-updated-us]").forEach(function (el) {
      var seen = Number(el.dataset.updatedUs) || 0;
      shown.set(el.dataset.jobId, Math.max(shown.get(el.dataset.jobId) || 0, seen));
    });
    if (document.body.dataset.live && window.EventSource) listen();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
