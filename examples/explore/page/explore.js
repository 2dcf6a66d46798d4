// The explorer page: a drawing pad, the model's answer for what is on it, every
// layer's output, the filters, and (under `mnist --explore`) the training run.
// The model takes gray images (1 channel) or RGB ones (3): an RGB image arrives as
// three planes, red, green, blue, and is drawn in colour.
//
// Arrays arrive as base64 bytes (see server/encode.rs) and are drawn straight into
// canvas pixels at their own size, then enlarged by CSS with `pixelated` rendering,
// so a 7×7 map stays a sharp 7×7 grid. At most one analysis is in flight: strokes
// made meanwhile are sent together when it returns, so the page keeps up with the
// pen however slow the machine.
'use strict';

const $ = (id) => document.getElementById(id);

const state = {
  model: null,
  inFlight: false,
  pendingSince: null, // time of the earliest change not yet sent
  source: null, // {kind: 'drawing'} or {kind: 'test', index}
  lastDrawing: null, // {width, height, pixels}: what was last sent, for tests
  lastResult: null,
  updates: 0,
  timings: [], // ms from a change to the updated page, last 50
  layerKey: '',
  explain: null, // the class whose saliency is shown; null: the prediction
  live: { since: 0, steps: [], epochs: [], filtersStep: -1, done: false },
};
window.explorer = state; // for the browser test and the curious

// ---- pixels ----------------------------------------------------------------

function bytesOf(b64) {
  const s = atob(b64);
  const a = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
  return a;
}

// 256-entry colour tables, [r, g, b] per byte value.
function table(f) {
  const t = new Uint8Array(256 * 3);
  for (let v = 0; v < 256; v++) t.set(f(v / 255), v * 3);
  return t;
}
const GRAY = table((t) => [255 * t, 255 * t, 255 * t]);
// Signed values, 128 ± 127·v/max|v| (server/encode.rs): zero black, positive
// orange, negative blue; `gamma` below 1 brightens the weak ones, so that a few
// strong pixels do not leave a gradient × ink map black.
function signedTable(gamma) {
  const t = new Uint8Array(256 * 3);
  for (let v = 0; v < 256; v++) {
    const s = Math.max(-1, Math.min(1, (v - 128) / 127));
    const a = Math.pow(Math.abs(s), gamma);
    t.set(s >= 0 ? [255 * a, 150 * a, 30 * a] : [40 * a, 140 * a, 255 * a], v * 3);
  }
  return t;
}
const SIGNED = signedTable(1);
const SIGNED_SQRT = signedTable(0.5);
// Saliency: black, red, yellow, white.
const HEAT = table((t) => [255 * Math.min(1, 3 * t), 255 * Math.min(1, Math.max(0, 3 * t - 1)), 255 * Math.max(0, 3 * t - 2)]);

// Columns for n tiles: about √n, preferring a count that fills the last row.
function autoColumns(n) {
  const root = Math.ceil(Math.sqrt(n));
  for (let c = root; c <= 2 * root; c++) if (n % c === 0) return c;
  return Math.max(root, 1);
}

// Draws `planes` tiles of ph×pw bytes in `cols` columns with 1 px gaps, colours
// from `lut`, and sets the canvas' CSS size to `scale` times its pixels. With
// `rgb`, a tile is three planes (red, green, blue) of bytes drawn as they are.
function drawTiles(canvas, bytes, planes, ph, pw, cols, lut, scale, rgb = false) {
  const rows = Math.ceil(planes / cols);
  const width = cols * (pw + 1) + 1;
  const height = rows * (ph + 1) + 1;
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(width, height);
  const px = image.data;
  for (let i = 0; i < px.length; i += 4) { px[i] = px[i + 1] = px[i + 2] = 85; px[i + 3] = 255; }
  for (let p = 0; p < planes; p++) {
    const ox = (p % cols) * (pw + 1) + 1;
    const oy = Math.floor(p / cols) * (ph + 1) + 1;
    const n = ph * pw;
    const base = p * n * (rgb ? 3 : 1);
    for (let y = 0; y < ph; y++) {
      let o = ((oy + y) * width + ox) * 4;
      for (let x = 0; x < pw; x++, o += 4) {
        const i = base + y * pw + x;
        if (rgb) {
          px[o] = bytes[i]; px[o + 1] = bytes[i + n]; px[o + 2] = bytes[i + 2 * n];
        } else {
          const c = bytes[i] * 3;
          px[o] = lut[c]; px[o + 1] = lut[c + 1]; px[o + 2] = lut[c + 2];
        }
      }
    }
  }
  ctx.putImageData(image, 0, 0);
  canvas.style.width = `${width * scale}px`;
  canvas.style.height = `${height * scale}px`;
}

// One gray image without gaps (the model's input, the saliency).
function drawImage(canvas, bytes, h, w, lut) {
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const c = bytes[i] * 3;
    image.data.set([lut[c], lut[c + 1], lut[c + 2], 255], i * 4);
  }
  ctx.putImageData(image, 0, 0);
}

// An image the model takes: `c` planes of h×w bytes, gray (1) or RGB (3).
function drawInput(canvas, bytes, c, h, w) {
  if (c !== 3) { drawImage(canvas, bytes, h, w, GRAY); return; }
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(w, h);
  const n = h * w;
  for (let i = 0; i < n; i++) image.data.set([bytes[i], bytes[i + n], bytes[i + 2 * n], 255], i * 4);
  ctx.putImageData(image, 0, 0);
}

// Whether the model takes RGB images.
function isColour() {
  return state.model !== null && state.model.input[0] === 3;
}

// The name of class k (the model file's or the data's names; else its number).
function className(k) {
  const names = state.model && state.model.class_names;
  return names && k < names.length ? names[k] : String(k);
}

function fmt(x) {
  const a = Math.abs(x);
  return a !== 0 && (a < 0.01 || a >= 1000) ? x.toExponential(1) : x.toFixed(2);
}

function showError(message) {
  const e = $('error');
  e.textContent = message || '';
  e.hidden = !message;
}

// ---- the drawing pad ---------------------------------------------------------

const pad = $('pad');
const padCtx = pad.getContext('2d', { willReadFrequently: true });
let stroke = null; // the last point of the stroke being drawn

function clearPad() {
  padCtx.fillStyle = '#000';
  padCtx.fillRect(0, 0, pad.width, pad.height);
}

// The pad takes the model's aspect, its longer side 280 pixels: a test image of
// another shape then goes on it unstretched, and what is drawn over it reaches the
// model in the proportions it was drawn in (the server fits a drawing by scaling and
// cropping, never by stretching).
function shapePad([, h, w]) {
  const side = 280;
  pad.width = w >= h ? side : Math.max(1, Math.round(side * w / h));
  pad.height = h >= w ? side : Math.max(1, Math.round(side * h / w));
  pad.style.width = `${pad.width}px`;
  pad.style.height = `${pad.height}px`;
  clearPad();
}

function padPoint(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}

function drawSegment(from, to) {
  // A stroke 18 px wide on 280 px becomes about 2 px of a 20 px digit: MNIST's pen.
  padCtx.strokeStyle = isColour() ? $('pen').value : '#fff';
  padCtx.lineWidth = 18;
  padCtx.lineCap = 'round';
  padCtx.lineJoin = 'round';
  padCtx.beginPath();
  padCtx.moveTo(from[0], from[1]);
  padCtx.lineTo(to[0], to[1]);
  padCtx.stroke();
}

pad.addEventListener('pointerdown', (e) => {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  stroke = padPoint(e);
  drawSegment(stroke, stroke);
  changed({ kind: 'drawing' });
});
pad.addEventListener('pointermove', (e) => {
  if (!stroke) return;
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of events.length ? events : [e]) {
    const p = padPoint(ev);
    drawSegment(stroke, p);
    stroke = p;
  }
  changed({ kind: 'drawing' });
});
for (const type of ['pointerup', 'pointercancel']) {
  pad.addEventListener(type, () => { stroke = null; });
}

$('clear').addEventListener('click', () => { clearPad(); changed({ kind: 'drawing' }); });

function pickTest(index) {
  const n = state.model ? state.model.test_images : 0;
  if (!n) return;
  index = ((index % n) + n) % n;
  $('test-index').value = index;
  changed({ kind: 'test', index });
}
$('prev').addEventListener('click', () => pickTest(Number($('test-index').value) - 1));
$('next').addEventListener('click', () => pickTest(Number($('test-index').value) + 1));
$('random').addEventListener('click', () => pickTest(Math.floor(Math.random() * 1e9)));
$('test-index').addEventListener('change', () => pickTest(Number($('test-index').value)));

// ---- asking the server -------------------------------------------------------

function changed(source) {
  state.source = source;
  if (state.pendingSince === null) state.pendingSince = performance.now();
  if (!state.inFlight) update();
}

async function update() {
  const since = state.pendingSince;
  state.pendingSince = null;
  state.inFlight = true;
  const source = state.source;
  const t0 = performance.now();
  let tSend = t0;
  try {
    let response;
    if (source.kind === 'test') {
      response = await fetch(`/api/test/${source.index}${explainQuery('?')}`);
    } else {
      // A gray model gets the red plane (the pen is white); an RGB model gets all
      // three, interleaved as the canvas holds them.
      const channels = isColour() ? 3 : 1;
      const rgba = padCtx.getImageData(0, 0, pad.width, pad.height).data;
      const pixels = new Uint8Array(pad.width * pad.height * channels);
      for (let i = 0, j = 0; j < pixels.length; i += 4) {
        for (let k = 0; k < channels; k++) pixels[j++] = rgba[i + k];
      }
      state.lastDrawing = { width: pad.width, height: pad.height, channels, pixels };
      tSend = performance.now();
      const query = `width=${pad.width}&height=${pad.height}${channels === 3 ? '&channels=3' : ''}`;
      response = await fetch(`/api/drawing?${query}${explainQuery('&')}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream' },
        body: pixels,
      });
    }
    const tHeaders = performance.now();
    const result = await response.json();
    const t1 = performance.now();
    if (result.error) throw new Error(result.error);
    showError('');
    // Not over a drawing begun while the test image was on its way.
    if (source.kind === 'test' && state.source === source) showTestImage(result);
    render(result);
    const t2 = performance.now();
    noteTiming(since, { read: tSend - t0, answer: tHeaders - tSend, body: t1 - tHeaders, draw: t2 - t1, end: t2 }, result.server_ms.total);
  } catch (err) {
    showError(String(err.message || err));
  }
  state.inFlight = false;
  if (state.pendingSince !== null) update();
}

function explainQuery(sep) {
  return state.explain === null ? '' : `${sep}class=${state.explain}`;
}

// A picked test image goes on the pad (enlarged), so the user can draw over it.
function showTestImage(result) {
  const { channels: c, height: h, width: w } = result.input;
  const small = document.createElement('canvas');
  drawInput(small, bytesOf(result.input.pixels), c, h, w);
  clearPad();
  padCtx.imageSmoothingEnabled = true;
  padCtx.drawImage(small, 0, 0, pad.width, pad.height);
}

// `since` is the first change not yet shown, so a change made while an answer was
// on its way counts its wait too: this is the delay a person sees.
function noteTiming(since, t, server) {
  const total = t.end - since;
  state.timings.push(total);
  if (state.timings.length > 50) state.timings.shift();
  const sorted = [...state.timings].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const el = $('timing');
  Object.assign(el.dataset, {
    total: total.toFixed(2), median: median.toFixed(2), server: server.toFixed(2),
    read: t.read.toFixed(2), answer: t.answer.toFixed(2), body: t.body.toFixed(2), draw: t.draw.toFixed(2),
  });
  el.textContent = `Change → updated page: ${total.toFixed(1)} ms; median of the last ${sorted.length}: ` +
    `${median.toFixed(1)} ms. Last update: reading the pad ${t.read.toFixed(1)}, request to answer ` +
    `${t.answer.toFixed(1)} (server ${server.toFixed(1)}), JSON ${t.body.toFixed(1)}, drawing ${t.draw.toFixed(1)} ms.`;
}

// ---- showing an analysis -----------------------------------------------------

function render(result) {
  state.lastResult = result;
  state.updates += 1;
  const probs = result.probabilities;
  const top = result.predicted;

  const prediction = $('prediction');
  prediction.textContent = className(top);
  prediction.dataset.updates = String(state.updates);
  $('confidence').textContent = `${(100 * probs[top]).toFixed(1)}% sure`;

  const body = $('probabilities').tBodies[0];
  if (body.rows.length !== probs.length) {
    body.innerHTML = '';
    probs.forEach((_, k) => {
      const row = body.insertRow();
      row.innerHTML = '<td class="class"></td><td class="value"></td><td><div class="bar"><div></div></div></td>';
      row.cells[0].textContent = className(k);
      row.title = `Show the saliency of class ${className(k)}`;
      // Clicking the class already explained goes back to explaining the prediction.
      row.addEventListener('click', () => {
        state.explain = state.explain === k ? null : k;
        if (state.source) changed(state.source);
      });
    });
  }
  probs.forEach((p, k) => {
    const row = body.rows[k];
    row.className = (k === top ? 'best ' : '') + (result.saliency && k === result.saliency.class ? 'explained' : '');
    row.dataset.p = String(p);
    row.cells[1].textContent = p.toFixed(4);
    row.querySelector('.bar div').style.width = `${(100 * p).toFixed(1)}%`;
  });

  const { channels: c, height: h, width: w } = result.input;
  drawInput($('model-input'), bytesOf(result.input.pixels), c, h, w);
  const framed = c === 3 ? `scaled to ${w}×${h}` : 'framed as MNIST';
  $('input-source').textContent = result.test_index === undefined
    ? `your drawing, ${framed}`
    : `test image ${result.test_index}, labelled ${className(result.label)}`;

  const s = result.saliency;
  drawImage($('saliency'), bytesOf(s.magnitude), s.height, s.width, HEAT);
  drawImage($('times-input'), bytesOf(s.times_input), s.height, s.width, SIGNED_SQRT);
  $('saliency-class').textContent = s.class === top ? `the prediction, ${className(s.class)}` : `class ${className(s.class)}`;

  renderLayers(result.layers);
}

function renderLayers(layers) {
  const list = $('layer-list');
  const key = layers.map((l) => `${l.name}:${l.shape}`).join('|');
  if (key !== state.layerKey) {
    state.layerKey = key;
    list.innerHTML = '';
    for (const l of layers) {
      const fig = document.createElement('figure');
      fig.className = `layer depth-${Math.min(l.depth, 1)}`;
      fig.dataset.name = l.name;
      const shape = l.shape.join(' × ');
      fig.innerHTML = `<figcaption><b></b> ${l.kind} · ${shape}<br><span class="muted range"></span></figcaption>`;
      fig.querySelector('b').textContent = l.name;
      fig.insertBefore(document.createElement('canvas'), fig.firstChild);
      fig.firstChild.className = 'pixelated';
      list.appendChild(fig);
    }
  }
  layers.forEach((l, i) => {
    const fig = list.children[i];
    const [ph, pw] = l.plane;
    const bytes = bytesOf(l.bytes);
    if (ph === 1) {
      // A vector: rows of at most 64 cells, larger cells for short ones.
      const width = Math.min(pw, 64);
      const rows = Math.ceil(pw / width);
      const grid = new Uint8Array(rows * width);
      grid.set(bytes);
      drawTiles(fig.firstChild, grid, 1, rows, width, 1, GRAY, pw <= 16 ? 16 : pw <= 128 ? 8 : 4);
    } else {
      const cols = autoColumns(l.planes);
      const scale = Math.max(1, Math.min(8, Math.floor(64 / Math.max(ph, pw))));
      drawTiles(fig.firstChild, bytes, l.planes, ph, pw, cols, GRAY, scale);
    }
    const lo = Math.min(...l.ranges.map((r) => r[0]));
    const hi = Math.max(...l.ranges.map((r) => r[1]));
    fig.querySelector('.range').textContent = `values ${fmt(lo)} … ${fmt(hi)}`;
  });
}

// A convolution's filters: first layer one tile per filter (in colour for an RGB
// model: a weight's sign and size per plane, zero mid-gray), deeper layers one row
// per filter with a tile per input channel.
function drawFilters(canvas, f, first) {
  const [out, inC, kh, kw] = f.shape;
  const bytes = bytesOf(f.bytes);
  if (first && inC === 3 && isColour()) {
    drawTiles(canvas, bytes, out, kh, kw, autoColumns(out), null, Math.max(2, Math.floor(40 / Math.max(kh, kw))), true);
    canvas.dataset.tiles = 'rgb';
  } else if (inC === 1) {
    drawTiles(canvas, bytes, out, kh, kw, autoColumns(out), SIGNED, Math.max(2, Math.floor(40 / Math.max(kh, kw))));
  } else {
    drawTiles(canvas, bytes, out * inC, kh, kw, inC, SIGNED, Math.max(1, Math.floor(12 / Math.max(kh, kw))));
  }
}

function renderFilters(filters) {
  const list = $('filter-list');
  list.innerHTML = '';
  filters.forEach((f, i) => {
    const [out, inC, kh, kw] = f.shape;
    const details = document.createElement('details');
    details.className = 'filter';
    details.open = i === 0 || out * inC <= 256;
    const rgb = i === 0 && inC === 3 && isColour();
    const what = inC === 1 || rgb ? `${out} filters of ${kh}×${kw}${rgb ? ' × RGB' : ''}`
      : `${out} filters × ${inC} input channels, ${kh}×${kw}`;
    details.innerHTML = `<summary><b></b> ${f.kind} · ${what}</summary>`;
    details.querySelector('b').textContent = f.name;
    const canvas = document.createElement('canvas');
    canvas.className = 'pixelated';
    details.appendChild(canvas);
    list.appendChild(details);
    drawFilters(canvas, f, i === 0);
  });
}

// ---- a live training run -----------------------------------------------------

function drawChart(canvas, series, { title, yMin, yMax, xMax }) {
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || 420;
  const cssH = canvas.clientHeight || 150;
  canvas.width = cssW * dpr; canvas.height = cssH * dpr;
  const ctx = canvas.getContext('2d');
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, cssW, cssH);
  const left = 44; const right = 8; const top = 18; const bottom = 20;
  const w = cssW - left - right; const h = cssH - top - bottom;
  const X = (x) => left + (xMax > 0 ? x / xMax : 0) * w;
  const Y = (y) => top + (1 - (y - yMin) / (yMax - yMin || 1)) * h;
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#1d2330';
  ctx.fillText(title, left, 12);
  ctx.strokeStyle = '#d9dde5';
  ctx.fillStyle = '#5c6577';
  for (let i = 0; i <= 4; i++) {
    const v = yMin + (i / 4) * (yMax - yMin);
    ctx.beginPath(); ctx.moveTo(left, Y(v)); ctx.lineTo(left + w, Y(v)); ctx.stroke();
    ctx.fillText(fmt(v), 4, Y(v) + 4);
  }
  ctx.fillText('0', left, top + h + 14);
  ctx.fillText(`step ${xMax}`, left + w - 60, top + h + 14);
  // Lines stay inside the plot: the first steps' loss is often above the scale.
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top - 4, w + 4, h + 8);
  ctx.clip();
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = s.width || 1.5;
    if (s.dots) {
      for (const [x, y] of s.points) { ctx.beginPath(); ctx.arc(X(x), Y(y), 3.5, 0, 2 * Math.PI); ctx.fill(); }
    } else {
      ctx.beginPath();
      s.points.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
      ctx.stroke();
    }
  }
  ctx.restore();
  let lx = left + w;
  for (const s of [...series].reverse()) {
    lx -= ctx.measureText(s.label).width + 22;
    ctx.fillStyle = s.color; ctx.fillRect(lx, 5, 10, 8);
    ctx.fillStyle = '#1d2330'; ctx.fillText(s.label, lx + 13, 12);
  }
}

// An exponential moving average, to see the trend through the batches' noise.
function smooth(points, alpha) {
  let m = null;
  return points.map(([x, y]) => { m = m === null ? y : m + alpha * (y - m); return [x, m]; });
}

function renderTraining(live) {
  const s = state.live;
  const steps = s.steps;
  const xMax = Math.max(live.epochs_planned * live.batches_per_epoch, steps.length ? steps[steps.length - 1][0] : 1);
  // About a 20-step window on a long run, shorter on a short one.
  const alpha = Math.min(0.5, Math.max(0.05, 10 / Math.max(steps.length, 1)));
  const loss = steps.map(([x, l]) => [x, l]);
  const maxLoss = Math.max(0.5, ...loss.slice(Math.floor(loss.length * 0.02)).map((p) => p[1]));
  drawChart($('loss-chart'), [
    { label: 'batch loss', color: '#c5cde0', points: loss, width: 1 },
    { label: 'smoothed', color: '#3b5bdb', points: smooth(loss, alpha), width: 2 },
    { label: 'test loss', color: '#d9480f', dots: true, points: s.epochs.filter((e) => e.test_loss !== null).map((e) => [e.epoch * live.batches_per_epoch, e.test_loss]) },
  ], { title: 'Loss', yMin: 0, yMax: Math.min(maxLoss, 3), xMax });
  const acc = steps.map(([x, , a]) => [x, a]);
  drawChart($('accuracy-chart'), [
    { label: 'batch accuracy (smoothed)', color: '#3b5bdb', points: smooth(acc, alpha), width: 2 },
    { label: 'test accuracy', color: '#d9480f', dots: true, points: s.epochs.filter((e) => e.test_accuracy !== null).map((e) => [e.epoch * live.batches_per_epoch, e.test_accuracy]) },
  ], { title: 'Accuracy', yMin: acc.length && Math.min(...acc.map((p) => p[1])) > 0.8 ? 0.8 : 0, yMax: 1, xMax });
  const last = s.epochs[s.epochs.length - 1];
  const testAcc = last && last.test_accuracy !== null ? `, test accuracy after epoch ${last.epoch}: ${(100 * last.test_accuracy).toFixed(2)}%` : '';
  $('train-status').textContent = live.done
    ? `Finished: ${live.steps_total} steps${testAcc}.`
    : `Epoch ${live.epoch} of ${live.epochs_planned}, batch ${live.batch} of ${live.batches_per_epoch}${testAcc}.`;
}

async function pollTraining() {
  try {
    const live = await (await fetch(`/api/training?since=${state.live.since}`)).json();
    const s = state.live;
    s.steps.push(...live.steps);
    s.since = live.steps_total;
    s.epochs = live.epochs;
    s.done = live.done;
    renderTraining(live);
    if (live.filters && live.filters.step !== s.filtersStep) {
      s.filtersStep = live.filters.step;
      drawFilters($('live-filters'), live.filters.filter, true);
      $('live-filters-step').textContent = `at step ${live.filters.step}`;
      // The model changed: show what the new one makes of the same input.
      if (state.source && !state.inFlight) changed(state.source);
    }
  } catch (err) {
    showError(`training figures: ${err.message || err}`);
  }
  if (!state.live.done) setTimeout(pollTraining, 500);
}

// ---- start -------------------------------------------------------------------

// An RGB model: a pen colour, and words that do not promise MNIST's framing.
function showColourControls([, h, w]) {
  $('pen-label').hidden = false;
  $('input-heading').textContent = 'Draw, or pick a test image';
  $('pad-hint').textContent = `Draw with the mouse, a pen or a finger, in the pen's colour on black. ` +
    `The model sees the ${w}×${h} RGB image below: your drawing scaled to it, as predict scales a photo.`;
}

async function start() {
  clearPad();
  try {
    const model = await (await fetch('/api/model')).json();
    state.model = model;
    $('title').textContent = `${model.title} · ${model.parameters.toLocaleString('en')} parameters`;
    document.title = `ferrocnn explorer · ${model.title}`;
    $('summary').textContent = model.summary;
    shapePad(model.input);
    if (isColour()) showColourControls(model.input);
    renderFilters(model.filters);
    if (!model.test_images) {
      for (const id of ['prev', 'next', 'random', 'test-index']) $(id).disabled = true;
    }
    $('test-index').max = Math.max(0, model.test_images - 1);
    if (model.live) { $('training').hidden = false; pollTraining(); }
    if (model.test_images) pickTest(0); else changed({ kind: 'drawing' });
  } catch (err) {
    showError(`cannot reach the server: ${err.message || err}`);
  }
}

start();
