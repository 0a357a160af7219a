// A tiny DOM helper, toasts and SVG charts: enough for a readable reference app.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | boolean | number | EventListener | undefined>;

export function h(tag: string, attrs: Attrs = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function toast(title: string, lines: string[] = [], kind: "ok" | "error" = "ok", colour?: string): void {
  const box = h(
    "div",
    { class: `toast ${kind}`, role: "status", "data-testid": "toast", style: colour ? `border-color:${colour}` : undefined },
    h("strong", {}, title),
    lines.length ? h("ul", {}, ...lines.map((l) => h("li", {}, l))) : null,
  );
  document.getElementById("toasts")?.append(box);
  setTimeout(() => box.remove(), 12000);
}

export function money(amount: number | null | undefined, currency: string | null | undefined): string {
  if (amount === null || amount === undefined) return "—";
  return new Intl.NumberFormat("en-US", { style: "currency", currency: (currency ?? "usd").toUpperCase() }).format(amount / 100);
}

export function date(unix: number | null | undefined): string {
  if (!unix) return "—";
  return new Date(unix * 1000).toLocaleDateString("en-US", { year: "numeric", month: "long", day: "numeric" });
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A horizontal bar chart of `[label, value]`. */
export function barChart(rows: [string, number][], label: string): Element {
  const width = 420;
  const bar = 22;
  const max = Math.max(1, ...rows.map(([, v]) => v));
  const height = Math.max(1, rows.length) * (bar + 6) + 4;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": label });
  rows.forEach(([name, value], i) => {
    const y = i * (bar + 6) + 2;
    const w = Math.max(2, (value / max) * (width - 200));
    chart.append(svg("text", { x: 0, y: y + 15, class: "chart-label" }, name.replace(/_/g, " ")));
    chart.append(svg("rect", { x: 170, y, width: w, height: bar, rx: 3, class: "chart-bar" }));
    chart.append(svg("text", { x: 176 + w, y: y + 15, class: "chart-value" }, String(value)));
  });
  if (!rows.length) chart.append(svg("text", { x: 0, y: 16, class: "chart-label" }, "no data in this period"));
  return chart;
}

/** A column chart of values per day. */
export function columnChart(days: [string, number][], label: string): Element {
  const col = 26;
  const height = 140;
  const max = Math.max(1, ...days.map(([, v]) => v));
  const chart = svg("svg", { width: days.length * (col + 6) + 4, height: height + 34, role: "img", "aria-label": label });
  days.forEach(([day, value], i) => {
    const x = i * (col + 6) + 2;
    const hgt = (value / max) * height;
    chart.append(svg("rect", { x, y: height - hgt + 14, width: col, height: Math.max(1, hgt), rx: 3, class: "chart-bar" }));
    chart.append(svg("text", { x: x + col / 2, y: height - hgt + 10, class: "chart-value", "text-anchor": "middle" }, String(value)));
    chart.append(svg("text", { x: x + col / 2, y: height + 30, class: "chart-label", "text-anchor": "middle" }, day.slice(8)));
  });
  return chart;
}

/** A ring showing a rate between 0 and 1. */
export function rateRing(rate: number, label: string): Element {
  const r = 40;
  const c = 2 * Math.PI * r;
  const chart = svg("svg", { width: 110, height: 110, role: "img", "aria-label": label });
  chart.append(svg("circle", { cx: 55, cy: 55, r, class: "ring-track" }));
  chart.append(
    svg("circle", { cx: 55, cy: 55, r, class: "ring-value", "stroke-dasharray": `${c * rate} ${c}`, transform: "rotate(-90 55 55)" }),
  );
  chart.append(svg("text", { x: 55, y: 60, "text-anchor": "middle", class: "ring-text" }, `${Math.round(rate * 100)}%`));
  return chart;
}
