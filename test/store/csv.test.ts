import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ByteScreen, readCsv, type ByteProblem } from '../../src/store/csv.ts'

/** The screen's first problem when `bytes` arrive in chunks of `size`. */
function screen (bytes: Uint8Array, size = bytes.length, maxLineBytes?: number): ByteProblem | null {
  const check = new ByteScreen(maxLineBytes)
  for (let at = 0; at < bytes.length; at += size) {
    const problem = check.push(bytes.subarray(at, at + size))
    if (problem !== null) return problem
  }
  return check.end()
}

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
const join8 = (...parts: Array<string | number[]>): Uint8Array => Uint8Array.from(parts.flatMap((part) => typeof part === 'string' ? [...utf8(part)] : part))

describe('the byte screen', () => {
  it('passes clean UTF-8 in LF or CRLF lines, whatever the chunking, and a byte-order mark at the start', () => {
    const clean = join8([0xef, 0xbb, 0xbf], 'id,地区,note\n1,上海,naïve 🙂\n2,"Zürich, CH",\t\n')
    const crlf = utf8('id,地区\r\n1,上海\r\n')
    for (const size of [1, 2, 3, 5, 4096]) {
      expect(screen(clean, size)).toBeNull()
      expect(screen(crlf, size)).toBeNull()
    }
  })

  it('refuses invalid UTF-8 with its line, however the bytes are cut into chunks', () => {
    const cases: Array<[Uint8Array, number]> = [
      [join8('a,b\n1,', [0xff], '\n'), 2], // never valid
      [join8('a,b\n1,2\n3,', [0xc3, 0x28], '\n'), 3], // a lead byte without its continuation
      [join8('a,b\n', [0xc0, 0xaf], '\n'), 2], // an overlong "/"
      [join8('a,b\n', [0xe0, 0x80, 0xaf], '\n'), 2], // an overlong three-byte form
      [join8('a,b\n', [0xed, 0xa0, 0x80], '\n'), 2], // a UTF-16 surrogate
      [join8('a,b\n', [0xf4, 0x90, 0x80, 0x80], '\n'), 2], // above U+10FFFF
      [join8('a,b\n1,', [0x80], '\n'), 2], // a continuation byte alone
      [join8('a,b\n1,', [0xe4, 0xb8]), 2] // the file ends inside a character
    ]
    for (const [bytes, line] of cases) {
      for (const size of [1, 3, 4096]) expect(screen(bytes, size)).toMatchObject({ kind: 'INVALID_UTF8', line })
    }
  })

  it('refuses NUL and other control bytes, a byte-order mark after the start, and names the line', () => {
    expect(screen(join8('a,b\n1,x', [0x00], 'y\n'))).toMatchObject({ kind: 'CONTROL_CHARACTER', line: 2 })
    expect(screen(join8('a,b\n1,2\n3,', [0x1b], '[31m\n'))).toMatchObject({ kind: 'CONTROL_CHARACTER', line: 3 })
    expect(screen(join8('a,b\n1,', [0x7f], '\n'))).toMatchObject({ kind: 'CONTROL_CHARACTER', line: 2 })
    expect(screen(join8('a,b\n1,2\n', [0xef, 0xbb, 0xbf], '3,4\n'), 1)).toMatchObject({ kind: 'BOM_INSIDE', line: 3 })
    expect(screen(join8([0xef, 0xbb, 0xbf], [0xef, 0xbb, 0xbf], 'a\n'))).toMatchObject({ kind: 'BOM_INSIDE', line: 1 })
  })

  it('refuses mixed line endings and a bare carriage return, even split across chunks', () => {
    for (const size of [1, 4096]) {
      expect(screen(utf8('a,b\r\n1,2\n3,4\r\n'), size)).toMatchObject({ kind: 'MIXED_LINE_ENDINGS', line: 2 })
      expect(screen(utf8('a,b\n1,2\r\n'), size)).toMatchObject({ kind: 'MIXED_LINE_ENDINGS', line: 2 })
      expect(screen(utf8('a,b\r1,2\r'), size)).toMatchObject({ kind: 'BARE_CR', line: 1 })
      expect(screen(utf8('a,b\n1,2\r'), size)).toMatchObject({ kind: 'BARE_CR', line: 2 })
    }
  })

  it('refuses a line longer than its bound', () => {
    expect(screen(utf8(`a\n${'x'.repeat(100)}\n`), 7, 100)).toBeNull()
    expect(screen(utf8(`a\n${'x'.repeat(101)}\n`), 7, 100)).toMatchObject({ kind: 'LINE_TOO_LONG', line: 2 })
  })
})

describe('reading a CSV file', () => {
  let dir = ''
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'epimesh-csv-')) })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })
  const records = async (text: string | Uint8Array): Promise<Array<{ fields: string[], line: number }>> => {
    const file = join(dir, 'file.csv')
    await writeFile(file, text)
    const all = []
    for await (const record of readCsv(file)) all.push(record)
    return all
  }

  it('gives each record with the line it starts on', async () => {
    expect(await records('a,b\n\n1,"two\nlines"\n3,4\n')).toEqual([
      { fields: ['a', 'b'], line: 1 },
      { fields: ['1', 'two\nlines'], line: 3 },
      { fields: ['3', '4'], line: 5 }
    ])
  })

  it('turns CSV syntax errors into IMPORT_CSV_SYNTAX at their line', async () => {
    await expect(records('a,b\n1,2\n3,"4\n5,6\n')).rejects.toMatchObject({ code: 'IMPORT_CSV_SYNTAX', problems: [{ kind: 'QUOTE_NOT_CLOSED', line: 3 }] })
    await expect(records('a,b\n1,2"x"\n')).rejects.toMatchObject({ code: 'IMPORT_CSV_SYNTAX', problems: [{ kind: 'QUOTE_MISPLACED', line: 2 }] })
    await expect(records('a,b\n1,"2"x\n')).rejects.toMatchObject({ code: 'IMPORT_CSV_SYNTAX', problems: [{ kind: 'QUOTE_MISPLACED', line: 2 }] })
    await expect(records('a,b\r\n1,2\n')).rejects.toMatchObject({ code: 'IMPORT_CSV_SYNTAX', problems: [{ kind: 'MIXED_LINE_ENDINGS', line: 2 }] })
    await expect(records(join8('a,b\n1,', [0xfe], '\n'))).rejects.toMatchObject({ code: 'IMPORT_ENCODING', problems: [{ kind: 'INVALID_UTF8', line: 2 }] })
  })

  it('refuses a quoted record over 1 MiB, spread over lines each short enough, at the line it starts on', async () => {
    const text = `a,b\n1,2\n3,"${`${'y'.repeat(1023)}\n`.repeat(1100)}"\n`
    await expect(records(text)).rejects.toMatchObject({ code: 'IMPORT_CSV_SYNTAX', problems: [{ kind: 'LINE_TOO_LONG', line: 3 }] })
  })

  it('refuses what is not a regular file', async () => {
    const read = async (path: string): Promise<void> => { for await (const _ of readCsv(path)) { /* nothing */ } }
    await expect(read(join(dir, 'missing.csv'))).rejects.toMatchObject({ code: 'IMPORT_UNREADABLE' })
    await expect(read(dir)).rejects.toMatchObject({ code: 'IMPORT_UNREADABLE' })
    await expect(read('/dev/zero')).rejects.toMatchObject({ code: 'IMPORT_UNREADABLE' })
  })
})
