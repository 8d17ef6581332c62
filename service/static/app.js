// Upload page: pick or drop an image, preview it, POST it to /predict, render top-k with score bars.
// With IMAGE_URL_FETCH on (GET /ui/config), a URL field POSTs {"url": ...} instead: the server fetches it.
// Labels come from the model files: always rendered with textContent, never as HTML.
"use strict";

const dropZone = document.getElementById("drop-zone");
const fileInput = document.getElementById("file-input");
const preview = document.getElementById("preview");
const dropText = document.getElementById("drop-text");
const topK = document.getElementById("top-k");
const statusLine = document.getElementById("status");
const list = document.getElementById("predictions");
const apiKeyRow = document.getElementById("api-key-row");
const apiKey = document.getElementById("api-key");
const urlForm = document.getElementById("url-form");
const imageUrl = document.getElementById("image-url");
// What was classified last, re-sent when top-k or the key changes: () => {body, headers}.
let current = null;

function setStatus(text, isError) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", Boolean(isError));
}

function renderPredictions(predictions) {
  list.replaceChildren();
  for (const p of predictions) {
    const item = document.createElement("li");
    const row = document.createElement("div");
    row.className = "row";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = p.label;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = (p.score * 100).toFixed(1) + "%";
    row.append(label, score);
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = Math.max(0.5, p.score * 100).toFixed(1) + "%";
    bar.append(fill);
    item.append(row, bar);
    list.append(item);
  }
}

function fileRequest(file) {
  const body = new FormData();
  body.append("file", file);
  return { body, headers: {} };
}

function urlRequest(url) {
  return { body: JSON.stringify({ url }), headers: { "Content-Type": "application/json" } };
}

async function classify(request) {
  current = request;
  const { body, headers } = request();
  setStatus("Classifying…");
  list.replaceChildren();
  try {
    // The key (only if the server sets API_KEY) stays in this page's memory: never stored, never in URLs.
    if (apiKey.value) headers.Authorization = "Bearer " + apiKey.value;
    const response = await fetch("/predict?top_k=" + encodeURIComponent(topK.value),
                                 { method: "POST", body, headers });
    const data = await response.json().catch(() => ({}));
    if (response.status === 401) {
      apiKeyRow.hidden = false;
      apiKey.focus();
      setStatus((apiKey.value ? "Wrong API key" : "This server needs an API key") +
                ": enter it below (it is sent as Authorization: Bearer).", true);
      return;
    }
    if (!response.ok) {
      setStatus("Error " + response.status + ": " + (data.detail || data.error || response.statusText), true);
      return;
    }
    setStatus(data.model + " v" + data.version + ", top " + data.predictions.length + ":");
    renderPredictions(data.predictions);
  } catch (err) {
    setStatus("Request failed: " + err, true);
  }
}

function choose(file) {
  if (!file) return;
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  dropText.textContent = file.name;
  classify(() => fileRequest(file));
}

function chooseUrl(url) {
  // No preview: the page's Content-Security-Policy loads images from this server only.
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.removeAttribute("src");
  preview.hidden = true;
  dropText.textContent = url;
  classify(() => urlRequest(url));
}

fileInput.addEventListener("change", () => choose(fileInput.files[0]));
urlForm.addEventListener("submit", (event) => {
  event.preventDefault();
  chooseUrl(imageUrl.value.trim());
});
topK.addEventListener("change", () => current && classify(current));
apiKey.addEventListener("change", () => current && classify(current));
for (const type of ["dragenter", "dragover"]) {
  dropZone.addEventListener(type, (event) => { event.preventDefault(); dropZone.classList.add("dragging"); });
}
for (const type of ["dragleave", "drop"]) {
  dropZone.addEventListener(type, () => dropZone.classList.remove("dragging"));
}
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  choose(event.dataTransfer.files[0]);
});

fetch("/version").then((r) => r.json()).then((v) => {
  document.getElementById("model-info").textContent =
    "Model " + v.model + " v" + v.version + (v.num_classes ? " · " + v.num_classes + " classes" : "");
}).catch(() => {
  document.getElementById("model-info").textContent = "Model information unavailable";
});

fetch("/ui/config").then((r) => r.json()).then((config) => {
  urlForm.hidden = !config.url_input;
}).catch(() => { urlForm.hidden = true; });
