/**
 * The narrow contract between the pure consensus machines and whatever carries their messages: the
 * in-memory network of the simulator and tests, or libp2p in a real peer. Machines never call a
 * transport; they return an outbox that the driver delivers.
 */

/** A uniform random number in [0, 1). Injected everywhere; only src/peer may default to a real source. */
export type Rng = () => number

/** Time as an argument, never read from a global. Milliseconds. */
export interface Clock { now(): number }

/**
 * One message between neighbours. `values` carries floating-point vectors (model iterates, residuals);
 * `data` carries opaque bytes that a machine encodes itself (masked fixed-point integers, flooded
 * bundles). A message with `to` is private to that neighbour and must travel point-to-point over the
 * encrypted link; a message without `to` goes to every neighbour.
 */
export interface ConsensusMessage {
  /** job id, at most 64 bytes of UTF-8 */
  job: string
  /** message kind, a short ASCII tag such as 'admm' or 'mask', at most 32 bytes */
  kind: string
  /** round number, an integer in [0, 2^32) */
  round: number
  /** sender id: a peer id in the network, a region name in simulation */
  from: string
  /** recipient id for a private point-to-point message */
  to?: string
  values: Float64Array
  data: Uint8Array
  /**
   * the author's signature over the message (see evidence.ts), added by the sender's transport and
   * checked by the receiver's; machines keep it as proof of what a neighbour said
   */
  signature?: Uint8Array
}

/** What a driver offers to the code above the machines. Implemented in memory and over libp2p. */
export interface Transport {
  readonly self: string
  neighbours(): readonly string[]
  /** point-to-point, private, encrypted */
  send(to: string, message: ConsensusMessage): Promise<void>
  /** to every current neighbour */
  broadcast(message: ConsensusMessage): Promise<void>
  /** returns an unsubscribe function */
  onMessage(handler: (message: ConsensusMessage) => void): () => void
}
