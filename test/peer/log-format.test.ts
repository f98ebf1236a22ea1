import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { chooseLogFormat, prettyDestination, prettyLine } from '../../src/peer/cli/log-format.ts'

describe('the log as readable lines', () => {
  it('time of day, level, message and the fields, from a pino record', () => {
    const line = prettyLine('{"level":40,"time":"2026-12-01T13:20:05.123Z","region":"alpha","event":"neighbour.unreachable","missing":["beta","gamma"],"reason":"no route to host","msg":"neighbours unreachable"}')
    expect(line).toBe('13:20:05.123 WARN  neighbours unreachable  region=alpha event=neighbour.unreachable missing=["beta","gamma"] reason="no route to host"')
    // a line that is no JSON object is kept as it is; a long value is cut
    expect(prettyLine('not json')).toBe('not json')
    expect(prettyLine(JSON.stringify({ level: 30, msg: 'm', big: 'x'.repeat(500) })).length).toBeLessThan(230)
    expect(prettyLine('{"level":50,"msg":"boom"}', { colour: true })).toBe('\u001b[31mERROR\u001b[0m boom')
  })

  it('pino writes through it, one line per record', () => {
    let written = ''
    const logger = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime }, prettyDestination({ write: (text: string) => { written += text } }))
    logger.info({ job: 'j-1', rounds: 12 }, 'model stored')
    logger.warn('careful')
    const lines = written.trim().split('\n')
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^\d{2}:\d{2}:\d{2}\.\d{3} INFO  model stored {2}job=j-1 rounds=12$/)
    expect(lines[1]).toMatch(/^\d{2}:\d{2}:\d{2}\.\d{3} WARN  careful$/)
  })

  it('pretty on a terminal, JSON when piped, unless asked; anything else refused', () => {
    expect(chooseLogFormat(undefined, true)).toBe('pretty')
    expect(chooseLogFormat(undefined, false)).toBe('json')
    expect(chooseLogFormat('json', true)).toBe('json')
    expect(chooseLogFormat('pretty', false)).toBe('pretty')
    expect(() => chooseLogFormat('xml', false)).toThrow(/--log-format must be json or pretty/)
  })
})
