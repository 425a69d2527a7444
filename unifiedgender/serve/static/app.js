// Upload page for `ugn serve`: file picker and drag and drop, one request per image, results as cards.
"use strict";

const MAX_PARALLEL_UPLOADS = 3;
const el = (id) => document.getElementById(id);
const ui = {
  modelInfo: el("model-info"),
  thresholdInfo: el("threshold-info"),
  modalityField: el("modality-field"),
  modality: el("modality"),
  dropzone: el("dropzone"),
  input: el("file-input"),
  hint: el("limits-hint"),
  results: el("results"),
  count: el("result-count"),
  empty: el("empty"),
  clear: el("clear"),
  announcer: el("announcer"),
  template: el("card-template"),
};
let limits = null;
let needsModality = false;
let threshold = null;
const queue = [];
let running = 0;

const ERROR_TITLES = { 413: "Too large", 415: "Not accepted", 422: "Could not read" };

function megabytes(bytes) {
  const mb = bytes / (1024 * 1024);
  return `${Number.isInteger(mb) ? mb : mb.toFixed(mb < 1 ? 2 : 1)} MB`;
}

function percent(x) {
  return `${Math.round(x * 100)}%`;
}

function announce(text) {
  ui.announcer.textContent = text;
}

async function loadHealth() {
  try {
    const response = await fetch("/health", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const health = await response.json();
    showModel(health);
  } catch (err) {
    ui.modelInfo.textContent = `Cannot reach the model server (${err.message}). Reload the page once it runs.`;
    ui.modelInfo.classList.add("offline");
  }
}

function showModel(health) {
  const model = health.model;
  limits = health.limits;
  needsModality = model.needs_modality;
  ui.modelInfo.replaceChildren(
    "Model ", code(model.tag || model.backbone), ` · ${model.arch} · ${model.input_size.slice(1).join("×")} px · v${health.version}`
  );
  ui.modality.replaceChildren(
    ...model.modalities.map((name) => new Option(name.replace("_", " "), name))
  );
  ui.modalityField.hidden = !needsModality;
  threshold = model.threshold;
  ui.thresholdInfo.textContent =
    `Decision threshold on P(male): ${threshold.description}. ` +
    `Results within ±${threshold.uncertain_margin.toFixed(2)} of it are marked uncertain.`;
  ui.hint.textContent =
    `JPEG, PNG, WebP, BMP, TIFF or GIF · up to ${megabytes(limits.max_upload_bytes)} and ` +
    `${(limits.max_pixels / 1e6).toFixed(0)} megapixels per image`;
}

function code(text) {
  const node = document.createElement("code");
  node.textContent = text;
  return node;
}

function addFiles(files) {
  for (const file of files) {
    const card = createCard(file);
    if (limits && file.size > limits.max_upload_bytes) {
      showError(card, `${megabytes(file.size)} is over the ${megabytes(limits.max_upload_bytes)} limit per upload.`, 413);
    } else if (file.size === 0) {
      showError(card, "Empty file (0 bytes).", 422);
    } else {
      queue.push({ file, card, modality: needsModality ? ui.modality.value : "" });
    }
  }
  updateCount();
  pump();
}

function createCard(file) {
  const card = ui.template.content.firstElementChild.cloneNode(true);
  const name = card.querySelector(".name");
  name.textContent = file.name || "unnamed";
  name.title = file.name || "";
  const img = card.querySelector("img");
  const thumb = card.querySelector(".thumb");
  img.addEventListener("error", () => thumb.classList.add("broken"), { once: true });
  img.src = URL.createObjectURL(file);
  img.alt = `Uploaded image ${file.name}`;
  ui.results.append(card);
  return card;
}

function pump() {
  while (running < MAX_PARALLEL_UPLOADS && queue.length) {
    const job = queue.shift();
    running += 1;
    upload(job).finally(() => {
      running -= 1;
      pump();
    });
  }
}

async function upload({ file, card, modality }) {
  const form = new FormData();
  form.append("files", file, file.name);
  if (modality) form.append("modality", modality);
  let response;
  try {
    response = await fetch("/api/predict", { method: "POST", body: form });
  } catch (err) {
    showError(card, `Could not reach the server: ${err.message}.`, 0);
    return;
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const result = body && Array.isArray(body.results) ? body.results[0] : null;
  if (result && result.status === "ok") showResult(card, result);
  else if (result) showError(card, result.error, result.code);
  else showError(card, (body && body.detail) || `The server answered HTTP ${response.status}.`, response.status);
}

function showResult(card, result) {
  card.dataset.status = "ok";
  card.dataset.pred = result.pred;
  card.querySelector(".label").textContent = result.pred;
  card.querySelector(".confidence").textContent = percent(result.confidence);
  const bar = card.querySelector(".bar");
  bar.setAttribute("aria-valuenow", String(Math.round(result.confidence * 100)));
  bar.setAttribute("aria-valuetext", `${percent(result.confidence)} confident: ${result.pred}`);
  requestAnimationFrame(() => {
    card.querySelector(".bar-fill").style.width = percent(result.confidence);
  });
  card.querySelector(".detail").textContent =
    `P(male) ${result.prob_male.toFixed(3)} · P(female) ${result.prob_female.toFixed(3)}`;
  if (result.uncertain) {
    card.dataset.uncertain = "true";
    const note = card.querySelector(".uncertain-note");
    note.textContent = threshold
      ? `Uncertain: P(male) is within ${threshold.uncertain_margin.toFixed(2)} of the threshold ${threshold.value.toFixed(3)}.`
      : "Uncertain: P(male) is close to the decision threshold.";
    note.hidden = false;
  }
  announce(`${result.name}: ${result.pred}${result.uncertain ? " (uncertain)" : ""}, ${percent(result.confidence)} confidence.`);
}

function showError(card, message, status) {
  card.dataset.status = "error";
  card.querySelector(".label").textContent = ERROR_TITLES[status] || "Could not classify";
  card.querySelector(".confidence").textContent = status ? `HTTP ${status}` : "";
  card.querySelector(".detail").textContent = message;
  card.querySelector(".bar").removeAttribute("role");
  announce(`${card.querySelector(".name").textContent}: ${message}`);
}

function updateCount() {
  const n = ui.results.children.length;
  ui.count.textContent = n ? `(${n})` : "";
  ui.empty.hidden = n > 0;
  ui.clear.hidden = n === 0;
}

function clearResults() {
  queue.length = 0;
  for (const img of ui.results.querySelectorAll("img")) URL.revokeObjectURL(img.src);
  ui.results.replaceChildren();
  updateCount();
  announce("Results cleared.");
  ui.input.focus();
}

ui.input.addEventListener("change", () => {
  addFiles(ui.input.files);
  ui.input.value = "";
});
ui.clear.addEventListener("click", clearResults);

let dragDepth = 0;
ui.dropzone.addEventListener("dragenter", (event) => {
  event.preventDefault();
  dragDepth += 1;
  ui.dropzone.classList.add("dragging");
});
ui.dropzone.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) ui.dropzone.classList.remove("dragging");
});
ui.dropzone.addEventListener("dragover", (event) => {
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
});
ui.dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  dragDepth = 0;
  ui.dropzone.classList.remove("dragging");
  addFiles(event.dataTransfer.files);
});
// A file dropped beside the drop zone must not make the browser navigate away from the page.
for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());

loadHealth();
