/*
 * The buffers ipc-frames.ts writes and reads: little-endian numbers,
 * length-prefixed UTF-8 and bytes, and v8.serialize() blobs.
 */
import { deserialize, serialize } from 'node:v8'

/**
 * A growable buffer written front to back, reused from frame to frame.
 */
export class Writer {
  buf = Buffer.allocUnsafe(64 * 1024)
  off = 0

  reset (): this {
    this.off = 0
    if (this.buf.length > 1024 * 1024) this.buf = Buffer.allocUnsafe(64 * 1024) // after a batch of large payloads
    return this
  }

  ensure (n: number): void {
    if (this.off + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n))
    this.buf.copy(next, 0, 0, this.off)
    this.buf = next
  }

  u8 (v: number): void { this.ensure(1); this.buf[this.off++] = v }
  u16 (v: number): void { this.ensure(2); this.off = this.buf.writeUInt16LE(v, this.off) }
  u32 (v: number): void { this.ensure(4); this.off = this.buf.writeUInt32LE(v, this.off) }
  f64 (v: number): void { this.ensure(8); this.off = this.buf.writeDoubleLE(v, this.off) }

  /** A string as UTF-8 with a u32 length (u16 with `short`). */
  str (s: string, short = false): void {
    const head = short ? 2 : 4
    this.ensure(head + 3 * s.length)
    // utf8Write: write(s, offset, 'utf8') without its argument checks
    const n = (this.buf as unknown as { utf8Write(s: string, offset: number): number }).utf8Write(s, this.off + head)
    if (short) this.buf.writeUInt16LE(n, this.off)
    else this.buf.writeUInt32LE(n, this.off)
    this.off += head + n
  }

  bytes (b: Uint8Array): void {
    this.ensure(4 + b.byteLength)
    this.off = this.buf.writeUInt32LE(b.byteLength, this.off)
    this.buf.set(b, this.off)
    this.off += b.byteLength
  }

  blob (value: unknown): void { this.bytes(serialize(value)) }

  /** The frame: a view of what was written, valid until the next frame is written. */
  done (): Buffer { return this.buf.subarray(0, this.off) }
}


export class Reader {
  readonly buf: Buffer
  off = 0

  constructor (frame: Uint8Array) {
    this.buf = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength)
  }

  u8 (): number { return this.buf[this.off++]! }
  u16 (): number { const v = this.buf.readUInt16LE(this.off); this.off += 2; return v }
  u32 (): number { const v = this.buf.readUInt32LE(this.off); this.off += 4; return v }
  f64 (): number { const v = this.buf.readDoubleLE(this.off); this.off += 8; return v }

  str (short = false): string {
    const n = short ? this.u16() : this.u32()
    // utf8Slice: toString('utf8', ...) without its argument checks (a third of a decode's time)
    const s = (this.buf as unknown as { utf8Slice(start: number, end: number): string }).utf8Slice(this.off, this.off + n)
    this.off += n
    return s
  }

  /** The next length-prefixed bytes as UTF-8 text, without moving on (bytes() reads them next). */
  text (): string {
    const n = this.buf.readUInt32LE(this.off)
    return (this.buf as unknown as { utf8Slice(start: number, end: number): string }).utf8Slice(this.off + 4, this.off + 4 + n)
  }

  /**
   * A copy: a view would keep the whole frame alive. With `own`, a copy with
   * an ArrayBuffer of its own (what crosses into an isolate: a view, or a
   * pooled Buffer, could cross whole); else a Buffer, pooled when small.
   */
  bytes (own: boolean): Uint8Array {
    const n = this.u32()
    const start = this.off
    this.off += n
    if (!own) return Buffer.from(this.buf.subarray(start, start + n))
    const at = this.buf.byteOffset + start
    return new Uint8Array(this.buf.buffer.slice(at, at + n))
  }

  blob (): unknown {
    const n = this.u32()
    const value = deserialize(this.buf.subarray(this.off, this.off + n))
    this.off += n
    return value
  }
}
