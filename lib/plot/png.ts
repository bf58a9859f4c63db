/**
 * A small raster canvas (RGBA) with lines, rectangles, markers and a 5x7 bitmap font, encoded as PNG with the
 * platform's deflate: static figures without a browser.
 *
 * @module
 */

/** An RGB colour, components 0-255. */
export type Rgb = [number, number, number];

// 5x7 glyphs for ASCII 32..126: 7 rows per glyph, each row 5 bits (leftmost = 16) written in base 32.
const FONT =
  "00000004444404aaa0000aavavaa4fke5u4op248j3cik8lid44800002488842842224804lel40044v4400000c48000v00000000cc01248g0ehjlphe4c4444eeh1248vv2421he26aiv22vgu11he68guhhev124888ehhehheehhf12c0cc0cc00cc0c48248g84200v0v008421248eh12404ehnlngeehhvhhhuhhuhhuehggghesihhhisvgguggvvggugggehgnhhfhhhvhhhe44444e72222ichikokihggggggvhrllhhhhhpljhhehhhhheuhhugggehhhliduhhukihfgge11uv444444hhhhhhehhhhha4hhhlllahha4ahhhha4444v1248gve88888e0g84210e22222e4ah0000000000v840000000e1fhfggmphhu00egghe11djhhf00ehvge698s8880fhhf1eggmphhh40c444e20622icggikokic44444e00qllhh00mphhh00ehhhe00uhugg00djf1100mpggg00ege1u88s889600hhhjd00hhha400hhlla00ha4ah00hhf1e00v248v244844244444448442448008l200";

/** An RGBA raster. */
export class Canvas {
  /** RGBA bytes, row by row. */
  readonly pixels: Uint8Array;

  /** A canvas of the given size filled with the background colour. */
  constructor(readonly width: number, readonly height: number, background: Rgb = [255, 255, 255]) {
    this.pixels = new Uint8Array(width * height * 4);
    for (let i = 0; i < width * height; i++) this.pixels.set([...background, 255], i * 4);
  }

  /** Blends a colour into pixel (x, y) with opacity a (0-1). */
  blend(x: number, y: number, c: Rgb, a = 1): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || a <= 0) return;
    const i = (y * this.width + x) * 4, p = this.pixels;
    for (let k = 0; k < 3; k++) p[i + k] = Math.round(p[i + k] * (1 - a) + c[k] * a);
  }

  /** Fills a rectangle. */
  fillRect(x: number, y: number, w: number, h: number, c: Rgb, a = 1): void {
    for (let yy = Math.round(y); yy < Math.round(y + h); yy++) {
      for (let xx = Math.round(x); xx < Math.round(x + w); xx++) this.blend(xx, yy, c, a);
    }
  }

  /** A line of the given width (anti-aliased by distance to the segment). */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, width = 1.5, dash?: [number, number]): void {
    const minX = Math.floor(Math.min(x0, x1) - width), maxX = Math.ceil(Math.max(x0, x1) + width);
    const minY = Math.floor(Math.min(y0, y1) - width), maxY = Math.ceil(Math.max(y0, y1) + width);
    const dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy, len = Math.sqrt(len2);
    for (let y = minY; y <= maxY; y++) {
      for (let x = minX; x <= maxX; x++) {
        let t = len2 > 0 ? ((x - x0) * dx + (y - y0) * dy) / len2 : 0;
        t = Math.max(0, Math.min(1, t));
        if (dash && len > 0) {
          const along = t * len;
          if (along % (dash[0] + dash[1]) > dash[0]) continue;
        }
        const px = x0 + t * dx - x, py = y0 + t * dy - y;
        const d = Math.sqrt(px * px + py * py);
        const a = Math.max(0, Math.min(1, width / 2 + 0.5 - d));
        if (a > 0) this.blend(x, y, c, a);
      }
    }
  }

  /** A filled circle marker. */
  circle(cx: number, cy: number, r: number, c: Rgb): void {
    for (let y = Math.floor(cy - r - 1); y <= Math.ceil(cy + r + 1); y++) {
      for (let x = Math.floor(cx - r - 1); x <= Math.ceil(cx + r + 1); x++) {
        const d = Math.hypot(x - cx, y - cy);
        this.blend(x, y, c, Math.max(0, Math.min(1, r + 0.5 - d)));
      }
    }
  }

  /** Text with the 5x7 font at integer scale; anchor left, centre or right of x; y is the top. */
  text(
    s: string,
    x: number,
    y: number,
    c: Rgb,
    scale = 2,
    anchor: "left" | "center" | "right" = "left",
  ): void {
    const w = textWidth(s, scale);
    let cx = anchor === "left" ? x : anchor === "center" ? x - w / 2 : x - w;
    for (const ch of s) {
      const code = ch.charCodeAt(0);
      const idx = code >= 32 && code <= 126 ? code - 32 : 31; // '?' for anything else
      for (let row = 0; row < 7; row++) {
        const bits = parseInt(FONT[idx * 7 + row], 32);
        for (let col = 0; col < 5; col++) {
          if (bits & (16 >> col)) this.fillRect(cx + col * scale, y + row * scale, scale, scale, c);
        }
      }
      cx += 6 * scale;
    }
  }

  /** Text rotated 90 degrees counter-clockwise (for a y-axis label); (x, y) is the centre. */
  textVertical(s: string, x: number, y: number, c: Rgb, scale = 2): void {
    const w = textWidth(s, scale);
    let cy = y + w / 2;
    for (const ch of s) {
      const code = ch.charCodeAt(0);
      const idx = code >= 32 && code <= 126 ? code - 32 : 31;
      for (let row = 0; row < 7; row++) {
        const bits = parseInt(FONT[idx * 7 + row], 32);
        for (let col = 0; col < 5; col++) {
          if (bits & (16 >> col)) {
            this.fillRect(x - 3.5 * scale + row * scale, cy - (col + 1) * scale, scale, scale, c);
          }
        }
      }
      cy -= 6 * scale;
    }
  }
}

/** Width in pixels of text at a scale. */
export function textWidth(s: string, scale = 2): number {
  return s.length * 6 * scale - scale;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function zlib(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Encodes a canvas as PNG (8-bit RGBA, no interlace). */
export async function encodePng(canvas: Canvas): Promise<Uint8Array> {
  const { width, height, pixels } = canvas;
  const raw = new Uint8Array((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 4 + 1)] = 0; // filter: none
    raw.set(pixels.subarray(y * width * 4, (y + 1) * width * 4), y * (width * 4 + 1) + 1);
  }
  const idat = await zlib(raw);
  const chunk = (type: string, data: Uint8Array) => {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
    out.set(data, 8);
    view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  const hv = new DataView(ihdr.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  ihdr.set([8, 6, 0, 0, 0], 8);
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
