import { RelaisError } from './errors.js';
import type { JsonText } from './json.js';
import type { CallerContext, RpcHandler } from './rpc.js';

/** The rpc methods of one feature: `chat.rooms`, `chat.read`, ... under its prefix. */
export interface RpcMethods {
  /** Resolves with the reply data; throws a RelaisError for the client (METHOD_NOT_FOUND for an unknown method). */
  call(caller: CallerContext, method: string, data: JsonText): Promise<JsonText | undefined>;
}

/**
 * Routes client `rpc` by method prefix: `chat.rooms` goes to the methods registered for
 * `chat.`, anything else to the fallback (the app backend, through the RPC proxy). `send`
 * always goes to the fallback. The longest matching prefix wins.
 */
export class RpcRouter implements RpcHandler {
  private readonly routes: [prefix: string, methods: RpcMethods][] = [];

  constructor(private readonly fallback?: RpcHandler) {}

  /**
   * Registers methods under `prefix`: a feature's, ending with a dot (`chat.`), or an rpc
   * namespace of the app backend, ending with a colon (`billing:`, Centrifugo's boundary).
   */
  route(prefix: string, methods: RpcMethods): this {
    if (!prefix.endsWith('.') && !prefix.endsWith(':')) throw new Error(`rpc prefix "${prefix}" must end with "." or ":"`);
    this.routes.push([prefix, methods]);
    this.routes.sort((a, b) => b[0].length - a[0].length);
    return this;
  }

  get empty(): boolean {
    return this.routes.length === 0 && this.fallback === undefined;
  }

  rpc(caller: CallerContext, method: string, data: JsonText): Promise<JsonText | undefined> {
    for (const [prefix, methods] of this.routes) if (method.startsWith(prefix)) return methods.call(caller, method, data);
    if (this.fallback) return this.fallback.rpc(caller, method, data);
    return Promise.reject(new RelaisError('METHOD_NOT_FOUND', `no rpc method "${method}" (and no proxy.rpc_url)`));
  }

  send(caller: CallerContext, data: JsonText): Promise<void> {
    return this.fallback ? this.fallback.send(caller, data) : Promise.resolve();
  }
}
