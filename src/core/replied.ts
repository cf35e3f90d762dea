/** Returned by a command handler that wrote its reply itself (subscribe, send). */
export const REPLIED = Symbol('replied');
