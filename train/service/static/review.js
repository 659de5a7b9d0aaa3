// The review page: classify pasted tweets; label deferred ones (keys 1/2/3..., s to skip).
// Plain DOM, no framework; every text from the server is shown with textContent, never as HTML.
"use strict";

const state = { token: "", reviewer: "", labels: [], queue: [], skipped: new Set(), current: null, busy: false };

function $(id) { return document.getElementById(id); }

function setStatus(message, ok) {
  $("status").textContent = message;
  $("status").className = ok ? "ok" : "";
}

async function api(method, path, body, needsToken) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (needsToken) headers["Authorization"] = "Bearer " + state.token;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await response.json(); } catch (e) { data = { error: "HTTP " + response.status }; }
  return { status: response.status, data };
}

async function loadModel() {
  const { status, data } = await api("GET", "/v1/model");
  if (status !== 200) { setStatus(data.error || "cannot read the model"); return; }
  $("model-version").textContent = data.version.slice(0, 19) + "\u2026";
  $("model-version").title = data.version + " (" + data.source + ")";
  $("model-threshold").textContent = data.defer_below.toFixed(2);
  state.labels = data.review_labels;
}

async function classify() {
  const texts = $("classify-input").value.split("\n").filter((line) => line.trim() !== "");
  if (!texts.length) { setStatus("type a tweet first"); return; }
  const { status, data } = await api("POST", "/v1/classify", { texts });
  if (status !== 200) { setStatus(data.error); return; }
  const body = $("classify-results").querySelector("tbody");
  body.replaceChildren();
  data.results.forEach((result, i) => {
    const row = document.createElement("tr");
    const cells = result.error !== undefined
      ? [texts[i], "error: " + result.error, "", ""]
      : [texts[i], result.label, result.confidence.toFixed(3), result.deferred ? "yes" : "no"];
    cells.forEach((value, j) => {
      const cell = document.createElement("td");
      cell.textContent = value;
      if (j === 0) cell.className = "text";
      row.appendChild(cell);
    });
    if (result.deferred) row.className = "deferred";
    body.appendChild(row);
  });
  $("classify-results").hidden = false;
  setStatus(data.results.length + " classified", true);
  if (state.token) await refreshQueue();
}

function showCounts(counts) {
  $("pending-count").textContent = counts.pending;
  $("reviewed-count").textContent = counts.reviewed;
}

async function refreshQueue() {
  const exclude = Array.from(state.skipped).slice(0, 500).join(",");
  const { status, data } = await api("GET", "/v1/review/queue?limit=50" + (exclude ? "&exclude=" + exclude : ""),
                                     undefined, true);
  if (status !== 200) { setStatus(data.error); return false; }
  showCounts(data.counts);
  state.labels = data.labels;
  state.queue = data.items;
  if (!state.queue.length && state.skipped.size) {  // Only skipped ones are left: show them again.
    state.skipped.clear();
    return refreshQueue();
  }
  renderLabelButtons();
  showNext();
  return true;
}

function renderLabelButtons() {
  const box = $("label-buttons");
  box.replaceChildren();
  state.labels.slice(0, 9).forEach((label, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.label = label;
    button.textContent = (i + 1) + " " + label;
    button.addEventListener("click", () => submitLabel(label));
    box.appendChild(button);
  });
  $("key-hint").textContent = state.labels.slice(0, 9).map((label, i) => (i + 1) + " " + label).join(", ");
}

function showNext() {
  state.current = state.queue.length ? state.queue[0] : null;
  $("queue-empty").hidden = state.current !== null;
  $("review-text").textContent = state.current ? state.current.text : "";
  $("review-guess").textContent = state.current
    ? state.current.label + " (" + Object.entries(state.current.probabilities)
        .map(([name, p]) => name + " " + p.toFixed(3)).join(", ") + ")" : "";
  $("review-text").dataset.id = state.current ? String(state.current.id) : "";
}

async function submitLabel(label) {
  if (!state.current || state.busy) return;
  state.busy = true;
  const item = state.current;
  try {
    const { status, data } = await api("POST", "/v1/review/" + item.id, { label, reviewer: state.reviewer }, true);
    if (status === 200) {
      setStatus("labelled " + label, true);
      showCounts(data.counts);
    } else if (status === 409) {
      setStatus("someone labelled this one already: " + data.error);
    } else {
      setStatus(data.error);
      if (status === 401) return;
    }
    state.queue.shift();
    if (!state.queue.length) await refreshQueue(); else showNext();
  } finally {
    state.busy = false;
  }
}

async function skip() {
  if (!state.current) return;
  state.skipped.add(state.current.id);
  state.queue.shift();
  if (!state.queue.length) await refreshQueue(); else showNext();
}

async function start() {
  state.token = $("token-input").value.trim();
  state.reviewer = $("reviewer-input").value.trim() || "reviewer";
  if (!state.token) { setStatus("enter the reviewer token"); return; }
  if (await refreshQueue()) {
    sessionStorage.setItem("reviewToken", state.token);
    sessionStorage.setItem("reviewer", state.reviewer);
    $("review").hidden = false;
    setStatus("reviewing as " + state.reviewer, true);
  }
}

function onKey(event) {
  const target = event.target;
  if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return;
  if ($("review").hidden || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "s") { event.preventDefault(); skip(); return; }
  const index = "123456789".indexOf(event.key);
  if (index >= 0 && index < state.labels.length) { event.preventDefault(); submitLabel(state.labels[index]); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("classify-button").addEventListener("click", classify);
  $("start-button").addEventListener("click", start);
  $("skip-button").addEventListener("click", skip);
  document.addEventListener("keydown", onKey);
  $("token-input").value = sessionStorage.getItem("reviewToken") || "";
  $("reviewer-input").value = sessionStorage.getItem("reviewer") || "";
  loadModel();
});
