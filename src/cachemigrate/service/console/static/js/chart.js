// A line chart of one series over time, drawn as SVG: no library, scales with its box.
const NS = "http://www.w3.org/2000/svg";
const W = 400;
const H = 170;
const PAD = { left: 62, right: 10, top: 14, bottom: 26 };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// 1, 2 or 5 times a power of ten, at least v: round axis maxima.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const clock = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export class LineChart {
  // format(v) -> text of a value; id names the chart for tests and labels.
  constructor({ id, title, format }) {
    this.format = format;
    this.figure = document.createElement("figure");
    this.figure.className = "chart";
    this.figure.dataset.chart = id;
    const caption = document.createElement("figcaption");
    this.titleText = title;
    this.caption = caption;
    this.svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img"});
    this.figure.append(caption, this.svg);
    this.update([]);
  }

  // samples: [{t: ms since epoch, v: number}], oldest first.
  update(samples) {
    const svg = this.svg;
    svg.replaceChildren();
    const last = samples.length ? samples[samples.length - 1].v : null;
    this.caption.textContent = `${this.titleText}: ${last === null ? "no samples yet" : this.format(last)}`;
    this.figure.dataset.points = String(samples.length);
    this.figure.dataset.last = last === null ? "" : String(last);
    const x0 = PAD.left;
    const x1 = W - PAD.right;
    const y0 = H - PAD.bottom;
    const y1 = PAD.top;
    const max = niceMax(Math.max(0, ...samples.map((s) => s.v)));
    svg.append(el("line", { x1: x0, y1: y0, x2: x1, y2: y0, class: "axis" }));
    svg.append(el("line", { x1: x0, y1: y1, x2: x1, y2: y1, class: "grid" }));
    svg.append(el("line", { x1: x0, y1: (y0 + y1) / 2, x2: x1, y2: (y0 + y1) / 2, class: "grid" }));
    svg.append(el("text", { x: x0 - 6, y: y1 + 4, class: "tick", "text-anchor": "end" }, this.format(max)));
    svg.append(el("text", { x: x0 - 6, y: y0 + 4, class: "tick", "text-anchor": "end" }, this.format(0)));
    if (!samples.length) {
      svg.setAttribute("aria-label", `${this.titleText}: no samples yet`);
      return;
    }
    const t0 = samples[0].t;
    const span = Math.max(1, samples[samples.length - 1].t - t0);
    const px = (t) => x0 + ((t - t0) / span) * (x1 - x0);
    const py = (v) => y0 - (Math.max(0, v) / max) * (y0 - y1);
    const pts = samples.map((s) => `${px(s.t).toFixed(1)},${py(s.v).toFixed(1)}`);
    if (samples.length === 1) pts.push(`${x1},${py(samples[0].v).toFixed(1)}`);
    svg.append(el("polygon", { points: `${x0},${y0} ${pts.join(" ")} ${x1},${y0}`, class: "area" }));
    svg.append(el("polyline", { points: pts.join(" "), class: "line" }));
    svg.append(el("text", { x: x0, y: H - 6, class: "tick" }, clock(t0)));
    svg.append(el("text", { x: x1, y: H - 6, class: "tick", "text-anchor": "end" }, clock(samples[samples.length - 1].t)));
    const peak = Math.max(...samples.map((s) => s.v));
    svg.setAttribute(
      "aria-label",
      `${this.titleText}: now ${this.format(last)}, peak ${this.format(peak)}, ${samples.length} samples since ${clock(t0)}`,
    );
  }
}
