/** The last N lines of something, in a fixed array: pushing costs no allocation past the line itself. */
export class LineRing {
  readonly #lines: string[];
  #next = 0;
  #count = 0;

  constructor(readonly capacity: number) {
    this.#lines = new Array<string>(capacity).fill("");
  }

  push(line: string): void {
    this.#lines[this.#next] = line;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#count < this.capacity) this.#count++;
  }

  /** Oldest first. */
  lines(): string[] {
    const start = (this.#next - this.#count + this.capacity) % this.capacity;
    const out: string[] = [];
    for (let i = 0; i < this.#count; i++) out.push(this.#lines[(start + i) % this.capacity] as string);
    return out;
  }
}
