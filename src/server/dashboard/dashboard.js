// sipwake dashboard: polls the admin API (docs/operations.md "Admin API") every 2 s with the
// admin token and shows what it answers. Every text from the API is inserted with textContent:
// User-Agents, Call-IDs and AORs come from the network and may hold markup.
// The token lives in sessionStorage only (gone with the tab); a "#token=...&q=..." fragment
// pre-fills it and the search (fragments are not sent to the server) and is then removed.
"use strict";

(function () {
  const POLL_MS = 2000;
  const HISTORY_POINTS = 90;  // 3 minutes
  const TOKEN_KEY = "sipwake-admin-token";
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  let pollTimer = null;
  const history = [];  // {bindings, push_bindings, parked, pushes}

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  async function api(path) {
    let response;
    try {
      response = await fetch(path, {
        headers: { Authorization: "Bearer " + token() },
        cache: "no-store",
        credentials: "omit",
      });
    } catch (e) {
      throw new ApiError(0, "cannot reach sipwake's admin listener (" + e.message + ")");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const why = body && typeof body.error === "string" ? body.error : response.statusText;
      throw new ApiError(response.status, why);
    }
    return body;
  }

  function showError(e) {
    const el = $("error");
    if (e.status === 401) {
      el.textContent = "The admin token was refused (" + e.message +
        "). Enter the content of [admin] token_file.";
    } else if (e.status === 403) {
      el.textContent = "The admin API is disabled: " + e.message + ".";
    } else {
      el.textContent = "Error: " + e.message;
    }
    el.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  // Drops every figure and table shown (wrong token, forgotten token).
  function clearData() {
    $("data").hidden = true;
    for (const id of ["bindings", "push-bindings", "parked", "connections", "uptime",
      "latency-p50", "latency-p90", "latency-p99", "latency-count", "version", "updated",
      "user-aor", "search-status", "history-max"]) {
      $(id).textContent = "";
    }
    for (const id of ["pushes", "timeline-table", "user-bindings", "user-push-bindings"]) {
      $(id).tBodies[0].replaceChildren();
    }
    $("history").replaceChildren();
    history.length = 0;
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function fillRows(tbody, items, makeCells) {
    const rows = items.map((item) => {
      const tr = document.createElement("tr");
      makeCells(tr, item);
      return tr;
    });
    tbody.replaceChildren(...rows);
  }

  function ms(v) {
    if (v === null || v === undefined) return "–";
    return (v < 10 ? v.toFixed(1) : v.toFixed(0)) + " ms";
  }

  function duration(s) {
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
  }

  function showStatus(s) {
    $("data").hidden = false;
    $("version").textContent = "version " + s.version;
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    $("bindings").textContent = String(s.bindings);
    $("push-bindings").textContent = String(s.push_bindings);
    $("parked").textContent = String(s.parked);
    $("connections").textContent = String(s.connections ? s.connections.total : "");
    $("uptime").textContent = duration(s.uptime_s);
    const providers = Object.keys(s.pushes || {}).sort();
    fillRows($("pushes").tBodies[0], providers, (tr, p) => {
      tr.dataset.provider = p;
      cell(tr, p);
      cell(tr, s.pushes[p].sent);
      cell(tr, s.pushes[p].failed, s.pushes[p].failed > 0 ? "bad" : "");
    });
    const l = s.wake_latency_ms || {};
    $("latency-p50").textContent = ms(l.p50);
    $("latency-p90").textContent = ms(l.p90);
    $("latency-p99").textContent = ms(l.p99);
    $("latency-count").textContent = String(l.count || 0);

    let sent = 0;
    for (const p of providers) sent += s.pushes[p].sent;
    history.push({ bindings: s.bindings, "push-bindings": s.push_bindings, parked: s.parked,
      pushes: sent });
    if (history.length > HISTORY_POINTS) history.shift();
    drawHistory();
  }

  // The history as polylines in an inline SVG, all series on one scale (0 … the largest value).
  function drawHistory() {
    const svg = $("history");
    const width = 640, height = 140, pad = 8;
    const series = ["bindings", "push-bindings", "parked", "pushes"];
    let max = 1;
    for (const h of history) for (const k of series) max = Math.max(max, h[k]);
    const parts = [];
    for (const y of [0, 0.5, 1]) {
      const line = document.createElementNS(SVG_NS, "line");
      const py = height - pad - y * (height - 2 * pad);
      line.setAttribute("x1", "0");
      line.setAttribute("x2", String(width));
      line.setAttribute("y1", py.toFixed(1));
      line.setAttribute("y2", py.toFixed(1));
      line.setAttribute("class", "axis");
      parts.push(line);
    }
    // The newest value at the right edge.
    const step = (width - 2 * pad) / (HISTORY_POINTS - 1);
    const x0 = width - pad - (history.length - 1) * step;
    for (const k of series) {
      const points = history.map((h, i) =>
        (x0 + i * step).toFixed(1) + "," +
        (height - pad - (h[k] / max) * (height - 2 * pad)).toFixed(1));
      const line = document.createElementNS(SVG_NS, "polyline");
      line.setAttribute("points", points.join(" "));
      line.setAttribute("class", k);
      parts.push(line);
    }
    svg.replaceChildren(...parts);
    $("history-max").textContent = "(top of the chart: " + max + ")";
  }

  async function poll() {
    clearTimeout(pollTimer);
    pollTimer = null;
    if (!token()) return;
    try {
      showStatus(await api("/api/status"));
      clearError();
      pollTimer = setTimeout(poll, POLL_MS);
    } catch (e) {
      showError(e);
      if (e.status === 401 || e.status === 403) {
        clearData();  // no polling with a refused token
      } else {
        pollTimer = setTimeout(poll, POLL_MS);
      }
    }
  }

  function looksLikeAor(q) {
    return /^(sips?:)?[^@\s]+@[^@\s]+$/.test(q);
  }

  function answerText(step) {
    if (step.what === "provider answered") {
      return (step.status ? "HTTP " + step.status : "no answer") +
        (step.reason ? " " + step.reason : "");
    }
    return step.status ? String(step.status) : "";
  }

  function showTimelines(timelines) {
    const rows = [];
    for (const t of timelines) {
      t.steps.forEach((step, i) => {
        const tr = document.createElement("tr");
        tr.dataset.callId = t.call_id;
        tr.dataset.what = step.what;
        if (i === 0) tr.className = "first-step";
        cell(tr, i === 0 ? t.call_id : "");
        cell(tr, i === 0 ? new Date(t.start_ms).toISOString().replace("T", " ") : "");
        cell(tr, i === 0 ? t.caller + " → " + t.callee : "");
        cell(tr, i === 0 ? t.outcome + (t.final ? " (" + t.final + ")" : "") : "",
          i === 0 && t.outcome !== "answered" ? "bad" : "");
        cell(tr, "+" + step.ms);
        cell(tr, step.what);
        cell(tr, step.device_key || "");
        cell(tr, step.provider || "");
        cell(tr, answerText(step));
        cell(tr, step.outcome || "", step.outcome && step.outcome !== "ok" ? "bad" : "");
        tr.title = step.text || "";
        rows.push(tr);
      });
    }
    $("timeline-table").tBodies[0].replaceChildren(...rows);
  }

  function showBindings(b) {
    $("user-aor").textContent = b.aor;
    fillRows($("user-bindings").tBodies[0], b.bindings, (tr, x) => {
      for (const v of [x.contact, x.device_key, x.expires_in, x.transport, x.source,
        x.user_agent, x.call_id]) cell(tr, v);
    });
    fillRows($("user-push-bindings").tBodies[0], b.push_bindings, (tr, x) => {
      for (const v of [x.device_key, x.provider, x.app, x.token, x.voip_token, x.expires_in]) {
        cell(tr, v);
      }
    });
  }

  // A Call-ID first (Call-IDs may look like user@host too), else a user's timelines; then the
  // bindings of the user the calls were for.
  async function search(q) {
    q = q.trim();
    if (!q || !token()) return;
    const status = $("search-status");
    status.textContent = "searching " + q + " …";
    try {
      let found = (await api("/api/timelines?limit=20&call_id=" + encodeURIComponent(q)))
        .timelines;
      let aor = found.length ? found[0].callee : null;
      if (!found.length && looksLikeAor(q)) {
        aor = q;
        found = (await api("/api/timelines?limit=20&aor=" + encodeURIComponent(q))).timelines;
      }
      showTimelines(found);
      status.textContent = found.length
        ? found.length + " wake timeline(s) for " + q + ", newest first"
        : "no wake timeline for " + q + " (kept in memory since the last start)";
      if (aor) {
        showBindings(await api("/api/bindings?aor=" + encodeURIComponent(aor)));
      } else {
        showBindings({ aor: "", bindings: [], push_bindings: [] });
      }
    } catch (e) {
      status.textContent = "";
      if (e.status === 400) {
        status.textContent = e.message;
      } else {
        showError(e);
        if (e.status === 401 || e.status === 403) clearData();
      }
    }
  }

  function start() {
    // "#token=…&q=…" (for scripts and tests): taken, then removed from the address bar.
    if (location.hash.length > 1) {
      const params = new URLSearchParams(location.hash.slice(1));
      if (params.get("token")) sessionStorage.setItem(TOKEN_KEY, params.get("token"));
      if (params.get("q")) $("q").value = params.get("q");
      history_replace();
    }
    $("login").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("token").value.trim();
      $("token").value = "";
      if (!t) return;
      sessionStorage.setItem(TOKEN_KEY, t);
      clearError();
      poll();
      search($("q").value);
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      clearTimeout(pollTimer);
      clearData();
      clearError();
    });
    $("search").addEventListener("submit", (ev) => {
      ev.preventDefault();
      search($("q").value);
    });
    if (token()) {
      poll();
      search($("q").value);
    }
  }

  function history_replace() {
    window.history.replaceState(null, "", location.pathname + location.search);
  }

  start();
})();
