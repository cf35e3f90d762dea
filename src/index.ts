/**
 * `relais`: run a Relais server from code. Every export is listed here by name; what is not
 * listed is internal and may change. The client helpers are `relais/client`.
 */

// Starting a server.
export { startRelais, type StartRelaisOptions } from './server/relais.js';
export type { RunningServer } from './server/start.js';
export { VERSION } from './version.js';

// Configuration: the input a server is started with, and what it becomes once validated.
export { ConfigError } from './config/load.js';
export type { AccessRule, NamespaceOptions, NamespaceOptionsInput, RelaisConfig, RelaisConfigInput } from './config/schema.js';

// Errors.
export { RelaisError, type RelaisErrorCode } from './core/errors.js';

// The message bus seams and the values they carry.
export type {
  Broker,
  BrokerEventHandler,
  BrokerLogger,
  ControlMessage,
  HistoryQuery,
  HistoryResult,
  NodeInfo,
  PresenceManager,
  PresenceStats,
  PublishOptions,
} from './brokers/broker.js';
export type { ClientInfo, Publication, StreamPosition } from './core/publication.js';
export { parseJsonText, toJsonText, type JsonText } from './core/json.js';
