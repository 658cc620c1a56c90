/** Splits a text stream on "\n" into whole lines; a line may span any number of chunks. */
export class LineSplitter {
  private partial: string[] = [];

  push(chunk: string): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let end = chunk.indexOf("\n"); end !== -1; end = chunk.indexOf("\n", start)) {
      this.partial.push(chunk.slice(start, end));
      lines.push(this.partial.join(""));
      this.partial = [];
      start = end + 1;
    }
    if (start < chunk.length) this.partial.push(chunk.slice(start));
    return lines;
  }

  /** The unterminated rest, if any (at end of stream). */
  flush(): string[] {
    const rest = this.partial.join("");
    this.partial = [];
    return rest ? [rest] : [];
  }
}
