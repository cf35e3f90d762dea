import type { EncodedMessage, ProtocolCodec } from '../protocol/codec.js';
import { fossilPatch } from './delta.js';
import type { Publication } from './publication.js';

/**
 * A publication push encoded once per node for one protocol and one kind of transport,
 * written to every subscriber of that kind: `message` is the protocol message; a transport
 * may attach more (the WebSocket transport attaches the complete frame).
 */
export interface PreparedPush {
  readonly message: EncodedMessage;
}

/**
 * The three ways a publication goes to a client, as stable functions (the hub's FrameCache
 * encodes once per publication per function): as is; whole under delta compression (a
 * subscriber's first publication, or after a gap in its chain); and as a fossil delta
 * against the channel's previous publication, for a subscriber that was sent that one.
 */
export interface PublicationEncoders {
  readonly plain: (channel: string, pub: Publication) => PreparedPush;
  readonly full: (channel: string, pub: Publication) => PreparedPush;
  readonly delta: (channel: string, pub: Publication, previous: Publication | undefined) => PreparedPush;
}

/** The encoders of one protocol for one kind of transport; build them once, at module level. */
export function publicationEncoders(codec: ProtocolCodec, prepare: (message: EncodedMessage) => PreparedPush): PublicationEncoders {
  const full = (channel: string, pub: Publication): PreparedPush => prepare(codec.encodePush({ type: 'pub', channel, pub, form: 'full' }));
  return {
    plain: (channel, pub) => prepare(codec.encodePush({ type: 'pub', channel, pub, form: 'plain' })),
    full,
    delta: (channel, pub, previous) => {
      const patch = previous && fossilPatch(previous, pub);
      return patch ? prepare(codec.encodePush({ type: 'pub', channel, pub, form: 'delta', patch })) : full(channel, pub);
    },
  };
}
