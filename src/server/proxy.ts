import type { Logger } from 'pino';
import { RelaisError } from '../core/errors.js';
import { toJsonText, type JsonText } from '../core/json.js';
import type { CallerContext, RpcHandler } from '../core/rpc.js';

export interface HttpProxyOptions {
  readonly rpcUrl?: string;
  readonly sendUrl?: string;
  readonly timeoutMs: number;
  readonly logger: Logger;
}

/**
 * Forwards client `rpc` and `send` commands to the app backend over HTTP (Centrifugo's
 * proxy shapes): POST `{client, user, method, data}`; an rpc answer is
 * `{"result": {"data": ...}}` or `{"error": {"code", "message"}}`.
 */
export class HttpProxy implements RpcHandler {
  constructor(private readonly options: HttpProxyOptions) {}

  async rpc(caller: CallerContext, method: string, data: JsonText): Promise<JsonText | undefined> {
    if (!this.options.rpcUrl) throw new RelaisError('METHOD_NOT_FOUND', 'no rpc handler configured (proxy.rpc_url)');
    const body = await this.post(this.options.rpcUrl, `{"client":${JSON.stringify(caller.client)},"user":${JSON.stringify(caller.user)},"method":${JSON.stringify(method)},"data":${data}}`);
    if (typeof body !== 'object' || body === null) throw new RelaisError('INTERNAL', 'rpc proxy answered no JSON object');
    const reply = body as { result?: { data?: unknown }; error?: { code?: unknown; message?: unknown } };
    if (reply.error) {
      const message = typeof reply.error.message === 'string' ? reply.error.message : 'rpc failed';
      throw new RelaisError(reply.error.code === 104 ? 'METHOD_NOT_FOUND' : 'BAD_REQUEST', message);
    }
    return reply.result?.data === undefined ? undefined : toJsonText(reply.result.data);
  }

  async send(caller: CallerContext, data: JsonText): Promise<void> {
    if (!this.options.sendUrl) return;
    await this.post(this.options.sendUrl, `{"client":${JSON.stringify(caller.client)},"user":${JSON.stringify(caller.user)},"data":${data}}`);
  }

  private async post(url: string, body: string): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (err) {
      throw new RelaisError('INTERNAL', 'proxy unreachable', { cause: err });
    }
    if (!response.ok) throw new RelaisError('INTERNAL', `proxy answered HTTP ${response.status}`);
    try {
      return await response.json();
    } catch (err) {
      throw new RelaisError('INTERNAL', 'proxy answered invalid JSON', { cause: err });
    }
  }
}
