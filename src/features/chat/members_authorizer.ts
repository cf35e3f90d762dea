import type { ChannelAction, ChannelAuthorizer } from '../../core/access.js';
import type { ResolvedChannel } from '../../core/channel.js';
import { RelaisError } from '../../core/errors.js';
import type { Store } from '../../stores/store.js';
import type { MemberCache } from './member_cache.js';
import { dmMembers } from './names.js';

/**
 * The `members` access rule: a room's channel is open to its members only, as the store
 * records them (through a MemberCache); a conversation (`dm:<a>,<b>`) to its two users, read
 * from its name, so that either may open it before its first message. Never allows on doubt:
 * a store that does not answer refuses with STORE_UNAVAILABLE (temporary).
 */
export class MembersAuthorizer implements ChannelAuthorizer {
  constructor(
    private readonly store: Store,
    private readonly cache: MemberCache,
    private readonly dmNamespace: string,
  ) {}

  async authorize(action: ChannelAction, user: string, channel: ResolvedChannel): Promise<void> {
    const allowed = channel.namespace === this.dmNamespace ? this.inConversation(user, channel) : await this.isMember(channel.name, user);
    if (!allowed) {
      throw new RelaisError('FORBIDDEN', `cannot ${action} to "${channel.name}": only members of the room may`);
    }
  }

  /** Whether `user` is a member of `room`, from the cache or the store. */
  async isMember(room: string, user: string): Promise<boolean> {
    if (user === '') return false;
    const cached = this.cache.get(room, user);
    if (cached !== undefined) return cached;
    const generation = this.cache.generation;
    let member: boolean;
    try {
      member = await this.store.isMember(room, user);
    } catch (err) {
      if (err instanceof RelaisError) throw err;
      throw new RelaisError('STORE_UNAVAILABLE', 'membership not checked, retry', { cause: err });
    }
    this.cache.set(room, user, member, generation);
    return member;
  }

  private inConversation(user: string, channel: ResolvedChannel): boolean {
    const members = dmMembers(channel.rest);
    return members !== undefined && user !== '' && (members[0] === user || members[1] === user);
  }
}
