import { describe, expect, it } from 'vitest'
import { AnnouncementNetwork } from '../../src/consensus/sim/announcement-network.ts'
import { createRng } from '../../src/consensus/rng.ts'

const MEMBERS = ['a', 'b', 'c', 'd']

describe('the in-memory announcement topic', () => {
  it('delivers a publication to every other member after its delay, earliest first', () => {
    const network = new AnnouncementNetwork<string>({ members: MEMBERS, rng: createRng(1), delayMs: { min: 10, max: 100 } })
    network.publish('a', 'first', 0)
    network.publish('b', 'second', 5)
    expect(network.deliverDue(9)).toEqual([])
    const delivered = network.deliverDue(105)
    expect(delivered).toHaveLength(6)
    expect(delivered.filter((item) => item.announcement === 'first').map((item) => item.to).sort()).toEqual(['b', 'c', 'd'])
    expect(delivered.filter((item) => item.announcement === 'second').map((item) => item.to).sort()).toEqual(['a', 'c', 'd'])
    expect(network.inFlight()).toBe(0)
    expect(network.counters()).toMatchObject({ copies: 6, delivered: 6, lost: 0 })
  })

  it('loses about the share of copies it is told to, the same ones for the same seed', () => {
    const run = (seed: number): string[] => {
      const network = new AnnouncementNetwork<number>({ members: MEMBERS, rng: createRng(seed), loss: 0.2 })
      for (let index = 0; index < 1000; index++) network.publish(MEMBERS[index % 4] as string, index, index)
      const delivered = network.deliverDue(1000).map((item) => `${item.announcement}>${item.to}`)
      const counters = network.counters()
      expect(counters.lost + counters.delivered).toBe(3000)
      expect(counters.lost / 3000).toBeGreaterThan(0.17)
      expect(counters.lost / 3000).toBeLessThan(0.23)
      return delivered
    }
    expect(run(5)).toEqual(run(5))
    expect(run(5)).not.toEqual(run(6))
  })

  it('cuts an isolated member off both ways until it rejoins', () => {
    const network = new AnnouncementNetwork<string>({ members: MEMBERS, rng: createRng(2) })
    network.isolate('c')
    network.publish('c', 'from c', 0)
    network.publish('a', 'to all', 0)
    expect(network.deliverDue(0).map((item) => item.to).sort()).toEqual(['b', 'd'])
    network.rejoin('c')
    network.publish('a', 'again', 1)
    expect(network.deliverDue(1).map((item) => item.to).sort()).toEqual(['b', 'c', 'd'])
    expect(network.counters().published.get('c')).toBe(1)
    expect(() => network.publish('stranger', 'x', 2)).toThrow(RangeError)
    expect(() => new AnnouncementNetwork({ members: MEMBERS, rng: createRng(1), loss: 2 })).toThrow(RangeError)
  })
})
