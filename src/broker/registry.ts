/*
 * What Switchyard knows about each client beyond what Aedes keeps, in one
 * WeakMap: it goes with the Client object, so nothing is left to clean up.
 */
import type { Authenticator, ClientAccess } from '../auth/authenticator.js'
import type { HookClient } from '../hooks.js'
import type { Client } from './internals.js'

export interface ClientMeta {
  /** The peer address, host:port. */
  readonly remote: string
  /** The client certificate's CN, on a useIdentityAsUsername listener. */
  readonly identity: string | undefined
  /**
   * The authenticated username; null when anonymous or not yet authenticated.
   * Aedes 1.2 does not keep it on the client (docs/aedes-gaps.md#no-username-on-the-client).
   */
  username: string | null
  /** Set when Aedes registers the client ('client' event). */
  connectedAt: Date | undefined
  /** The ACL compiled for this client, see ClientRegistry.access(). */
  access: ClientAccess | undefined
  /** Why the connection ended, when not by DISCONNECT: the first error, or a keepalive timeout. */
  disconnectReason: string | undefined
  /** The reason code of the DISCONNECT the client sent (0 in MQTT 3.1.1, which has none); Aedes does not keep it. */
  disconnectPacketReason: number | undefined
}

export class ClientRegistry {
  readonly #meta = new WeakMap<Client, ClientMeta>()
  readonly #auth: Authenticator

  constructor (auth: Authenticator) {
    this.#auth = auth
  }

  /** A new connection, before Aedes has read its CONNECT. */
  add (client: Client, remote: string, identity?: string): ClientMeta {
    const meta: ClientMeta = { remote, identity, username: null, connectedAt: undefined, access: undefined, disconnectReason: undefined, disconnectPacketReason: undefined }
    this.#meta.set(client, meta)
    return meta
  }

  /** The client's record; an empty one for a client that add() never saw. */
  of (client: Client): ClientMeta {
    return this.#meta.get(client) ?? this.add(client, '')
  }

  /** The client's ACL: compiled once per client, and again after an ACL reload. */
  access (client: Client): ClientAccess {
    const meta = this.of(client)
    let access = meta.access
    if (access === undefined || access.generation !== this.#auth.generation) {
      access = meta.access = this.#auth.access({ username: meta.username, clientId: client.id })
    }
    return access
  }

  /** The client as hooks and broker.on() listeners see it. */
  hookClient (client: Client): HookClient {
    const meta = this.of(client)
    return { clientId: client.id, username: meta.username, remote: meta.remote }
  }
}
