// AI Factory Twin console: one EventSource (/api/events) for the live picture, /api/layout for the floor
// plan, /api/history for the charts. No framework, no build step, nothing loaded from elsewhere.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const S = {
    power: new Map(), cooling: new Map(), jobs: new Map(), events: [], mode: "power",
    rackEls: new Map(), nameplate: new Map(), updates: 0, dirty: new Set(), layout: null,
    scenario: null, demo: false, token: "",
  };
  const MAX_EVENTS = 100, MAX_ROWS = 14, SCOPES = ["feed", "transformer", "ups", "ups_group", "pdu"];

  // -- formatting -------------------------------------------------------------------------------------
  const fmtW = (w) => w == null ? "–" : Math.abs(w) >= 1e6 ? (w / 1e6).toFixed(2) + " MW"
    : Math.abs(w) >= 1e3 ? (w / 1e3).toFixed(1) + " kW" : w.toFixed(0) + " W";
  const fmtS = (s) => s == null ? "–" : s === Infinity ? "none" : s < 10 ? s.toFixed(2) + " s" : s < 60 ? s.toFixed(0) + " s"
    : s < 3600 ? (s / 60).toFixed(1) + " min" : (s / 3600).toFixed(1) + " h";
  const fmtC = (c) => c == null ? "–" : c.toFixed(1) + " °C";
  const pct = (x) => x == null ? "–" : (100 * x).toFixed(1) + " %";
  const time = (t) => new Date(t * 1000).toLocaleTimeString([], {hour12: false});
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k instanceof Node ? k : String(k));
    return e;
  }

  // -- colour scales ----------------------------------------------------------------------------------
  const RAMP = [[44, 123, 182], [0, 166, 202], [0, 204, 188], [144, 235, 157], [255, 255, 140],
    [249, 208, 87], [242, 158, 46], [231, 104, 24], [215, 25, 28]];
  function ramp(x) {
    x = Math.min(1, Math.max(0, x));
    const f = x * (RAMP.length - 1), i = Math.min(RAMP.length - 2, Math.floor(f)), t = f - i;
    const c = RAMP[i].map((a, k) => Math.round(a + (RAMP[i + 1][k] - a) * t));
    return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
  }
  const rackCooling = (id) => { const c = S.cooling.get(id); return c && c.scope === "rack" ? c : null; };
  const MODES = {
    power: {
      value: (id) => { const p = S.power.get(id); return p && p.scope === "rack" ? p.in_w : null; },
      frac: (v, id) => v / (S.nameplate.get(id) || 40e3), fmt: fmtW, legend: ["0 W", "rack nameplate"],
    },
    temp: {
      value: (id) => rackCooling(id)?.gpu_c ?? null, frac: (v) => (v - 30) / 60, fmt: fmtC, legend: ["30 °C", "90 °C"],
    },
    ttt: {
      value: (id) => { const c = rackCooling(id); return c ? (c.ttt_s ?? Infinity) : null; },
      frac: (v) => v === Infinity ? 0 : 1 - (Math.log10(Math.max(v, 30)) - Math.log10(30)) / (Math.log10(3600) - Math.log10(30)),
      fmt: fmtS, legend: ["none / ≥ 1 h", "≤ 30 s"],
    },
  };

  // -- floor plan -------------------------------------------------------------------------------------
  function buildFloor(layout) {
    S.layout = layout;
    $("site").textContent = layout.site_id;
    const floor = $("floor");
    floor.replaceChildren();
    floor.classList.toggle("dense", layout.n_racks > 400);
    floor.classList.toggle("large", layout.n_racks <= 64);
    for (const hall of layout.halls) {
      const hallEl = h("div", {class: "hall", "data-hall": hall.id}, h("div", {class: "name"}, hall.id));
      for (const row of hall.rows) {
        const racks = h("div", {class: "racks"});
        const np = layout.rack_types[row.rack_type]?.nameplate_w;
        for (const id of row.racks) {
          const e = h("div", {class: "rack nodata", "data-rack": id});
          S.rackEls.set(id, e);
          if (np) S.nameplate.set(id, np);
          racks.append(e);
        }
        hallEl.append(h("div", {class: "row", "data-row": row.id}, h("div", {class: "name"}, row.id), racks));
      }
      floor.append(hallEl);
    }
    floor.addEventListener("mouseover", (ev) => { const id = ev.target.dataset?.rack; if (id) showRack(id); });
    $("floor-note").textContent = `${layout.n_racks} racks in ${layout.halls.length} hall(s)`;
  }
  function paintRack(id) {
    const e = S.rackEls.get(id);
    if (!e) return;
    const p = S.power.get(id), c = rackCooling(id), m = MODES[S.mode], v = m.value(id);
    if (p) e.dataset.powerW = p.in_w ?? "";
    if (c) { e.dataset.tempC = c.gpu_c ?? ""; e.dataset.tttS = c.ttt_s ?? ""; }
    if (v == null) {
      e.classList.add("nodata"); e.style.backgroundColor = ""; e.dataset.value = "";
    } else {
      e.classList.remove("nodata"); e.style.backgroundColor = ramp(m.frac(v, id)); e.dataset.value = String(v);
    }
  }
  function showRack(id) {
    const p = S.power.get(id), c = rackCooling(id);
    const parts = [id];
    if (p) parts.push(`power ${fmtW(p.in_w)} (GPUs ${fmtW(p.gpu_w)}, ${p.source})`);
    if (c) parts.push(`hottest GPU ${fmtC(c.gpu_c)}, coolant ${fmtC(c.coolant_c)}, `
      + (c.ttt_s == null ? "no throttling predicted" : `throttles in ${fmtS(c.ttt_s)}`));
    const jobs = [...S.jobs.values()].filter((j) => j.status === "running" && j.racks.includes(id)).map((j) => j.id);
    if (jobs.length) parts.push("jobs " + jobs.join(", "));
    if (!p && !c) parts.push("no state yet");
    $("rack-detail").textContent = parts.join(" · ");
  }
  function setMode(mode) {
    S.mode = mode;
    const m = MODES[mode];
    $("legend").replaceChildren(m.legend[0], h("span", {class: "bar",
      style: `background: linear-gradient(90deg, ${[0, .25, .5, .75, 1].map(ramp).join(", ")})`}), m.legend[1]);
    for (const id of S.rackEls.keys()) paintRack(id);
  }

  // -- panels -----------------------------------------------------------------------------------------
  function useBar(u) {
    const x = u == null ? 0 : Math.min(1, Math.max(0, u));
    return h("span", {class: "use", title: pct(u)}, h("i", {style: `width: ${(100 * x).toFixed(0)}%; background: ${ramp(x)}`}));
  }
  function renderKpis() {
    const site = [...S.power.values()].find((p) => p.scope === "site");
    const plant = [...S.cooling.values()].find((c) => c.scope === "plant");
    const running = [...S.jobs.values()].filter((j) => j.status === "running");
    const rows = [];
    if (site) {
      rows.push(["facility power", fmtW(site.facility_w ?? site.in_w)], ["IT power", fmtW(site.it_w ?? site.out_w)],
        ["PUE", site.pue == null ? "–" : site.pue.toFixed(3)], ["feed capacity", fmtW(site.rating_w)],
        ["headroom", fmtW(site.headroom_w)], ["cooling power", fmtW(site.cooling_w)],
        ["state time", time(site.t)]);
    } else rows.push(["site", "no power.state.v1 for the site yet"]);
    if (plant) rows.push(["plant heat / capacity", `${fmtW(plant.heat_w)} / ${fmtW(plant.capacity_w)}`],
      ["facility supply", `${fmtC(plant.supply_c)} (set ${fmtC(plant.setpoint_c)})`]);
    rows.push(["jobs running", `${running.length} (${running.reduce((a, j) => a + (j.gpus || 0), 0)} GPUs)`]);
    $("kpis").replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }
  function renderChain() {
    const comps = [...S.power.values()].filter((p) => SCOPES.includes(p.scope));
    comps.sort((a, b) => SCOPES.indexOf(a.scope) - SCOPES.indexOf(b.scope) || (b.util ?? 0) - (a.util ?? 0) || (a.id < b.id ? -1 : 1));
    const shown = [], hidden = {};
    for (const scope of SCOPES) {
      const of = comps.filter((c) => c.scope === scope);
      const cap = scope === "pdu" ? MAX_ROWS : 50;
      shown.push(...of.slice(0, cap));
      if (of.length > cap) hidden[scope] = of.length - cap;
    }
    $("chain").tBodies[0].replaceChildren(...shown.map((c) => h("tr", {"data-entity": c.id, class: c.powered ? "" : "bad"},
      h("td", {}, c.id, " ", h("span", {class: "scope"}, c.scope.replace("_", " "))), h("td", {}, fmtW(c.out_w)),
      h("td", {}, fmtW(c.rating_w)), h("td", {}, fmtW(c.headroom_w)), h("td", {}, useBar(c.util)))));
    const more = Object.entries(hidden).map(([s, n]) => `${n} more ${s.replace("_", " ")}s (least headroom first)`);
    $("chain-note").textContent = comps.length ? more.join("; ") : "No power.state.v1 for the chain yet.";
  }
  function renderCooling() {
    const all = [...S.cooling.values()];
    if (!all.length) { $("cooling").replaceChildren(h("p", {class: "muted"}, "No cooling.state.v1 yet.")); return; }
    const byId = (a, b) => (a.id < b.id ? -1 : 1);
    const plant = all.find((c) => c.scope === "plant");
    const groups = all.filter((c) => c.scope === "loop" || c.scope === "air_group").sort(byId);
    const units = all.filter((c) => c.scope === "cdu" || c.scope === "crah").sort((a, b) => (b.load ?? 0) - (a.load ?? 0));
    const table = (head, rows) => h("table", {}, h("thead", {}, h("tr", {}, ...head.map((t) => h("th", {}, t)))), h("tbody", {}, ...rows));
    const yes = (ok, no) => h("td", {class: ok ? "ok" : "bad"}, ok ? "yes" : no);
    const out = [];
    if (plant) out.push(h("p", {}, `Plant: ${fmtW(plant.heat_w)} of ${fmtW(plant.capacity_w)}, ${fmtW(plant.plant_w)} to run, `
      + `supply ${fmtC(plant.supply_c)}, outdoor ${fmtC(plant.dry_bulb_c)}, cooling PUE ${plant.pue_cooling?.toFixed(3) ?? "–"}`));
    if (groups.length) out.push(table(["loop / air group", "redundancy", "heat", "capacity", "N-1", "carries", "one more"],
      groups.slice(0, MAX_ROWS).map((g) => h("tr", {"data-entity": g.id}, h("td", {}, g.id), h("td", {}, {n: "N", n_plus_1: "N+1"}[g.redundancy] ?? g.redundancy),
        h("td", {}, fmtW(g.heat_w)), h("td", {}, fmtW(g.capacity_w)), h("td", {}, fmtW(g.capacity_n1_w)),
        yes(g.carries, "NO"), yes(g.survives_one_more, "no")))));
    if (units.length) out.push(table(["CDU / CRAH", "up", "heat", "load", "supply", "return", "pump / fan"],
      units.slice(0, MAX_ROWS).map((c) => h("tr", {"data-entity": c.id}, h("td", {}, c.id, " ", h("span", {class: "scope"}, c.scope)),
        h("td", {class: c.up ? "ok" : "bad"}, c.up ? "up" : "DOWN"), h("td", {}, fmtW(c.heat_w)), h("td", {}, useBar(c.load)),
        h("td", {}, fmtC(c.supply_c)), h("td", {}, fmtC(c.return_c)), h("td", {}, fmtW(c.pump_w ?? c.fan_w))))));
    const racks = all.filter((c) => c.scope === "rack");
    const risky = racks.filter((c) => c.ttt_s != null);
    out.push(h("p", {class: risky.length ? "sev-critical" : "muted"}, `${racks.length} racks: `
      + (risky.length ? `${risky.length} predicted to throttle, first in ${fmtS(Math.min(...risky.map((c) => c.ttt_s)))}`
        : "none predicted to throttle")));
    $("cooling").replaceChildren(...out);
  }
  function renderJobs() {
    const jobs = [...S.jobs.values()].sort((a, b) => (a.status === "running" ? 0 : 1) - (b.status === "running" ? 0 : 1) || (a.id < b.id ? -1 : 1));
    $("jobs").tBodies[0].replaceChildren(...jobs.slice(0, 50).map((j) => h("tr", {"data-job": j.id},
      h("td", {}, j.id), h("td", {}, j.status), h("td", {}, j.gpus), h("td", {title: j.racks.join(" ")}, j.racks.length),
      h("td", {}, fmtS(j.step_s)), h("td", j.own ? {title: "communication from the job twin's own estimate: " + j.own} : {}, fmtS(j.pred_step_s),
        j.own ? h("sup", {class: "own sev-warning"}, "*") : null), h("td", {}, pct(j.mfu)), h("td", {}, pct(j.goodput)),
      h("td", {}, fmtW(j.power_w)), h("td", {class: j.risks.length ? "sev-warning" : ""},
        j.risks.map((r) => `${r.kind.replace(/_/g, " ")} ${r.entity} +${pct(r.slowdown)}`).join("; ") || "–"))));
    $("jobs-note").textContent = jobs.length ? (jobs.length > 50 ? `${jobs.length - 50} more` : "") : "No jobs.state.v1 yet.";
  }
  function renderEvents() {
    const items = S.events.slice(-MAX_EVENTS).reverse();
    $("events").replaceChildren(...items.map((e) => h("li", {class: "sev-" + (e.cleared ? "cleared" : e.severity || "info"),
      "data-event": e.type}, h("span", {class: "time"}, time(e.t)),
      h("span", {class: "tag"}, `${e.src} ${e.cleared ? "cleared" : e.type}`),
      h("span", {}, `${e.entity || e.job || ""}: ${e.cleared ? "no longer: " : ""}${e.message || e.kind || ""}`))));
    $("events-note").textContent = items.length ? "" : "None yet.";
  }
  function highlightJob(ev, on) {
    const row = ev.target.closest?.("tr[data-job]");
    const job = row && S.jobs.get(row.dataset.job);
    if (!job) return;
    for (const id of job.racks) S.rackEls.get(id)?.classList.toggle("hl", on);
  }
  // only the panels whose data changed are drawn again (a row under the mouse stays put otherwise)
  function renderPanels() {
    const d = S.dirty;
    S.dirty = new Set();
    if (d.has("power") || d.has("cooling") || d.has("jobs")) renderKpis();
    if (d.has("power")) renderChain();
    if (d.has("cooling")) renderCooling();
    if (d.has("jobs")) renderJobs();
    if (d.has("events")) renderEvents();
  }
  function markDirty(...what) {
    if (!S.dirty.size) requestAnimationFrame(renderPanels);
    for (const w of what) S.dirty.add(w);
  }

  // -- live state -------------------------------------------------------------------------------------
  function apply(msg, live) {
    const touched = new Set();
    let newest = 0;
    for (const [section, states] of Object.entries(msg.sections || {})) {
      const map = S[section];
      if (!map) continue;
      for (const s of states) {
        map.set(s.id, s);
        if (section !== "jobs") touched.add(s.id);
        if (s.t > newest) newest = s.t;
      }
      if (states.length) markDirty(section);
    }
    if (msg.scenario !== undefined) { S.scenario = msg.scenario; renderScenario(); }
    if (msg.events?.length) { S.events.push(...msg.events); S.events = S.events.slice(-MAX_EVENTS); markDirty("events"); }
    for (const id of touched) paintRack(id);
    S.updates += 1;
    document.body.dataset.updates = String(S.updates);
    let note = "updated " + new Date().toLocaleTimeString([], {hour12: false});
    if (live && newest) {  // how far the page is behind the newest state it just drew
      const lag = Math.max(0, Date.now() / 1000 - newest);
      document.body.dataset.lagS = lag.toFixed(3);
      note += ` · ${lag.toFixed(1)} s behind`;
    }
    $("updated").textContent = note;
  }
  function connect() {
    const es = new EventSource("/api/events");
    const conn = $("conn");
    es.addEventListener("snapshot", (ev) => {
      S.power.clear(); S.cooling.clear(); S.jobs.clear(); S.events = [];
      apply(JSON.parse(ev.data));
      markDirty("power", "cooling", "jobs", "events");
      for (const id of S.rackEls.keys()) paintRack(id);
      conn.textContent = "live"; conn.className = "conn on";
      document.body.dataset.live = "1";
    });
    es.addEventListener("update", (ev) => apply(JSON.parse(ev.data), true));
    es.onerror = () => { conn.textContent = "reconnecting…"; conn.className = "conn off"; };
  }

  // -- scenario buttons (demo mode) ------------------------------------------------------------------
  // The operator token is typed into the page or given as /#token=...: a URL fragment never reaches the
  // server; it is read once, dropped from the address bar, and kept in this tab's memory only.
  function takeTokenFromFragment() {
    const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
    if (!m) return;
    S.token = decodeURIComponent(m[1]);
    $("token").value = S.token;
    history.replaceState(null, "", location.pathname + location.search);
  }
  function renderScenario() {
    const sc = S.scenario, busy = sc?.status === "running";
    for (const b of $("scenario-buttons").querySelectorAll("button")) b.disabled = busy;
    document.body.dataset.scenarioStatus = sc ? sc.status : "";
    if (!sc) return;
    const what = sc.action === "restore" ? `restore ${sc.name}` : sc.name;
    const st = $("scenario-status");
    st.textContent = `${what}: ${sc.status}` + (sc.error ? ` (${sc.error})` : "") + ` · started ${sc.started_at}`
      + (sc.duration_s != null ? ` · ${sc.duration_s.toFixed(1)} s` : "");
    st.className = sc.status === "failed" ? "sev-critical" : sc.status === "ok" ? "ok" : "muted";
    st.dataset.scenario = sc.name; st.dataset.action = sc.action; st.dataset.status = sc.status;
    $("scenario-steps").replaceChildren(...sc.steps.map((x) => h("li", {class: x.ok ? "" : "sev-critical", "data-step": x.name},
      h("span", {class: "time"}, `${x.at.slice(11, 23)} +${x.elapsed_s.toFixed(2)} s`),
      h("b", {}, (x.ok ? "" : "!! ") + x.name), " ", x.summary)));
  }
  async function startScenario(name, action) {
    const st = $("scenario-status");
    S.token = $("token").value.trim();
    if (!S.token) { st.textContent = "type the operator token first (the stack prints it)"; st.className = "sev-warning"; return; }
    try {
      const r = await fetch(`/api/scenarios/${encodeURIComponent(name)}` + (action === "restore" ? "/restore" : ""),
        {method: "POST", headers: {"Authorization": "Bearer " + S.token}});
      if (r.status !== 202) {
        const body = await r.json().catch(() => ({}));
        st.textContent = `${name}: refused (${r.status}) ${body.error || ""}`; st.className = "sev-critical";
        st.dataset.refused = String(r.status);
      }
    } catch (err) { st.textContent = `${name}: ${err}`; st.className = "sev-critical"; }
  }
  async function loadScenarios() {
    const r = await fetch("/api/scenarios");
    if (!r.ok) return;
    const info = await r.json();
    S.demo = info.demo;
    if (!info.demo) return;
    $("scenarios").hidden = false;
    takeTokenFromFragment();
    $("scenario-auth").addEventListener("submit", (ev) => ev.preventDefault());
    $("scenario-buttons").replaceChildren(...info.scenarios.map((x) => {
      const run = h("button", {type: "button", "data-scenario": x.name, title: x.description}, x.name);
      const undo = h("button", {type: "button", "data-restore": x.name, title: "undo what " + x.name + " left in place"}, "restore");
      run.addEventListener("click", () => startScenario(x.name, "run"));
      undo.addEventListener("click", () => startScenario(x.name, "restore"));
      return h("span", {class: "sc"}, run, undo);
    }));
    if (S.scenario === null && info.current) S.scenario = info.current;
    renderScenario();
    document.body.dataset.demo = "1";
  }

  // -- charts -----------------------------------------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    return e;
  }
  function drawChart(svg, data, series, fmt) {
    const W = 480, H = 136, L = 58, R = 8, T = 18, B = 18;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.replaceChildren();
    const pts = data.points.filter((p) => series.some((sr) => p[sr.key] != null));
    const x1 = Date.now() / 1000, x0 = x1 - data.window_s;
    if (!pts.length) { svg.append(s("text", {x: L, y: H / 2}, "no data in this window")); return; }
    const vals = pts.flatMap((p) => series.map((sr) => p[sr.key]).filter((v) => v != null));
    let y0 = Math.min(...vals), y1 = Math.max(...vals);
    if (y1 - y0 < 1e-9 * Math.max(1, Math.abs(y1))) { y0 -= Math.abs(y0) * 0.05 || 1; y1 += Math.abs(y1) * 0.05 || 1; }
    const X = (t) => L + (W - L - R) * (t - x0) / (x1 - x0), Y = (v) => T + (H - T - B) * (1 - (v - y0) / (y1 - y0));
    for (const v of [y0, (y0 + y1) / 2, y1]) {
      svg.append(s("line", {class: "grid", x1: L, x2: W - R, y1: Y(v), y2: Y(v)}), s("text", {x: 2, y: Y(v) + 3}, fmt(v)));
    }
    for (const t of [x0, (x0 + x1) / 2, x1]) svg.append(s("text", {x: Math.min(X(t), W - 44), y: H - 4}, time(t)));
    for (const sr of series) {
      const line = pts.filter((p) => p[sr.key] != null).map((p) => `${X(p.t).toFixed(1)},${Y(p[sr.key]).toFixed(1)}`);
      svg.append(s("polyline", {points: line.join(" "), stroke: sr.colour, "data-series": sr.key}));
      svg.append(s("text", {x: L + 60 * series.indexOf(sr), y: 10, fill: sr.colour}, "— " + sr.label));
    }
  }
  async function loadHistory() {
    const note = $("history-note");
    try {
      const r = await fetch("/api/history");
      const data = await r.json();
      if (!r.ok) { note.textContent = "history unavailable: " + (data.error || r.status); return; }
      drawChart($("chart-power"), data, [{key: "site_w", label: "facility", colour: "#58a6ff"},
        {key: "it_w", label: "IT", colour: "#3fb950"}], fmtW);
      drawChart($("chart-pue"), data, [{key: "pue", label: "PUE", colour: "#d29922"}], (v) => v.toFixed(3));
      note.textContent = `${data.points.length} points, ${data.step_s} s buckets`;
    } catch (err) { note.textContent = "history unavailable: " + err; }
  }

  // -- start --------------------------------------------------------------------------------------------
  async function start() {
    const r = await fetch("/api/layout");
    buildFloor(await r.json());
    $("jobs").addEventListener("mouseover", (ev) => highlightJob(ev, true));
    $("jobs").addEventListener("mouseout", (ev) => highlightJob(ev, false));
    const select = $("mode");
    select.addEventListener("change", () => setMode(select.value));
    setMode(select.value);
    markDirty("power", "cooling", "jobs", "events");
    await loadScenarios().catch(() => {});
    connect();
    loadHistory();
    setInterval(loadHistory, 30000);
  }
  start();
})();
