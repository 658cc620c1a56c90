import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import type { Readable } from "node:stream";
import type { ExitStatus } from "./errors.js";
import { LineSplitter } from "./lines.js";

export interface ProcessConfig {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
}

export interface ProcessListener {
  stdoutLine(line: string): void;
  stderrLine(line: string): void;
  warning(message: string): void;
}

/** How long to wait for stdout/stderr to close after the process itself exited (grandchildren may hold them). */
const CLOSE_GRACE_MS = 500;

/**
 * One runtime child process: line framing of its stdio and a bounded stop.
 * `exited` resolves once, after every stdout line was delivered.
 */
export class RuntimeProcess {
  readonly exited: Promise<ExitStatus>;
  private status: ExitStatus | undefined;
  private settle!: (status: ExitStatus) => void;
  private readonly child: ChildProcessWithoutNullStreams;

  constructor(config: ProcessConfig, private readonly listener: ProcessListener) {
    this.exited = new Promise((resolve) => (this.settle = resolve));
    this.child = spawn(config.command, config.args, { cwd: config.cwd, env: config.env, stdio: "pipe" });
    readLines(this.child.stdout, (line) => listener.stdoutLine(line));
    readLines(this.child.stderr, (line) => listener.stderrLine(line.replace(/\r$/, "")));
    this.child.stdin.on("error", (error) => listener.warning(`runtime stdin: ${error.message}`));
    this.watchExit();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.status === undefined;
  }

  get exitStatus(): ExitStatus | undefined {
    return this.status;
  }

  /** Writes one line; false when stdin can no longer be written. */
  writeLine(text: string): boolean {
    const stdin = this.child.stdin;
    if (!this.alive || stdin.destroyed || stdin.writableEnded) return false;
    stdin.write(text + "\n");
    return true;
  }

  endInput(): void {
    if (!this.child.stdin.writableEnded) this.child.stdin.end();
  }

  signal(signal: NodeJS.Signals): void {
    if (this.alive && this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  /** The exit status, or undefined if the process is still running after `ms`. */
  async waitForExit(ms: number): Promise<ExitStatus | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Close stdin and wait; then SIGTERM and wait; then SIGKILL and wait. Each wait is at most `stepMs`. */
  async stop(stepMs: number): Promise<ExitStatus> {
    this.endInput();
    for (const signal of [undefined, "SIGTERM", "SIGKILL"] as const) {
      if (signal) this.signal(signal);
      const status = await this.waitForExit(stepMs);
      if (status) return status;
    }
    this.listener.warning(`runtime pid ${this.pid} did not exit after SIGKILL`);
    return { code: null, signal: "SIGKILL" };
  }

  private watchExit(): void {
    this.child.on("error", (error) => {
      if (this.child.pid === undefined) this.finish({ code: null, signal: null, error });
      else this.listener.warning(`runtime process: ${error.message}`);
    });
    this.child.on("exit", (code, signal) => {
      setTimeout(() => this.finish({ code, signal }), CLOSE_GRACE_MS).unref();
    });
    this.child.on("close", (code, signal) => this.finish({ code, signal }));
  }

  private finish(status: ExitStatus): void {
    if (this.status) return;
    this.status = status;
    this.child.stdout.destroy();
    this.child.stderr.destroy();
    this.settle(status);
  }
}

function readLines(stream: Readable, onLine: (line: string) => void): void {
  const splitter = new LineSplitter();
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => splitter.push(chunk).forEach(onLine));
  stream.on("end", () => splitter.flush().forEach(onLine));
}
