// The Stalwart dashboard: polls /api/dashboard and patches the page in place.
// Plain DOM, no dependencies. Text from the server is set with textContent only.

const POLL_MS = 500;
const $ = (id) => document.getElementById(id);

const ui = {
  nodes: new Map(), // path -> {li, row, name, state, level, restarts, host, breaker, children, sig}
  selected: null, // the selected actor's path
  groups: [], // the latest error groups (identical errors, with their latest incident)
  timelineSig: "",
  detail: null, // the incident shown in the details panel
  detailKey: null, // the group it belongs to
  errorGroup: null,
  token: "",
};

// what tests and benchmarks read
const stats = {
  renders: 0, firstRenderMs: null, lastRenderMs: null, nodes: 0, lastPollAt: 0,
  changedAt: {}, // path -> when (ms since the epoch) its row last changed on the page
};
window.stalwart = stats;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function clock(t) {
  const d = new Date(t * 1000);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function ms(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const v = seconds * 1000;
  return v < 10 ? `${v.toFixed(1)} ms` : v < 10000 ? `${v.toFixed(0)} ms` : `${(v / 1000).toFixed(1)} s`;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// -- the token -------------------------------------------------------------------------------
function setUpToken() {
  const input = $("token");
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("stalwart-token", fromHash);
    history.replaceState(null, "", location.pathname + location.search); // not left in the bar
  }
  ui.token = sessionStorage.getItem("stalwart-token") || "";
  input.value = ui.token;
  input.addEventListener("input", () => {
    ui.token = input.value.trim();
    sessionStorage.setItem("stalwart-token", ui.token);
  });
}

async function post(url, body) {
  const headers = { "Content-Type": "application/json" };
  if (ui.token) headers.Authorization = `Bearer ${ui.token}`;
  const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
  let payload = null;
  try { payload = await response.json(); } catch { payload = null; }
  return { status: response.status, payload };
}

function showResult(kind, text) {
  const out = $("action-result");
  out.className = `result ${kind}`;
  out.textContent = text;
}

function refusedText(status, payload) {
  if (status === 401) return "refused: this action needs the API token";
  return `refused (${status}): ${payload && payload.error ? payload.error : "no detail"}`;
}

// -- the tree ----------------------------------------------------------------------------------
function parentOf(path) {
  const i = path.lastIndexOf("/");
  return i < 0 ? null : path.slice(0, i);
}

function makeNode(n) {
  const li = el("li", n.kind === "supervisor" ? "supervisor" : n.kind === "breaker" ? "breaker-node" : "actor");
  li.dataset.path = n.path;
  const row = el("div", "node");
  const item = {
    li,
    row,
    name: el("span", "name", n.path.slice(n.path.lastIndexOf("/") + 1)),
    state: el("span", "badge state"),
    level: el("span", "badge level"),
    restarts: el("span", "badge restarts"),
    host: el("span", "badge host"),
    breaker: el("span", "badge breaker"),
    children: null,
    sig: "",
  };
  row.append(item.name, item.state, item.level, item.restarts, item.breaker, item.host);
  row.title = n.path;
  row.addEventListener("click", () => select(n.path));
  li.append(row);
  return item;
}

function updateNode(item, n) {
  const health = n.breaker_health ?? null;
  const sig = `${n.state}|${n.level}|${n.restarts}|${n.breaker}|${health}|${n.node}|${n.pid}|${n.last_error}`;
  if (sig === item.sig) return false;
  item.sig = sig;
  item.state.textContent = n.state;
  item.state.className = `badge state ${n.state}`;
  item.level.textContent = n.level ? `level ${n.level}` : "";
  item.level.dataset.level = String(n.level || 0);
  item.restarts.textContent = n.restarts ? `↻ ${n.restarts}` : "";
  item.restarts.title = "restarts";
  item.breaker.textContent = n.breaker
    ? `breaker ${n.breaker.replace("_", "-")}` + (health === null ? "" : ` · ${health}`)
    : "";
  item.breaker.title = health === null ? "" : "breaker health score, 0-100";
  item.breaker.className = `badge breaker ${n.breaker || ""}`;
  item.host.textContent = (n.node || "local") + (n.pid ? ` · pid ${n.pid}` : "");
  item.row.title = n.last_error ? `${n.path}\nlast error: ${n.last_error}` : n.path;
  return true;
}

function renderTree(nodes) {
  const root = $("tree");
  const seen = new Set();
  let changed = 0;
  for (const n of nodes) {
    seen.add(n.path);
    let item = ui.nodes.get(n.path);
    if (!item) {
      item = makeNode(n);
      ui.nodes.set(n.path, item);
      const parent = ui.nodes.get(parentOf(n.path));
      if (parent) {
        if (!parent.children) {
          parent.children = el("ul");
          parent.li.append(parent.children);
        }
        parent.children.append(item.li);
      } else {
        // (a row shown without the supervisor above it, on a tree too large to show whole)
        if (n.path.includes("/")) item.name.textContent = n.path;
        root.append(item.li);
      }
    }
    if (updateNode(item, n)) {
      changed += 1;
      stats.changedAt[n.path] = Date.now();
    }
  }
  for (const [path, item] of ui.nodes) {
    if (!seen.has(path)) {
      item.li.remove();
      ui.nodes.delete(path);
    }
  }
  $("tree-empty").hidden = nodes.length > 0;
  stats.nodes = ui.nodes.size;
  return changed;
}

// a tree too large to show whole: how many there are by state, and what is shown of them
function renderCounts(a) {
  const line = $("tree-counts");
  line.hidden = !a || a.total <= a.shown;
  if (line.hidden) return;
  const counts = Object.entries(a.counts)
    .sort((x, y) => y[1] - x[1])
    .map(([state, n]) => `${state} ${n.toLocaleString()}`)
    .join(" · ");
  line.textContent =
    `${a.total.toLocaleString()} in the tree (${counts}). Shown: ${a.shown.toLocaleString()}, ` +
    `the first ones, then those that need a look (${a.unhealthy.toLocaleString()} in all: ` +
    "not running, recovering, or behind a breaker that is not closed).";
}

function select(path) {
  if (ui.selected) ui.nodes.get(ui.selected)?.row.classList.remove("selected");
  ui.selected = path;
  ui.nodes.get(path)?.row.classList.add("selected");
  $("selected").textContent = path;
  $("recover").disabled = false;
  $("reset-scope").textContent = `(${path} and below)`;
}

// -- headline and memory -------------------------------------------------------------------------
function pct(rate) {
  return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`;
}

function renderHeadline(h, ready, off) {
  $("h-success").textContent = pct(h.incident_success_rate);
  $("h-attempts").textContent = off
    ? "telemetry off (started with store=None): no figures kept"
    : ready
    ? `${h.incidents_recovered} of ${h.incidents} incidents · ${h.incidents_open} open · ` +
      `${h.attempts} attempts (${pct(h.attempt_success_rate)} worked)`
    : "reading…";
  $("h-times").textContent = `${ms(h.mttr_p50_s)} / ${ms(h.mttr_p95_s)}`;
  $("h-restarts").textContent = off ? "–" : `${h.restarts} restarts · ${h.errors} errors`;
  $("h-breakers").textContent = String(h.open_breakers.length);
  $("h-breakers").classList.toggle("bad", h.open_breakers.length > 0);
  $("h-breaker-list").textContent = h.open_breakers.join(", ");
  $("h-alerts").textContent = String(h.alerts.length);
  $("h-alerts").classList.toggle("bad", h.alerts.length > 0);
  $("h-alert-list").textContent = h.alerts.map((a) => `${a.severity}: ${a.message || a.rule}`).join("; ");
}

let ticksFor = "";
function renderMemory(m, ready) {
  const gauge = $("gauge");
  const fill = $("mem-fill");
  if (!m) {
    $("mem-text").textContent = ready ? "memory service off" : "reading…";
    fill.style.width = "0";
    return;
  }
  const key = m.thresholds.join(",");
  if (key !== ticksFor) {
    ticksFor = key;
    gauge.querySelectorAll(".tick").forEach((t) => t.remove());
    for (const t of m.thresholds) {
      const tick = el("div", "tick");
      tick.style.left = `${t}%`;
      tick.append(el("span", "", `${t}`));
      gauge.append(tick);
    }
  }
  if (m.percent === null) {
    fill.style.width = "0";
    $("mem-text").textContent = "no live sample (store only)";
  } else {
    fill.style.width = `${Math.min(100, m.percent)}%`;
    fill.className = `fill ${m.level}`;
    const psi = m.pressure
      ? `PSI some ${m.pressure.some_avg10.toFixed(1)}% full ${m.pressure.full_avg10.toFixed(1)}% (10 s)`
      : "PSI not available";
    $("mem-text").textContent =
      `${m.percent.toFixed(1)}% of ${bytes(m.limit)} (${m.limit_from || m.source}) · level ${m.level}` +
      ` · ${psi}` + (m.shedding ? " · shedding load" : "");
  }
  const list = $("cleanups");
  list.replaceChildren(
    ...(m.cleanups.length
      ? m.cleanups.slice(0, 10).map((c) =>
          el("li", "", `${clock(c.time)}  ${c.tier} (${c.trigger}): freed ${bytes(c.freed_bytes)}`))
      : [el("li", "empty", "none yet")]),
  );
}

// -- the timeline: identical errors grouped ------------------------------------------------------
function outcomeClass(outcome) {
  return outcome.replace(/[^a-z]+/g, "-");
}

function answeredBy(e) {
  return e.level ? `level ${e.level}${e.strategy ? ` · ${e.strategy}` : ""}` : "";
}

function took(e) {
  return e.duration_ms === null ? "" : ms(e.duration_ms / 1000);
}

function groupLine(g) {
  const e = g.latest;
  const li = el("li");
  li.dataset.key = g.key;
  li.dataset.path = g.path;
  li.dataset.count = String(g.count);
  if (ui.detailKey === g.key) li.classList.add("selected");
  const error = el("span", "error", e.error);
  error.title = e.error;
  const last = el("span");
  last.append(error);
  const seen = g.count > 1
    ? `×${g.count} · first ${clock(g.first_seen)} · last ${clock(g.last_seen)}`
    : `seen ${clock(g.last_seen)}`;
  last.append(el("div", "seen", seen));
  if (e.root_cause) last.append(el("div", "cause", `root cause: ${e.root_cause}`));
  li.append(
    el("span", "when", clock(g.last_seen)),
    el("span", "path", g.path),
    el("span", `outcome ${outcomeClass(e.outcome)}`, e.outcome),
    el("span", "answered", answeredBy(e)),
    el("span", "took", took(e)),
    last,
  );
  li.addEventListener("click", () => showDetails(g.key));
  return li;
}

function renderTimeline(groups) {
  const sig = groups
    .map((g) => `${g.key}:${g.count}:${g.latest.id}:${g.latest.outcome}:${g.latest.level}:` +
      `${g.latest.steps.length}:${g.latest.root_cause}:${g.last_seen}`)
    .join(",");
  ui.groups = groups;
  if (sig === ui.timelineSig) return;
  ui.timelineSig = sig;
  $("timeline-empty").hidden = groups.length > 0;
  $("timeline").replaceChildren(...groups.map(groupLine));
  if (ui.detailKey) {
    const fresh = groups.find((g) => g.key === ui.detailKey);
    if (fresh && (fresh.latest.id !== ui.detail.id || fresh.latest.steps.length !== ui.detail.steps.length ||
        fresh.latest.outcome !== ui.detail.outcome)) showDetails(fresh.key);
  }
}

function dlRow(dl, term, value) {
  if (value === "" || value === null || value === undefined) return;
  dl.append(el("dt", "", term), el("dd", "", value));
}

function tableRows(tbody, rows) {
  tbody.replaceChildren(
    ...rows.map((cells) => {
      const tr = el("tr");
      tr.append(...cells.map((c) => el("td", "", c)));
      return tr;
    }),
  );
}

async function showDetails(key) {
  const g = ui.groups.find((x) => x.key === key);
  if (!g) return;
  const e = g.latest;
  ui.detail = e;
  ui.detailKey = key;
  document.querySelectorAll("#timeline li").forEach((li) => li.classList.toggle("selected", li.dataset.key === key));
  $("details-panel").hidden = false;
  $("details-title").textContent = `${e.path} at ${clock(e.started)}`;
  const dl = $("details");
  dl.replaceChildren();
  dlRow(dl, "Error", e.error);
  dlRow(dl, "Kind", e.kind);
  dlRow(dl, "Category", e.category);
  dlRow(dl, "Fingerprint", e.fingerprint);
  dlRow(dl, "Trace", e.trace);
  dlRow(dl, "Outcome", e.outcome);
  dlRow(dl, "Answered by", e.level ? `level ${e.level} (${e.strategy || "–"})` : "");
  dlRow(dl, "Took", took(e));
  dlRow(dl, "Errors in it", e.failures ? String(e.failures) : "");
  dlRow(dl, "Root cause", e.root_cause ? `${e.root_cause} (incident #${e.incident})` : "");
  dlRow(dl, "Messages set aside", e.set_aside ? String(e.set_aside) : "");
  dlRow(dl, "Seen", g.count > 1
    ? `${g.count} times, first at ${clock(g.first_seen)}, last at ${clock(g.last_seen)}`
    : "");
  tableRows($("steps"), e.steps.map((s) => [clock(s.time), s.kind, s.level || "", s.strategy, s.detail]));
  tableRows($("group-incidents"), g.incidents.map((i) => [clock(i.started), i.outcome, answeredBy(i), took(i)]));
  $("group-incidents-panel").hidden = g.count < 2;
  await loadRecorded(e);
}

async function loadRecorded(e) {
  const query = new URLSearchParams({ path: e.path, since: String(e.started - 1), limit: "50" });
  try {
    const [attempts, groups] = await Promise.all([
      fetch(`/api/recovery/history?${query}`).then((r) => (r.ok ? r.json() : [])),
      fetch(`/api/errors?${new URLSearchParams({ path: e.path })}`).then((r) => (r.ok ? r.json() : [])),
    ]);
    if (!ui.detail || ui.detail.id !== e.id) return;
    tableRows(
      $("attempts"),
      attempts
        .filter((a) => !e.fingerprint || !a.fingerprint || a.fingerprint === e.fingerprint)
        .map((a) => [clock(a.time), a.level ?? "", a.strategy ?? "", a.success ? "yes" : "no", ms(a.duration_s)]),
    );
    ui.errorGroup = groups.find((g) => g.fingerprint === e.fingerprint) || null;
    const g = ui.errorGroup;
    $("error-group").textContent = g
      ? `error #${g.id}: ${g.message || g.error_type || ""} · seen ${g.count}× · ${g.status}`
      : "not in the store yet";
    $("resolve").disabled = !g || g.status === "resolved";
  } catch (err) {
    $("error-group").textContent = `could not read the store: ${err.message}`;
  }
}

// -- actions ----------------------------------------------------------------------------------------
async function requestRecovery() {
  if (!ui.selected) return;
  const level = Number($("level").value);
  if (level === 5 && !window.confirm("Level 5 acts on the whole system. Go on?")) return;
  showResult("", `asking for level ${level} on ${ui.selected}…`);
  const { status, payload } = await post("/api/recovery/request", {
    path: ui.selected, level, reason: "requested from the dashboard", by: "dashboard",
  });
  if (status !== 200) return showResult("refused", refusedText(status, payload));
  const took = payload.duration_ms ? ` in ${ms(payload.duration_ms / 1000)}` : "";
  showResult(payload.ok ? "done" : "failed",
    `level ${payload.level} on ${payload.target}: ${payload.ok ? "done" : "failed"}${took}` +
      (payload.detail ? ` (${payload.detail})` : ""));
}

async function resetLevels() {
  const { status, payload } = await post("/api/recovery/reset", { path: ui.selected });
  if (status !== 200) return showResult("refused", refusedText(status, payload));
  showResult("done", `levels reset for ${payload.reset} (${payload.supervisors} supervisor(s))`);
}

async function resolveError() {
  const g = ui.errorGroup;
  if (!g) return;
  const { status, payload } = await post(`/api/errors/${g.id}/resolve`, { by: "dashboard" });
  if (status !== 200) return showResult("refused", refusedText(status, payload));
  showResult("done", `error #${g.id} resolved`);
  if (ui.detail) await loadRecorded(ui.detail);
}

// -- polling ------------------------------------------------------------------------------------------
function showPhase(text, kind) {
  const pill = $("phase");
  pill.textContent = text;
  pill.className = `pill ${kind}`;
  document.body.dataset.phase = kind;
}

function render(snap) {
  const t0 = performance.now();
  $("tree-name").textContent = snap.name || "Stalwart";
  showPhase(snap.phase, snap.live ? "live" : snap.phase === "stopped" ? "stopped" : "recorded");
  document.title = `${snap.name} · Stalwart`;
  renderTree(snap.tree);
  renderCounts(snap.actors);
  const ready = snap.figures !== "reading";
  renderHeadline(snap.headline, ready, snap.figures === "off");
  renderMemory(snap.memory, ready);
  renderTimeline(snap.groups);
  const took = performance.now() - t0;
  stats.renders += 1;
  stats.lastRenderMs = took;
  if (stats.firstRenderMs === null) {
    stats.firstRenderMs = took;
    document.body.dataset.ready = "1";
  }
}

async function poll() {
  const conn = $("connection");
  try {
    const response = await fetch("/api/dashboard", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const snap = await response.json();
    render(snap);
    stats.lastPollAt = Date.now();
    const now = new Date().toLocaleTimeString([], { hour12: false });
    conn.textContent = snap.live ? `live · ${now}` : snap.phase === "stopped"
      ? `the system has stopped · read ${now}` : `store file, as last recorded · read ${now}`;
    conn.classList.remove("down");
  } catch (err) {
    // what the page shows may be stale now: say so rather than keep a "running" badge
    showPhase("disconnected", "down");
    conn.textContent = `disconnected (${err.message}); retrying`;
    conn.classList.add("down");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

setUpToken();
$("recover").addEventListener("click", requestRecovery);
$("reset").addEventListener("click", resetLevels);
$("resolve").addEventListener("click", resolveError);
$("details-close").addEventListener("click", () => {
  ui.detail = null;
  ui.detailKey = null;
  $("details-panel").hidden = true;
});
poll();
