// blastseg's page: upload, follow the analysis, look at the cells, correct the count, download.
// Plain JavaScript, no build step; every text from the server is set with textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { job: null, images: [], image: null, cells: [], changes: new Map(), selected: null, sort: { key: "cell_id", dir: 1 }, view: { scale: 1, x: 0, y: 0 } };
let picture = null;

// ---- theme: the system's unless the user chose one ----
function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  $("theme").setAttribute("aria-pressed", String(theme === "dark"));
  $("theme").textContent = theme === "dark" ? "Light theme" : "Dark theme";
}
setTheme(localStorage.getItem("blastseg-theme") || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
$("theme").addEventListener("click", () => {
  const theme = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  localStorage.setItem("blastseg-theme", theme);
  setTheme(theme);
  draw();
});

// ---- choosing files ----
const drop = $("drop");
function chosen() {
  const files = $("files").files;
  $("chosen").textContent = files.length ? Array.from(files, (f) => f.name).join(", ") : "No file chosen.";
  $("analyze").disabled = !files.length;
}
$("files").addEventListener("change", chosen);
["dragenter", "dragover"].forEach((kind) => drop.addEventListener(kind, (event) => { event.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((kind) => drop.addEventListener(kind, () => drop.classList.remove("over")));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  $("files").files = event.dataTransfer.files;
  chosen();
});

// ---- analysis ----
$("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("message").textContent = "";
  const form = new FormData();
  for (const file of $("files").files) form.append("files", file);
  for (const name of ["method", "classifier", "min_area"]) form.append(name, $(name).value);
  form.append("split", $("split").checked ? "true" : "false");
  $("analyze").disabled = true;
  try {
    const response = await fetch("/api/analyze", { method: "POST", body: form });
    const answer = await response.json();
    if (!response.ok) throw new Error(detail(answer));
    state.job = answer.id;
    state.changes = new Map();
    $("result").hidden = true;
    await follow();
  } catch (error) {
    $("message").textContent = error.message;
  } finally {
    $("analyze").disabled = !$("files").files.length;
  }
});

function detail(answer) {
  return typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail);
}

async function follow() {
  for (;;) {
    const response = await fetch(`/api/jobs/${state.job}`);
    const job = await response.json();
    if (!response.ok) throw new Error(detail(job));
    showProgress(job);
    if (job.status === "done") return showJob(job);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function showProgress(job) {
  const list = $("progress");
  list.replaceChildren(...job.images.map((image) => {
    const item = document.createElement("li");
    const stateLabel = document.createElement("span");
    stateLabel.className = "state";
    stateLabel.textContent = image.status;
    item.append(`${image.name}: `, stateLabel);
    if (image.status === "done") item.append(` (${image.summary.cells} cells)`);
    if (image.error) {
      item.className = "failed";
      item.append(` — ${image.error}`);
    }
    return item;
  }));
}

function showJob(job) {
  state.jobInfo = job;
  state.images = job.images.filter((image) => image.status === "done");
  if (!state.images.length) return;
  const select = $("image");
  select.replaceChildren(...state.images.map((image) => {
    const option = document.createElement("option");
    option.value = image.index;
    option.textContent = image.name;
    return option;
  }));
  $("result").hidden = false;
  openImage(state.images[0].index);
}
$("image").addEventListener("change", () => openImage(Number($("image").value)));

async function openImage(index) {
  state.image = index;
  state.selected = null;
  const base = `/api/jobs/${state.job}/images/${index}`;
  const answer = await (await fetch(`${base}/cells.json`)).json();
  state.cells = answer.cells;
  picture = new Image();
  picture.onload = () => { fit(); draw(); };
  picture.src = `${base}/view.jpg`;
  renderTable();
  renderCounts();
}

// ---- corrections ----
const key = (cell) => `${state.image}:${cell.cell_id}`;
const classOf = (cell) => { const change = state.changes.get(key(cell)); return change && !change.drop ? change.class : cell.class; };
const dropped = (cell) => Boolean(state.changes.get(key(cell))?.drop);

function change(cell, value) {
  if (value === null) state.changes.delete(key(cell));
  else state.changes.set(key(cell), { image: state.image, cell: Number(cell.cell_id), ...value });
  renderTable();
  renderCounts();
  draw();
}

function renderCounts() {
  const kept = state.cells.filter((cell) => !dropped(cell));
  const rows = [["cells", String(kept.length)]];
  const classified = kept.some((cell) => classOf(cell));
  if (classified) {
    const counts = {};
    for (const cell of kept) counts[classOf(cell)] = (counts[classOf(cell)] || 0) + 1;
    for (const name of Object.keys(counts).sort()) rows.push([name, String(counts[name])]);
    const blasts = counts.blast || 0;
    const [low, high] = wilson(blasts, kept.length);
    rows.push(["blast %", kept.length ? `${(100 * blasts / kept.length).toFixed(1)} (95% CI ${low.toFixed(1)}–${high.toFixed(1)})` : "–"]);
  }
  const corrected = [...state.changes.values()].filter((c) => c.image === state.image).length;
  if (corrected) rows.push(["corrected", String(corrected)]);
  $("counts").replaceChildren(...rows.flatMap(([name, value]) => {
    const term = document.createElement("dt");
    term.textContent = name;
    const text = document.createElement("dd");
    text.textContent = value;
    return [term, text];
  }));
}

function wilson(successes, n, z = 1.959964) {
  if (!n) return [0, 0];
  const p = successes / n, denominator = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denominator;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denominator;
  return [100 * Math.max(0, centre - half), 100 * Math.min(1, centre + half)];
}

// ---- the table ----
document.querySelectorAll("th button").forEach((button) => button.addEventListener("click", () => {
  const sortKey = button.dataset.key;
  state.sort = { key: sortKey, dir: state.sort.key === sortKey ? -state.sort.dir : 1 };
  renderTable();
}));

function sortValue(cell, sortKey) {
  const value = sortKey === "class" ? classOf(cell) : cell[sortKey];
  const number = Number(value);
  return value !== "" && value !== null && !Number.isNaN(number) ? number : String(value ?? "");
}

function renderTable() {
  const { key: sortKey, dir } = state.sort;
  document.querySelectorAll("th button").forEach((button) => {
    if (button.dataset.key === sortKey) button.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    else button.removeAttribute("aria-sort");
  });
  const cells = [...state.cells].sort((a, b) => {
    const x = sortValue(a, sortKey), y = sortValue(b, sortKey);
    return (x < y ? -1 : x > y ? 1 : 0) * dir;
  });
  const classes = state.jobInfo.correction_classes;
  $("cells").tBodies[0].replaceChildren(...cells.map((cell) => {
    const row = document.createElement("tr");
    row.dataset.cell = cell.cell_id;
    row.tabIndex = 0;
    row.classList.toggle("selected", state.selected === cell);
    row.classList.toggle("dropped", dropped(cell));
    const className = classOf(cell);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colourOf(cell);
    const values = [cell.cell_id, className || "–", cell.probability ? Number(cell.probability).toFixed(2) : "–", cell.area, cell.diameter_um ? Number(cell.diameter_um).toFixed(1) : "–"];
    values.forEach((value, column) => {
      const td = document.createElement("td");
      if (column === 1) td.append(swatch);
      td.append(String(value));
      row.append(td);
    });
    const actions = document.createElement("td");
    const relabel = document.createElement("select");
    relabel.setAttribute("aria-label", `Relabel cell ${cell.cell_id}`);
    const keep = document.createElement("option");
    keep.value = "";
    keep.textContent = "relabel…";
    relabel.append(keep, ...classes.map((name) => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      return option;
    }));
    relabel.value = state.changes.get(key(cell))?.class || "";
    relabel.addEventListener("click", (event) => event.stopPropagation());
    relabel.addEventListener("change", () => change(cell, relabel.value ? { class: relabel.value } : null));
    const dropButton = document.createElement("button");
    dropButton.type = "button";
    dropButton.textContent = state.changes.has(key(cell)) ? "Undo" : "Drop";
    dropButton.setAttribute("aria-label", `${dropButton.textContent} cell ${cell.cell_id}`);
    dropButton.addEventListener("click", (event) => {
      event.stopPropagation();
      change(cell, state.changes.has(key(cell)) ? null : { drop: true });
    });
    actions.append(relabel, " ", dropButton);
    row.append(actions);
    row.addEventListener("click", () => select(cell, true));
    row.addEventListener("keydown", (event) => { if (event.key === "Enter") select(cell, true); });
    return row;
  }));
}

function select(cell, centre) {
  state.selected = cell;
  document.querySelectorAll("#cells tbody tr").forEach((row) => row.classList.toggle("selected", row.dataset.cell === String(cell?.cell_id)));
  if (cell && centre) {
    const box = $("viewer").getBoundingClientRect();
    state.view.x = box.width / 2 - Number(cell.x) * state.view.scale;
    state.view.y = box.height / 2 - Number(cell.y) * state.view.scale;
  }
  if (cell && !centre) document.querySelector(`#cells tbody tr[data-cell="${CSS.escape(String(cell.cell_id))}"]`)?.scrollIntoView({ block: "nearest" });
  draw();
}

// ---- the viewer: zoom, pan, layers ----
const canvas = $("canvas");
const viewer = $("viewer");

function colourOf(cell) {
  const name = classOf(cell);
  return (name && state.jobInfo.colours[name]) || "#00be00";
}

function fit() {
  if (!picture) return;
  const box = viewer.getBoundingClientRect();
  const scale = Math.min(box.width / picture.width, box.height / picture.height);
  state.view = { scale, x: (box.width - picture.width * scale) / 2, y: (box.height - picture.height * scale) / 2 };
}

function zoom(factor, cx, cy) {
  const box = viewer.getBoundingClientRect();
  cx = cx ?? box.width / 2;
  cy = cy ?? box.height / 2;
  const view = state.view;
  const scale = Math.min(40, Math.max(0.05, view.scale * factor));
  view.x = cx - ((cx - view.x) * scale) / view.scale;
  view.y = cy - ((cy - view.y) * scale) / view.scale;
  view.scale = scale;
  draw();
}

function polygonPath(points) {
  const path = new Path2D();
  points.forEach(([x, y], i) => (i ? path.lineTo(x + 0.5, y + 0.5) : path.moveTo(x + 0.5, y + 0.5)));
  path.closePath();
  return path;
}

function draw() {
  const box = viewer.getBoundingClientRect();
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(box.width * ratio);
  canvas.height = Math.round(box.height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, box.width, box.height);
  if (!picture || !picture.complete) return;
  const { scale, x, y } = state.view;
  ctx.save();
  ctx.translate(x, y);
  ctx.scale(scale, scale);
  ctx.imageSmoothingEnabled = scale < 2;
  ctx.drawImage(picture, 0, 0);
  const line = 2 / scale;
  for (const cell of state.cells) {
    if (dropped(cell)) continue;
    const chosenCell = cell === state.selected;
    ctx.lineWidth = chosenCell ? 2 * line : line;
    if ($("layer-outlines").checked) {
      ctx.strokeStyle = chosenCell ? "#ffd400" : colourOf(cell);
      cell.outline.forEach((points) => ctx.stroke(polygonPath(points)));
    }
    if ($("layer-nuclei").checked) {
      ctx.strokeStyle = "#2f6bff";
      cell.nucleus.forEach((points) => ctx.stroke(polygonPath(points)));
    }
    if ($("layer-boxes").checked) {
      const [x0, y0, x1, y1] = [cell.bbox_x0, cell.bbox_y0, cell.bbox_x1, cell.bbox_y1].map(Number);
      ctx.strokeStyle = chosenCell ? "#ffd400" : colourOf(cell);
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      const label = `${classOf(cell) || "cell"}${cell.probability && !state.changes.has(key(cell)) ? " " + Number(cell.probability).toFixed(2) : ""} #${cell.cell_id}`;
      ctx.font = `${13 / scale}px system-ui, sans-serif`;
      const width = ctx.measureText(label).width + 6 / scale;
      ctx.fillStyle = "rgba(0, 0, 0, 0.65)";
      ctx.fillRect(x0, y0 - 17 / scale, width, 17 / scale);
      ctx.fillStyle = "#ffffff";
      ctx.fillText(label, x0 + 3 / scale, y0 - 4 / scale);
    }
  }
  ctx.restore();
}

function cellAt(px, py) {
  const ctx = canvas.getContext("2d");
  const ix = (px - state.view.x) / state.view.scale, iy = (py - state.view.y) / state.view.scale;
  return state.cells.find((cell) => !dropped(cell) && cell.outline.some((points) => ctx.isPointInPath(polygonPath(points), ix, iy)))
    || state.cells.find((cell) => !dropped(cell) && ix >= cell.bbox_x0 && ix < cell.bbox_x1 && iy >= cell.bbox_y0 && iy < cell.bbox_y1);
}

let drag = null;
viewer.addEventListener("pointerdown", (event) => {
  drag = { x: event.clientX, y: event.clientY, vx: state.view.x, vy: state.view.y, moved: false };
  viewer.setPointerCapture(event.pointerId);
});
viewer.addEventListener("pointermove", (event) => {
  if (!drag) return;
  const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
  if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; viewer.classList.add("dragging"); }
  state.view.x = drag.vx + dx;
  state.view.y = drag.vy + dy;
  if (drag.moved) draw();
});
viewer.addEventListener("pointerup", (event) => {
  viewer.classList.remove("dragging");
  if (drag && !drag.moved) {
    const box = viewer.getBoundingClientRect();
    const cell = cellAt(event.clientX - box.left, event.clientY - box.top);
    if (cell) select(cell, false);
  }
  drag = null;
});
viewer.addEventListener("wheel", (event) => {
  event.preventDefault();
  const box = viewer.getBoundingClientRect();
  zoom(event.deltaY < 0 ? 1.2 : 1 / 1.2, event.clientX - box.left, event.clientY - box.top);
}, { passive: false });
viewer.addEventListener("keydown", (event) => {
  const step = 40;
  const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
  if (moves[event.key]) {
    state.view.x += moves[event.key][0];
    state.view.y += moves[event.key][1];
    draw();
  } else if (event.key === "+" || event.key === "=") zoom(1.25);
  else if (event.key === "-") zoom(0.8);
  else return;
  event.preventDefault();
});
$("zoom-in").addEventListener("click", () => zoom(1.25));
$("zoom-out").addEventListener("click", () => zoom(0.8));
$("zoom-fit").addEventListener("click", () => { fit(); draw(); });
["layer-outlines", "layer-nuclei", "layer-boxes"].forEach((id) => $(id).addEventListener("change", draw));
window.addEventListener("resize", draw);

// ---- download: the corrections go with the results ----
$("download").addEventListener("click", async () => {
  $("message").textContent = "";
  const response = await fetch(`/api/jobs/${state.job}/corrections`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ changes: [...state.changes.values()] }),
  });
  if (!response.ok) {
    $("message").textContent = detail(await response.json());
    return;
  }
  const link = document.createElement("a");
  link.href = `/api/jobs/${state.job}/zip`;
  link.download = "";
  document.body.append(link);
  link.click();
  link.remove();
});
