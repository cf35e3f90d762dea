import { join } from 'node:path';
import { startSocketIo, startWs } from './peers.js';
import { startRelais } from './relais.js';
import type { RunningTarget, TargetName, TargetOptions } from './target.js';

/** Starts a target's server process(es) on free ports of 127.0.0.1 and waits until they listen. */
export function startTarget(name: TargetName, options: TargetOptions): Promise<RunningTarget> {
  switch (name) {
    case 'ws':
      return startWs();
    case 'socketio':
      return startSocketIo(1, options);
    case 'socketio-redis':
      return startSocketIo(2, options);
    case 'relais':
      return startRelais(1, options);
    case 'relais-protobuf':
      return startRelais(1, options, undefined, 'relais-protobuf').then((t) => ({ ...t, endpoint: { ...t.endpoint, protocol: 'relais-protobuf' } }));
    case 'relais-redis':
      return startRelais(2, options);
    case 'relais-workers':
      return startRelais(1, options, undefined, 'relais-workers', ['--workers', String(options.workers ?? 2)]);
    case 'relais-baseline':
      if (options.baselineRoot === undefined) return Promise.reject(new Error('relais-baseline needs --baseline <checkout with a build>'));
      return startRelais(1, options, join(options.baselineRoot, 'dist/src/cli/main.js'), 'relais-baseline');
  }
}
