import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

let clockTicks: number | undefined;

/** Kernel clock ticks per second (`getconf CLK_TCK`), the unit of utime and stime. */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU time (user + system, every thread) of a process so far, in microseconds; null if it is gone. */
export function cpuTimeUs(pid: number): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name may hold spaces and parentheses: fields start after the last ")".
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return ((utime + stime) * 1e6) / clockTicksPerSecond();
}

/** What a process has written so far (every write syscall: sockets, pipes, files); null if unreadable. */
export interface WriteCounts {
  /** Bytes passed to write syscalls (`wchar`). */
  readonly bytes: number;
  /** Write syscalls (`syscw`: write, writev, send...). */
  readonly calls: number;
}

export function writeCounts(pid: number): WriteCounts | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/io`, 'utf8');
  } catch {
    return null;
  }
  const bytes = Number(/^wchar:\s+(\d+)/m.exec(text)?.[1]);
  const calls = Number(/^syscw:\s+(\d+)/m.exec(text)?.[1]);
  return Number.isFinite(bytes) && Number.isFinite(calls) ? { bytes, calls } : null;
}

/** Resident set size of a process in bytes (VmRSS); null if it is gone. */
export function rssBytes(pid: number): number | null {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Resident anonymous and shared-memory pages, and resident file pages, in bytes (/proc status); null if gone. */
export function residentParts(pid: number): { anon: number; file: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number | null => {
      const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
      return match ? Number(match[1]) * 1024 : null;
    };
    const anon = kb('RssAnon');
    const shmem = kb('RssShmem');
    const file = kb('RssFile');
    return anon === null || shmem === null || file === null ? null : { anon: anon + shmem, file };
  } catch {
    return null;
  }
}

/** A process and every process below it (a server's workers), from /proc; just the pid when unreadable. */
export function withDescendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        const list = children.get(parent) ?? [];
        list.push(Number(entry));
        children.set(parent, list);
      } catch {
        // Gone meanwhile.
      }
    }
  } catch {
    return [pid];
  }
  const all: number[] = [];
  const visit = (p: number): void => {
    all.push(p);
    for (const child of children.get(p) ?? []) visit(child);
  };
  visit(pid);
  return all;
}

/** Sum over processes; null as soon as one is missing. */
export function sumOver(pids: readonly number[], read: (pid: number) => number | null): number | null {
  let total = 0;
  for (const pid of pids) {
    const value = read(pid);
    if (value === null) return null;
    total += value;
  }
  return total;
}

/** Hard limit on open files for processes this one starts (`ulimit -Hn`). */
export function hardFdLimit(): number {
  try {
    const out = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
    return out === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(out);
  } catch {
    return 1024;
  }
}

export interface MachineInfo {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly kernel: string;
  readonly memTotalMB: number;
  readonly fdHardLimit: number;
  readonly loadAverageAtStart: string;
}

export function machineInfo(): MachineInfo {
  const read = (path: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return '';
    }
  };
  const model = /^model name\s*:\s*(.+)$/m.exec(read('/proc/cpuinfo'))?.[1] ?? cpus()[0]?.model ?? 'unknown';
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(read('/proc/meminfo'))?.[1] ?? 0);
  let nproc = cpus().length;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || nproc;
  } catch {
    // keep os.cpus()
  }
  return {
    nproc,
    cpuModel: model.trim(),
    node: process.version,
    kernel: read('/proc/sys/kernel/osrelease').trim(),
    memTotalMB: Math.round(memKb / 1024),
    fdHardLimit: hardFdLimit(),
    loadAverageAtStart: read('/proc/loadavg').split(' ').slice(0, 3).join(' '),
  };
}

/**
 * TcpExt ListenOverflows of this network namespace (every listener, every process): SYNs
 * dropped because an accept queue was full; each costs its client a 1 s retransmit.
 */
export function listenOverflows(): number | null {
  let text: string;
  try {
    text = readFileSync('/proc/net/netstat', 'utf8');
  } catch {
    return null;
  }
  const lines = text.split('\n').filter((l) => l.startsWith('TcpExt:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const counts = lines[1]?.split(/\s+/) ?? [];
  const index = names.indexOf('ListenOverflows');
  const value = index >= 0 ? Number(counts[index]) : Number.NaN;
  return Number.isFinite(value) ? value : null;
}
