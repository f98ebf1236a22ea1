import type { ConnectionGater, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * A connection gater that admits only the federation's members, in both directions. Inbound peers are
 * known only after the Noise handshake, so that is where they are refused; outbound dials to anyone else
 * are refused before a socket is opened. Addresses of non-members are not even stored.
 */
export interface MembershipGaterInit {
  /** the member peer ids (this node's own id may be among them) */
  members: Iterable<string>
  /** called with every refusal, for logging and tests */
  onDenied?: (peerId: string, direction: 'inbound' | 'outbound') => void
}

export function createMembershipGater (init: MembershipGaterInit): ConnectionGater {
  const members = new Set(init.members)
  const deny = (peerId: PeerId, direction: 'inbound' | 'outbound'): boolean => {
    const id = peerId.toString()
    if (members.has(id)) return false
    init.onDenied?.(id, direction)
    return true
  }
  return {
    denyDialPeer: (peerId) => deny(peerId, 'outbound'),
    denyDialMultiaddr: (address: Multiaddr) => {
      const named = address.getComponents().find((component) => component.name === 'p2p')?.value
      return named !== undefined && !members.has(named)
    },
    denyOutboundEncryptedConnection: (peerId) => deny(peerId, 'outbound'),
    denyInboundEncryptedConnection: (peerId) => deny(peerId, 'inbound'),
    denyInboundUpgradedConnection: (peerId) => deny(peerId, 'inbound'),
    denyOutboundUpgradedConnection: (peerId) => deny(peerId, 'outbound'),
    filterMultiaddrForPeer: (peerId) => members.has(peerId.toString())
  }
}
