/**
 * A small SVG document builder for the figures: lines, polylines, markers, rectangles, text and embedded images,
 * in pixel coordinates, with the text set in DejaVu Sans (the font the PNG renderer is given, see `raster.ts`).
 *
 * @module
 */

/** A colour as red, green, blue (0-255). */
export type Rgb = [number, number, number];

/** The font family every figure uses (shipped with the toolkit for the PNG renderer). */
export const FONT_FAMILY = "DejaVu Sans";

/** How a line or outline is drawn. */
export interface Stroke {
  /** Colour. */
  color: Rgb;
  /** Width in pixels (default 1). */
  width?: number;
  /** Dash pattern: on and off lengths in pixels (repeated). */
  dash?: number[];
  /** Opacity 0-1 (default 1). */
  opacity?: number;
}

/** How text is set. */
export interface TextStyle {
  /** Font size in pixels (default 14). */
  size?: number;
  /** Horizontal alignment at x (default start). */
  anchor?: "start" | "middle" | "end";
  /** Bold. */
  bold?: boolean;
  /** Colour (default near-black). */
  color?: Rgb;
  /** Rotation in degrees about (x, y), e.g. -90 for a y-axis label. */
  rotate?: number;
  /** Vertical alignment at y: the baseline (default), or the middle of lower-case letters. */
  middle?: boolean;
}

/** The near-black of text and axes. */
export const INK: Rgb = [40, 40, 40];

/** `rgb(r,g,b)` for SVG attributes. */
export const css = (c: Rgb): string => `rgb(${c.map((v) => Math.round(v)).join(",")})`;

/** Escapes text for SVG content and attribute values. */
export const esc = (s: string): string =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");

const n = (v: number) => Number(v.toFixed(2));

// Advance widths of DejaVu Sans in em (close enough for laying out legends and labels).
const NARROW = new Set("iljtfrI.,:;'!|()[] ");
const WIDE = new Set("mwMW@%");

/** Approximate width of `text` in pixels at `size`, as DejaVu Sans sets it. */
export function textWidth(text: string, size = 14): number {
  let em = 0;
  for (const ch of text) {
    em += NARROW.has(ch)
      ? 0.32
      : WIDE.has(ch)
      ? 0.92
      : /[0-9]/.test(ch)
      ? 0.64
      : /[A-Z]/.test(ch)
      ? 0.72
      : 0.6;
  }
  return em * size;
}

function strokeAttrs(s: Stroke): string {
  return `stroke="${css(s.color)}" stroke-width="${n(s.width ?? 1)}"` +
    (s.dash ? ` stroke-dasharray="${s.dash.join(" ")}"` : "") +
    (s.opacity !== undefined && s.opacity < 1 ? ` stroke-opacity="${s.opacity}"` : "");
}

/** An SVG document under construction. */
export class Svg {
  #body: string[] = [];
  #defs: string[] = [];
  #ids = 0;

  /** A blank white document of `width` x `height` pixels. */
  constructor(readonly width: number, readonly height: number) {}

  /** A straight line. */
  line(x1: number, y1: number, x2: number, y2: number, s: Stroke): void {
    this.#body.push(`<line x1="${n(x1)}" y1="${n(y1)}" x2="${n(x2)}" y2="${n(y2)}" ${strokeAttrs(s)}/>`);
  }

  /** A polyline through `points` (no fill); `clip` names a clip region from {@linkcode Svg.clipRect}. */
  polyline(points: [number, number][], s: Stroke, clip?: string): void {
    if (points.length < 2) return;
    const pts = points.map(([x, y]) => `${n(x)},${n(y)}`).join(" ");
    this.#body.push(
      `<polyline points="${pts}" fill="none" ${strokeAttrs(s)} stroke-linejoin="round"` +
        `${clip ? ` clip-path="url(#${clip})"` : ""}/>`,
    );
  }

  /** A filled circle, optionally outlined. */
  circle(cx: number, cy: number, r: number, fill: Rgb | "none", outline?: Stroke, opacity = 1): void {
    this.#body.push(
      `<circle cx="${n(cx)}" cy="${n(cy)}" r="${n(r)}" fill="${fill === "none" ? "none" : css(fill)}"` +
        `${opacity < 1 ? ` fill-opacity="${opacity}"` : ""}${outline ? ` ${strokeAttrs(outline)}` : ""}/>`,
    );
  }

  /** Many small filled circles of one colour in one path (scatter plots with thousands of points). */
  dots(points: [number, number][], r: number, fill: Rgb, opacity = 1): void {
    if (!points.length) return;
    const d = points.map(([x, y]) =>
      `M${n(x - r)},${n(y)}a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0`
    )
      .join("");
    this.#body.push(`<path d="${d}" fill="${css(fill)}"${opacity < 1 ? ` fill-opacity="${opacity}"` : ""}/>`);
  }

  /** A rectangle, filled and/or outlined. */
  rect(
    x: number,
    y: number,
    w: number,
    h: number,
    fill: Rgb | "none",
    outline?: Stroke,
    opacity = 1,
  ): void {
    this.#body.push(
      `<rect x="${n(x)}" y="${n(y)}" width="${n(w)}" height="${n(h)}" ` +
        `fill="${fill === "none" ? "none" : css(fill)}"${opacity < 1 ? ` fill-opacity="${opacity}"` : ""}` +
        `${outline ? ` ${strokeAttrs(outline)}` : ""}/>`,
    );
  }

  /** Text at (x, y). */
  text(x: number, y: number, text: string, st: TextStyle = {}): void {
    const size = st.size ?? 14;
    const transform = st.rotate ? ` transform="rotate(${st.rotate} ${n(x)} ${n(y)})"` : "";
    this.#body.push(
      `<text x="${n(x)}" y="${n(y + (st.middle ? size * 0.35 : 0))}" font-size="${size}"` +
        `${st.anchor && st.anchor !== "start" ? ` text-anchor="${st.anchor}"` : ""}` +
        `${st.bold ? ` font-weight="bold"` : ""} fill="${css(st.color ?? INK)}"${transform}>${
          esc(text)
        }</text>`,
    );
  }

  /** A PNG image (embedded as a data URI) stretched over the rectangle, pixels kept sharp. */
  image(x: number, y: number, w: number, h: number, png: Uint8Array): void {
    let bin = "";
    for (let i = 0; i < png.length; i += 0x8000) bin += String.fromCharCode(...png.subarray(i, i + 0x8000));
    this.#body.push(
      `<image x="${n(x)}" y="${n(y)}" width="${n(w)}" height="${n(h)}" preserveAspectRatio="none" ` +
        `image-rendering="optimizeSpeed" style="image-rendering:pixelated" href="data:image/png;base64,${
          btoa(bin)
        }"/>`,
    );
  }

  /** A clip region (a rectangle); returns its id for {@linkcode Svg.polyline}. */
  clipRect(x: number, y: number, w: number, h: number): string {
    const id = `clip${++this.#ids}`;
    this.#defs.push(
      `<clipPath id="${id}"><rect x="${n(x)}" y="${n(y)}" width="${n(w)}" height="${n(h)}"/></clipPath>`,
    );
    return id;
  }

  /** The document. */
  toString(): string {
    return `<?xml version="1.0" encoding="UTF-8"?>\n` +
      `<svg xmlns="http://www.w3.org/2000/svg" width="${this.width}" height="${this.height}" ` +
      `viewBox="0 0 ${this.width} ${this.height}" font-family="${FONT_FAMILY}, DejaVu Sans, Verdana, sans-serif">\n` +
      (this.#defs.length ? `<defs>${this.#defs.join("")}</defs>\n` : "") +
      `<rect width="100%" height="100%" fill="white"/>\n` +
      this.#body.join("\n") + "\n</svg>\n";
  }
}
