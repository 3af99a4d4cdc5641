// The usage dashboard: every number comes from the public APIs (/v1/usage/query, /api/v1/usage/list,
// /v1/balance, /v1/grants) with the key the user gave; the key lives in sessionStorage only.
"use strict";

const KEY = "usageMeterKey";
const $ = (id) => document.getElementById(id);
const state = { shown: {}, cursors: [null], page: 0, chart: null, pending: 0, summaryRun: 0, eventsRun: 0, creditsRun: 0 };

function token() {
  return sessionStorage.getItem(KEY);
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// Totals can pass 2^53 (counts and credits up to 10^15 per event): integers JavaScript numbers
// cannot hold exactly are read as BigInt from the answer's own digits, and summed as BigInt.
function parseExact(text) {
  try {
    return JSON.parse(text, (key, value, context) =>
      typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)
        ? BigInt(context.source)
        : value);
  } catch {
    return {};
  }
}

const byValueDescending = (a, b) => (a < b ? 1 : a > b ? -1 : 0);

async function api(path, params, key) {
  const query = new URLSearchParams(params || []).toString();
  const response = await fetch(path + (query ? "?" + query : ""), {
    headers: { Authorization: "Bearer " + (key || token()), Accept: "application/json" },
  });
  const body = parseExact(await response.text());
  if (!response.ok) {
    const error = new Error(body.error || body.message || "HTTP " + response.status);
    error.status = response.status;
    throw error;
  }
  return body;
}

// -- range ------------------------------------------------------------------------------------
function zone() {
  return $("zone").value.trim() || "UTC";
}

function localDate(offsetDays) {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: zone(), year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date(Date.now() + offsetDays * 86400000));
  return parts; // YYYY-MM-DD
}

function quarterAligned(ms) {
  return new Date(Math.ceil(ms / 900000) * 900000).toISOString().replace(".000Z", "Z");
}

function range() {
  const choice = $("range").value;
  if (choice === "24h") return { from: quarterAligned(Date.now() - 86400000), hourly: true };
  if (choice === "7d") return { from: localDate(-6), hourly: false };
  if (choice === "30d") return { from: localDate(-29), hourly: false };
  if (choice === "billing") return { period: "billing", hourly: false };
  const from = $("from").value, to = $("to").value;
  const days = (Date.parse(to) - Date.parse(from)) / 86400000;
  return { from, to, hourly: days <= 2 };
}

function rangeParams(extra) {
  const r = range();
  const params = [r.period ? ["period", r.period] : ["from", r.from], ["timeZone", zone()]];
  if (r.to) params.push(["to", r.to]);
  return params.concat(extra || []);
}

// -- rendering ----------------------------------------------------------------------------------
const number = new Intl.NumberFormat();

function setLoading(on) {
  state.pending += on ? 1 : -1;
  const busy = state.pending > 0;
  document.body.classList.toggle("loading", busy);
  document.body.setAttribute("aria-busy", String(busy));
  $("status").textContent = busy ? "Loading…" : "Updated " + new Date().toLocaleTimeString();
}

function fillTable(id, rows, none = "Nothing in this range") {
  const body = $(id).querySelector("tbody");
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const cell of cells) {
        const td = document.createElement("td");
        const numeric = typeof cell === "number" || typeof cell === "bigint";
        td.textContent = numeric ? number.format(cell) : cell;
        if (numeric) td.className = "num";
        tr.appendChild(td);
      }
      return tr;
    }),
  );
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = $(id).querySelectorAll("th").length;
    td.className = "none";
    td.textContent = none;
    tr.appendChild(td);
    body.appendChild(tr);
  }
}

function drawChart(rows) {
  const xs = rows.map((row) => Date.parse(row.windowStart) / 1000);
  const ys = rows.map((row) => Number(row.value)); // the chart's scale, not its labels, may round
  const box = $("chart");
  if (state.chart) state.chart.destroy();
  box.replaceChildren();
  if (!rows.length) {
    box.textContent = "No credits in this range";
    return;
  }
  state.chart = new uPlot(
    {
      width: Math.max(280, box.clientWidth),
      height: 220,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone()),
      series: [{}, { label: "Credits", stroke: "#1d4ed8", fill: "rgba(29,78,216,0.15)", paths: uPlot.paths.bars({ size: [0.8] }) }],
      axes: [{}, { values: (u, ticks) => ticks.map((t) => number.format(t)) }],
      legend: { show: false },
    },
    [xs, ys],
    box,
  );
}

async function loadSummary() {
  const run = ++state.summaryRun; // a slower, older answer must not overwrite a newer one
  const r = range();
  const measures = ["credits", "tokens", "messages", "conversations"];
  const [totals, series, users, agents] = await Promise.all([
    Promise.all(measures.map((m) => api("/v1/usage/query", rangeParams([["measure", m]])))),
    api("/v1/usage/query", rangeParams([["windowSize", r.hourly ? "HOUR" : "DAY"]])),
    api("/v1/usage/query", rangeParams([["groupBy", "identifier"]])),
    api("/v1/usage/query", rangeParams([["groupBy", "agentId"], ["groupBy", "model"]])),
  ]);
  if (run !== state.summaryRun) return;
  const sums = {};
  measures.forEach((m, i) => {
    sums[m] = totals[i].data.reduce((sum, row) => sum + BigInt(row.value), 0n);
    const cell = document.querySelector(`[data-metric="${m}-total"]`);
    cell.dataset.value = String(sums[m]);
    cell.textContent = number.format(sums[m]);
  });
  drawChart(series.data);
  const topUsers = users.data
    .map((row) => [row.groupBy.identifier, row.value])
    .sort((a, b) => byValueDescending(a[1], b[1]))
    .slice(0, 10);
  const byAgent = new Map();
  for (const row of agents.data) {
    const entry = byAgent.get(row.groupBy.agentId) || { models: [], credits: 0n };
    entry.models.push(row.groupBy.model);
    entry.credits += BigInt(row.value);
    byAgent.set(row.groupBy.agentId, entry);
  }
  const topAgents = [...byAgent.entries()]
    .map(([agent, entry]) => [agent, entry.models.sort().join(", "), entry.credits])
    .sort((a, b) => byValueDescending(a[2], b[2]))
    .slice(0, 10);
  fillTable("top-users", topUsers);
  fillTable("top-agents", topAgents);
  $("empty").hidden = Object.values(sums).some((v) => v > 0) || series.data.length > 0;
  state.shown = { range: rangeParams(), totals: sums, series: series.data, topUsers, topAgents };
}

async function loadEvents() {
  const run = ++state.eventsRun;
  const params = [["take", "20"]];
  for (const [field, id] of [["type", "filter-type"], ["botId", "filter-bot"], ["conversationId", "filter-conversation"]]) {
    const value = $(id).value.trim();
    if (value) params.push([field, value]);
  }
  const cursor = state.cursors[state.page];
  if (cursor) params.push(["cursor", cursor]);
  const page = await api("/api/v1/usage/list", params);
  if (run !== state.eventsRun) return;
  const rows = page.items.map((item) => [
    new Date(item.createdAt).toLocaleString(undefined, { timeZone: zone() }),
    item.type,
    item.count,
    item.botId || "",
    item.conversationId || "",
    item.id,
  ]);
  fillTable("events", rows);
  state.cursors[state.page + 1] = page.cursor || null;
  $("older").disabled = !page.cursor;
  $("newer").disabled = state.page === 0;
  state.events = rows;
}

// The tenant's credits, or one end user's when searched: its balance now and its grants.
async function loadCredits() {
  const run = ++state.creditsRun;
  const user = $("balance-user").value.trim();
  const params = user ? [["identifier", user]] : [];
  const [balance, grants] = await Promise.all([api("/v1/balance", params), api("/v1/grants", params)]);
  if (run !== state.creditsRun) return;
  for (const field of ["available", "granted", "consumed", "reserved", "overage"]) {
    const cell = document.querySelector(`[data-balance="${field}"]`);
    cell.dataset.value = String(balance[field]);
    cell.textContent = number.format(balance[field]);
  }
  $("balance-of").textContent = user ? "of " + user : "of the whole tenant";
  const when = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { timeZone: zone() }) : "never");
  fillTable("grants", grants.data.map((g) => [
    g.id + (g.voidedAt ? " (voided)" : ""),
    g.priority,
    when(g.expiresAt),
    g.recurrence ? `each ${g.recurrence.period}, ${g.recurrence.timeZone}` : "",
    g.amount,
    g.remaining,
  ]), "No grants");
}

async function refresh() {
  showError("");
  setLoading(true);
  try {
    await Promise.all([loadSummary(), loadEvents(), loadCredits()]);
  } catch (error) {
    showError(error.message);
    if (error.status === 401) signOut(false);
  } finally {
    setLoading(false);
  }
}

// -- CSV of what is shown -------------------------------------------------------------------------
function csvLine(cells) {
  return cells.map((cell) => {
    const text = String(cell ?? "");
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }).join(",");
}

function download() {
  const shown = state.shown;
  const lines = [csvLine(["section", "key", "detail", "value"])];
  for (const [measure, value] of Object.entries(shown.totals || {})) lines.push(csvLine(["total", measure, "", value]));
  for (const row of shown.series || []) lines.push(csvLine(["credits over time", row.windowStart, row.windowEnd, row.value]));
  for (const [user, value] of shown.topUsers || []) lines.push(csvLine(["top end user", user, "", value]));
  for (const [agent, models, value] of shown.topAgents || []) lines.push(csvLine(["top agent", agent, models, value]));
  for (const row of state.events || []) lines.push(csvLine(["event", row[5], row[0] + " " + row[1], row[2]]));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" }));
  link.download = "usage.csv";
  link.click();
  URL.revokeObjectURL(link.href);
}

// -- sign-in ------------------------------------------------------------------------------------
function signIn(key) {
  sessionStorage.setItem(KEY, key);
  $("sign-in").hidden = true;
  $("dashboard").hidden = false;
  $("sign-out").hidden = false;
  refresh();
}

function signOut(clearError = true) {
  sessionStorage.removeItem(KEY);
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  if (clearError) showError("");
}

// A link's key is not trusted blindly: someone could send a link that signs a victim in to the
// sender's tenant. The page says which tenant the key opens and waits for "Continue".
async function offerLinkKey(key) {
  $("sign-in").hidden = true;
  try {
    const me = await api("/v1/me", null, key);
    $("confirm-tenant").textContent = me.tenant;
    $("confirm-scopes").textContent = "scopes: " + me.scopes.join(", ");
    $("confirm").hidden = false;
    $("confirm-continue").focus();
  } catch (error) {
    signOut();
    showError(error.message);
    return;
  }
  $("confirm-continue").onclick = () => {
    $("confirm").hidden = true;
    signIn(key);
  };
  $("confirm-cancel").onclick = () => {
    $("confirm").hidden = true;
    signOut();
  };
}

function start() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const linkKey = fragment.get("key");
  if (linkKey) history.replaceState(null, "", location.pathname + location.search); // the key leaves the address bar
  $("zone").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const zones = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [];
  $("zones").replaceChildren(...zones.map((z) => Object.assign(document.createElement("option"), { value: z })));
  $("to").value = localDate(1);
  $("from").value = localDate(-6);
  $("first-event").textContent =
    `curl -X POST ${location.origin}/v1/events -H "Authorization: Bearer $TOKEN" ` +
    `-H 'Content-Type: application/json' -d '{"id": "evt-1", "type": "message", "count": 1, "credits": 1}'`;
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("api-key").value.trim());
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    state.cursors = [null];
    state.page = 0;
    refresh();
  });
  $("range").addEventListener("change", () => {
    document.body.classList.toggle("custom-range", $("range").value === "custom");
    if ($("range").value !== "custom") $("controls").requestSubmit();
  });
  $("event-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.cursors = [null];
    state.page = 0;
    run(loadEvents);
  });
  $("balance-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run(loadCredits);
  });
  $("older").addEventListener("click", () => { state.page += 1; run(loadEvents); });
  $("newer").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); run(loadEvents); });
  $("download").addEventListener("click", download);
  if (linkKey) offerLinkKey(linkKey);
  else if (token()) signIn(token());
  else signOut();
}

async function run(load) {
  showError("");
  setLoading(true);
  try {
    await load();
  } catch (error) {
    showError(error.message);
  } finally {
    setLoading(false);
  }
}

start();
