/**
 * Switchyard's public API. Everything a library user may import is exported
 * here, and package.json "exports" names only this module.
 */
export { createBroker } from './server.js'
export type { Broker, BrokerOptions, BrokerRules, BrokerStats, ClusterView, ListenerAddress } from './server.js'
export { loadConfig, parseConfig } from './config.js'
export type { Config, ConfigInput, ListenerConfig, ParseOptions } from './config.js'
export type { Message, MessageProperties, Origin, PropertiesInput, PublishInput, QoS, UserProperties } from './message.js'
export type { MessageHandler } from './bus.js'
export type { BrokerEvents, BrokerEventName, ClientEvent } from './events.js'
export type { AuthenticateRequest, HookClient, Hooks } from './hooks.js'
export { generateDevCertificates } from './listeners/certs.js'
export { SwitchyardError, ConfigError } from './errors.js'
export { VERSION } from './version.js'
export type { ClientInfo } from './broker/aedes.js'
export type { ClusterClientInfo } from './cluster/clients.js'
export type { NodeCounters } from './cluster/node-counters.js'
export type { NodeInfo } from './cluster/membership.js'
export type { Health } from './ops/admin.js'
export type { RuleStateView, RuleStatus } from './rules/state.js'
export type { ErrorCode } from './errors.js'
