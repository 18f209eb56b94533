/**
 * Switchyard's public API. Everything a library user may import is exported
 * here, and package.json "exports" names only this module.
 */
export { createBroker } from './server.js'
export type { Broker, BrokerOptions, BrokerStats, ListenerAddress } from './server.js'
export { loadConfig, parseConfig } from './config.js'
export type { Config, ConfigInput, ListenerConfig, ParseOptions } from './config.js'
export type { PublishInput } from './broker/aedes.js'
export { generateDevCertificates } from './listeners/certs.js'
export { SwitchyardError, ConfigError } from './errors.js'
export { VERSION } from './version.js'
export type { ClientInfo } from './broker/aedes.js'
export type { Health } from './ops/admin.js'
export type { RuleStateView, RuleStatus } from './rules/state.js'
export type { ErrorCode } from './errors.js'
