// The Sluice dashboard: polls GET /dashboard/state once a second and renders listeners,
// clusters and backends; drain/undrain buttons call the admin API. Plain browser
// JavaScript, no framework, no external resource (the page's CSP allows only this server).
// Every value from the server is set with textContent, never parsed as HTML.
'use strict';

const POLL_INTERVAL_MS = 1000;
/** Samples kept per backend for the throughput sparkline: one a poll, so about a minute. */
const HISTORY_LENGTH = 60;
const TOKEN_KEY = 'sluice.adminToken';
/** Column of the drain/undrain button in a backend row. */
const ACTION_CELL = 10;

/** Previous poll, to turn counter totals into rates. */
let previous = null;
/** backend id -> recent bytes/s (in + out), oldest first. */
const history = new Map();
let pollTimer = undefined;

function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

function authHeaders() {
  const value = token();
  return value === '' ? {} : { authorization: `Bearer ${value}` };
}

function setStatus(text, kind) {
  const status = document.getElementById('status');
  status.textContent = text;
  status.dataset.kind = kind;
}

async function apiError(response) {
  try {
    const body = await response.json();
    return body.message ?? body.error ?? `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

function formatRate(bytesPerSecond) {
  const units = ['B/s', 'kB/s', 'MB/s', 'GB/s'];
  let value = bytesPerSecond;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value < 10 && unit > 0 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

function formatCount(n) {
  return Math.round(n).toLocaleString('en-US');
}

/** Per-second rate of a counter between two polls (0 on the first poll or a reset). */
function rate(now, before, seconds) {
  if (before === undefined || seconds <= 0 || now < before) return 0;
  return (now - before) / seconds;
}

function cell(row, index) {
  return row.children[index];
}

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function renderListeners(state, seconds) {
  const before = new Map((previous?.listeners ?? []).map((l) => [l.name, l]));
  const tbody = document.querySelector('#listeners tbody');
  const rows = state.listeners.map((listener) => {
    let row = tbody.querySelector(`tr[data-listener="${CSS.escape(listener.name)}"]`);
    if (row === null) {
      row = document.createElement('tr');
      row.dataset.listener = listener.name;
      for (const numeric of [false, false, true, true, true]) {
        const td = document.createElement('td');
        if (numeric) td.className = 'num';
        row.append(td);
      }
    }
    const old = before.get(listener.name);
    setText(cell(row, 0), listener.name);
    setText(cell(row, 1), listener.cluster ?? '(by SNI)');
    setText(cell(row, 2), rate(listener.connections_total, old?.connections_total, seconds).toFixed(1));
    setText(cell(row, 3), formatCount(listener.connections_total));
    setText(cell(row, 4), formatCount(listener.refused_total));
    return row;
  });
  tbody.replaceChildren(...rows);
}

function sparkline(values) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${HISTORY_LENGTH - 1} 20`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'spark');
  const max = Math.max(1, ...values);
  const offset = HISTORY_LENGTH - values.length;
  const points = values.map((v, i) => `${offset + i},${(20 - (v / max) * 19).toFixed(2)}`).join(' ');
  const baseline = document.createElementNS(ns, 'line');
  baseline.setAttribute('x1', '0');
  baseline.setAttribute('x2', String(HISTORY_LENGTH - 1));
  baseline.setAttribute('y1', '20');
  baseline.setAttribute('y2', '20');
  baseline.setAttribute('class', 'baseline');
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', points);
  svg.append(baseline, line);
  return svg;
}

function backendRow(tbody, backend) {
  let row = tbody.querySelector(`tr[data-backend-id="${CSS.escape(backend.id)}"]`);
  if (row !== null) return row;
  row = document.createElement('tr');
  row.dataset.backendId = backend.id;
  const classes = ['', 'state', 'reason', 'num', 'num', 'num', 'num', 'spark-cell', 'num', 'num', 'actions'];
  for (const className of classes) {
    const td = document.createElement('td');
    if (className !== '') td.className = className;
    row.append(td);
  }
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'action';
  button.addEventListener('click', () => {
    void toggleDrain(row.dataset.backendId, button.dataset.action, button);
  });
  const historyButton = document.createElement('button');
  historyButton.type = 'button';
  historyButton.className = 'history';
  historyButton.textContent = 'History';
  historyButton.addEventListener('click', () => {
    void showHistory(row.dataset.backendId);
  });
  cell(row, ACTION_CELL).append(button, historyButton);
  return row;
}

function renderBackend(tbody, backend, old, seconds) {
  const row = backendRow(tbody, backend);
  const inRate = rate(backend.bytes_from_client, old?.bytes_from_client, seconds);
  const outRate = rate(backend.bytes_to_client, old?.bytes_to_client, seconds);
  const samples = history.get(backend.id) ?? [];
  if (old !== undefined) samples.push(inRate + outRate);
  if (samples.length > HISTORY_LENGTH) samples.splice(0, samples.length - HISTORY_LENGTH);
  history.set(backend.id, samples);

  setText(cell(row, 0), backend.address);
  const state = cell(row, 1);
  setText(state, backend.state);
  state.dataset.state = backend.state;
  state.dataset.admin = backend.admin;
  const reason = cell(row, 2);
  setText(reason, backend.reason);
  reason.title = `${backend.reason} (since ${backend.since}${backend.admin === 'none' ? '' : `; operator: ${backend.admin}`})`;
  // While slow start ramps a backend up, show the weight routing uses of the configured one.
  setText(cell(row, 3), backend.effective_weight === backend.weight ? String(backend.weight) : `${backend.effective_weight}/${backend.weight}`);
  setText(cell(row, 4), formatCount(backend.active_connections));
  setText(cell(row, 5), formatRate(inRate));
  setText(cell(row, 6), formatRate(outRate));
  cell(row, 7).replaceChildren(sparkline(samples));
  setText(cell(row, 8), formatCount(backend.connections_total));
  setText(cell(row, 9), formatCount(backend.connect_failures_total));

  const button = cell(row, ACTION_CELL).querySelector('button.action');
  // An operator's drain (or removal) is what undrain undoes; health-driven states are not.
  const action = backend.admin === 'none' ? 'drain' : 'undrain';
  if (button.dataset.action !== action && button.dataset.busy !== 'true') {
    button.dataset.action = action;
    button.textContent = action === 'drain' ? 'Drain' : 'Undrain';
  }
  return row;
}

function renderClusters(state, seconds) {
  const before = new Map();
  for (const cluster of previous?.clusters ?? []) for (const b of cluster.backends) before.set(b.id, b);
  const container = document.getElementById('clusters');
  const template = document.getElementById('cluster-template');
  const sections = state.clusters.map((cluster) => {
    let section = container.querySelector(`section[data-cluster="${CSS.escape(cluster.name)}"]`);
    if (section === null) {
      section = template.content.firstElementChild.cloneNode(true);
      section.dataset.cluster = cluster.name;
    }
    setText(section.querySelector('.name'), cluster.name);
    setText(section.querySelector('.algorithm'), cluster.algorithm);
    const tbody = section.querySelector('tbody');
    const rows = cluster.backends.map((b) => renderBackend(tbody, b, before.get(b.id), seconds));
    tbody.replaceChildren(...rows);
    return section;
  });
  container.replaceChildren(...sections);
  const live = new Set(state.clusters.flatMap((c) => c.backends.map((b) => b.id)));
  for (const id of history.keys()) if (!live.has(id)) history.delete(id);
}

function render(state) {
  const seconds = previous === null ? 0 : (state.time - previous.time) / 1000;
  setText(document.getElementById('version'), String(state.snapshot_version));
  setText(document.getElementById('updated'), new Date(state.time).toLocaleTimeString());
  renderListeners(state, seconds);
  renderClusters(state, seconds);
  previous = state;
}

async function poll() {
  try {
    const response = await fetch('/dashboard/state', { headers: authHeaders(), cache: 'no-store' });
    if (response.status === 401) {
      setStatus('admin token required', 'error');
      document.getElementById('token').focus();
    } else if (!response.ok) {
      setStatus(await apiError(response), 'error');
    } else {
      render(await response.json());
      setStatus('live', 'ok');
    }
  } catch (error) {
    setStatus(`unreachable: ${error.message}`, 'error');
  }
  // A poll started by a button may overlap the timed one: whichever ends last leaves
  // exactly one timer behind.
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, POLL_INTERVAL_MS);
}

async function toggleDrain(id, action, button) {
  button.dataset.busy = 'true';
  button.disabled = true;
  try {
    const response = await fetch(`/backends/${encodeURIComponent(id)}/${action}`, { method: 'POST', headers: authHeaders() });
    if (!response.ok) setStatus(`${action} ${id}: ${await apiError(response)}`, 'error');
    else setStatus(`${action} ${id}: ok`, 'ok');
  } catch (error) {
    setStatus(`${action} ${id}: ${error.message}`, 'error');
  } finally {
    button.dataset.busy = 'false';
    button.disabled = false;
  }
  await poll();
}

/** The backend's last transitions as a timeline, newest first, under the page header. */
async function showHistory(id) {
  const panel = document.getElementById('history');
  try {
    const response = await fetch(`/backends/${encodeURIComponent(id)}/history`, { headers: authHeaders() });
    if (!response.ok) {
      setStatus(`history ${id}: ${await apiError(response)}`, 'error');
      return;
    }
    const answer = await response.json();
    const items = [...answer.transitions].reverse().map((t) => {
      const item = document.createElement('li');
      item.dataset.to = t.to;
      const when = document.createElement('time');
      when.dateTime = t.at;
      when.textContent = new Date(t.at).toLocaleString();
      const change = document.createElement('strong');
      change.textContent = `${t.from} → ${t.to}${t.admin === 'none' ? '' : ` (operator: ${t.admin})`}`;
      const why = document.createElement('span');
      why.textContent = `${t.reason} · snapshot ${t.snapshot_version}`;
      item.append(when, change, why);
      return item;
    });
    panel.querySelector('.backend').textContent = id;
    panel.querySelector('ol').replaceChildren(...items);
    panel.hidden = false;
  } catch (error) {
    setStatus(`history ${id}: ${error.message}`, 'error');
  }
}

function start() {
  const form = document.getElementById('token-form');
  const input = document.getElementById('token');
  input.value = token();
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    void poll();
  });
  document.querySelector('#history button.close').addEventListener('click', () => {
    document.getElementById('history').hidden = true;
  });
  void poll();
}

start();
