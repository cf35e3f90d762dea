import type { Node } from '../../core/node.js';
import type { Store } from '../../stores/store.js';
import type { ChatMessages } from './messages.js';
import type { MembersAuthorizer } from './members_authorizer.js';
import type { ChatNamespaces } from './names.js';
import type { ReadPositions } from './read_positions.js';
import type { Rooms } from './rooms.js';
import type { UserStatusTracker } from './user_status.js';

/** The parts of the chat that its rpc methods and server API methods call. */
export interface ChatServices {
  readonly node: Node;
  readonly store: Store;
  readonly namespaces: ChatNamespaces;
  readonly rooms: Rooms;
  readonly members: MembersAuthorizer;
  readonly messages: ChatMessages;
  readonly reads: ReadPositions;
  readonly status: UserStatusTracker;
}
