import { escapeHtml } from '../audit/html.ts'
import { CHECK_MEANINGS, describeJob } from '../audit/summary.ts'
import type { AuditFinding } from '../audit/verify.ts'
import type { AuditView, PeerChainView } from './audit-view.ts'

/**
 * The auditor's page (`epimesh audit serve`): rendered on the server once, from the view; a small
 * inline script moves the round slider and fetches one round at a time from /round.json, and writes
 * what it gets with textContent only. Every string from the logs is escaped here (escapeHtml also
 * strips control characters and cuts); the page's own policy lets run only its one script, fetch only
 * from its own server, and load nothing else.
 */

const MAX_FAILURES_SHOWN = 2000

function where (finding: AuditFinding): string {
  return `${finding.file ?? ''}${finding.line === undefined ? '' : `:${finding.line}`}`
}

function failureRow (finding: AuditFinding): string {
  const phase = finding.phase === undefined ? '' : `${finding.phase} round ${finding.round ?? ''}`
  const cause = finding.rootCause === true ? 'root cause' : finding.followsFrom === undefined ? '' : `follows from ${escapeHtml(finding.followsFrom)}`
  return `<tr${finding.rootCause === true ? ' class="cause"' : ''}><td>${cause}</td><td class="where">${escapeHtml(where(finding))}</td><td>${escapeHtml(finding.peer ?? '')}</td><td>${finding.seq ?? ''}</td><td>${escapeHtml(phase)}</td><td class="field">${escapeHtml(finding.field ?? '')}</td><td>${escapeHtml(finding.check ?? '')}</td><td>${escapeHtml(finding.message)}</td></tr>`
}

function failuresSection (view: AuditView): string {
  const { failures } = view.report
  if (failures.length === 0) return ''
  // root causes first, then failures that stand on their own, then those that follow from a cause
  const causes = failures.filter((finding) => finding.rootCause === true)
  const alone = failures.filter((finding) => finding.rootCause !== true && finding.followsFrom === undefined)
  const following = failures.filter((finding) => finding.rootCause !== true && finding.followsFrom !== undefined)
  const ordered = [...causes, ...alone, ...following]
  return `<section id="failures">
<h2>Failures (${failures.length}${causes.length > 0 ? `; ${causes.length} root cause${causes.length === 1 ? '' : 's'} first, ${following.length} following from ${causes.length === 1 ? 'it' : 'them'}` : ''})</h2>
<table>
<tr><th></th><th>file:line</th><th>peer</th><th>entry</th><th>phase round</th><th>field</th><th>check</th><th>what</th></tr>
${ordered.slice(0, MAX_FAILURES_SHOWN).map(failureRow).join('\n')}
</table>${ordered.length > MAX_FAILURES_SHOWN ? `<p>… and ${ordered.length - MAX_FAILURES_SHOWN} more (audit verify --json lists them all).</p>` : ''}
</section>`
}

function hashCell (hash: string | null): string {
  if (hash === null) return '<td>none</td>'
  return `<td class="hash" title="${escapeHtml(hash)}">${escapeHtml(hash.slice(0, 16))}…</td>`
}

function chainRows (peer: PeerChainView, index: number): string {
  const last = peer.own.at(-1)
  const signers = last === undefined ? 'no checkpoint of its own in this file' : last.countersignedBy.length === 0 ? 'nobody' : last.countersignedBy.join(', ')
  const summary = `<tr class="${peer.intact ? '' : 'broken'}"><td>${escapeHtml(peer.region)}</td><td>${peer.intact ? 'holds' : 'BROKEN'}</td><td>${peer.entries}</td>${hashCell(peer.headHash)}<td>${peer.own.length + peer.leftOut}</td><td>${escapeHtml(signers)}</td><td>${peer.witnessed}</td><td class="file">${escapeHtml(peer.file)}</td></tr>`
  if (peer.own.length === 0) return summary
  const rows = peer.own.map((checkpoint) => `<tr${checkpoint.failed ? ' class="broken"' : ''}><td>${checkpoint.line}</td><td>${checkpoint.length ?? '?'}</td>${hashCell(checkpoint.hash)}<td>${escapeHtml(checkpoint.countersignedBy.join(', ') || 'nobody')}</td><td>${checkpoint.failed ? 'FAILED (see failures)' : ''}</td></tr>`).join('\n')
  return `${summary}
<tr class="detail"><td colspan="8"><details id="checkpoints-${index}"><summary>the ${peer.own.length} head(s) ${escapeHtml(peer.region)} published, as this file holds them${peer.leftOut > 0 ? ` (and ${peer.leftOut} more)` : ''}</summary>
<table><tr><th>line</th><th>entries</th><th>head hash</th><th>countersigned by</th><th></th></tr>
${rows}
</table></details></td></tr>`
}

const SCRIPT = `(() => {
  const slider = document.getElementById('round')
  if (slider === null) return
  const label = document.getElementById('round-label')
  const around = document.getElementById('round-around')
  const peers = document.getElementById('round-peers')
  let wanted = -1
  let timer
  const el = (tag, text, className) => {
    const node = document.createElement(tag)
    if (text !== undefined) node.textContent = String(text)
    if (className !== undefined) node.className = className
    return node
  }
  const residual = (value) => value === null ? 'not defined yet' : Number(value).toExponential(3)
  const vector = (values, length) => '[' + values.map((value) => Number(value).toPrecision(6)).join(', ') + (length > values.length ? ', … (' + length + ' in all)' : '') + ']'
  const row = (cells, header) => {
    const tr = el('tr')
    for (const cell of cells) tr.append(el(header ? 'th' : 'td', cell))
    return tr
  }
  function render (data) {
    label.textContent = data.phase + ' round ' + data.round + ' (position ' + (data.index + 1) + ' of ' + data.total + ')'
    const table = el('table')
    table.append(row(['phase round'].concat(data.regions.map((region) => region + ': job round')), true))
    for (const line of data.around) {
      const tr = row([(line.round === data.round ? '==> ' : '') + line.round].concat(line.jobRounds.map((value) => value === null ? '-' : value)))
      if (line.round === data.round) tr.className = 'current'
      table.append(tr)
    }
    around.replaceChildren(table)
    const cards = []
    for (const peer of data.peers) {
      const card = el('section', undefined, 'peer-round')
      card.dataset.region = peer.region
      const entry = peer.entry
      card.append(el('h3', entry === null
        ? peer.region + ': no entry for ' + data.phase + ' round ' + data.round + ' in its log'
        : peer.region + ': ' + data.phase + ' round ' + data.round + ' (its job round ' + entry.jobRound + ', entry ' + entry.seq + ')'))
      if (!peer.intact) card.append(el('p', 'This log does not hold (see the failures): what it says is not vouched for.', 'warn'))
      if (entry !== null) {
        if (entry.deadline) card.append(el('p', 'The deadline passed before every neighbour was heard.', 'warn'))
        const messages = el('table', undefined, 'messages')
        messages.append(row(['', 'kind', 'round', 'with', 'digest', "values, or whether the sender's log shows it sent"], true))
        for (const sent of entry.sent) messages.append(row(['sent', sent.kind, sent.round, sent.to === null ? 'every neighbour' : sent.to + ' (private: digest only)', sent.digest.slice(0, 16) + '…', sent.values === null ? '' : vector(sent.values, sent.length)]))
        for (const received of entry.received) {
          const tr = row(['received', received.kind, received.round, received.from, received.digest.slice(0, 16) + '…', received.confirmed === null ? "sender's log not given or broken" : received.confirmed ? 'sent, same digest' : "NOT in the sender's log"])
          if (received.confirmed === false) tr.className = 'broken'
          messages.append(tr)
        }
        card.append(messages)
        if (entry.leftOut > 0) card.append(el('p', '… and ' + entry.leftOut + ' more messages (audit show --json lists them)', 'small'))
        const admm = entry.admm
        if (admm !== null) {
          const list = el('ul', undefined, 'admm')
          list.append(el('li', 'heard ' + (admm.heard.join(', ') || 'nobody') + '; skipped ' + (admm.skipped.join(', ') || 'none') + (admm.finished.length > 0 ? '; finished ' + admm.finished.join(', ') : '') + (admm.inactive.length > 0 ? '; dropped ' + admm.inactive.join(', ') : '')))
          list.append(el('li', 'primal residual ' + residual(admm.primalResidual) + ', dual residual ' + residual(admm.dualResidual) + ', stop counter ' + admm.stopCounter + ', penalty ' + (admm.penalty === null ? 'n/a' : Number(admm.penalty).toPrecision(6))))
          list.append(el('li', 'x sent ' + vector(admm.x, admm.length)))
          list.append(el('li', 'x next ' + vector(admm.next, admm.length)))
          card.append(list)
        }
        if (entry.late !== null) card.append(el('p', 'late: ' + entry.late.sent + ' sent and ' + entry.late.received + ' received for earlier rounds', 'small'))
      }
      cards.push(card)
    }
    peers.replaceChildren(...cards)
    peers.dataset.index = String(data.index)
  }
  async function show (index) {
    wanted = index
    try {
      const response = await fetch('/round.json?i=' + index, { credentials: 'same-origin' })
      if (!response.ok) throw new Error('the server answered ' + response.status)
      const data = await response.json()
      if (data.index === wanted) render(data)
    } catch (error) {
      label.textContent = 'cannot load the round: ' + error.message
    }
  }
  slider.addEventListener('input', () => {
    clearTimeout(timer)
    const index = Number(slider.value)
    timer = setTimeout(() => { void show(index) }, 60)
  })
  void show(Number(slider.value))
})()`

const STYLE = `
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 1.5rem auto; padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: .3rem; } h2 { font-size: 1.15rem; margin-top: 1.8rem; } h3 { font-size: 1rem; margin: .8rem 0 .3rem; }
.verdict { font-weight: bold; padding: .5rem .8rem; border-radius: 4px; display: inline-block; font-size: 1.1rem; }
.ok { background: #e3f4e3; color: #185c18; } .bad { background: #fbe3e3; color: #8a1414; }
table { border-collapse: collapse; font-size: .85rem; } td, th { border-bottom: 1px solid #ddd; padding: .2rem .45rem; text-align: left; vertical-align: top; }
tr.cause td { background: #fff4d6; font-weight: bold; } tr.broken td { background: #fbe3e3; } tr.current td { font-weight: bold; background: #eef3fb; }
.hash, .file { font-family: ui-monospace, monospace; font-size: .8rem; } .small { color: #666; font-size: .85rem; } .warn { color: #8a1414; }
.slider { display: flex; gap: 1rem; align-items: center; } .slider input { flex: 1; }
.peer-round { border-left: 3px solid #c8d3e6; padding-left: .7rem; margin: .6rem 0; } .admm { font-size: .85rem; margin: .3rem 0; }
figure { margin: 0; } figure svg { max-width: 100%; height: auto; }
`

/** The page, once for the whole run; `nonce` lets its one inline script run and nothing else. */
export function auditPageHtml (view: AuditView, options: { nonce: string, generated: string }): string {
  const { report } = view
  const causes = report.failures.filter((finding) => finding.rootCause === true)
  const verdict = report.ok
    ? 'VERIFIED: every check holds'
    : `NOT VERIFIED: ${report.failures.length} failure${report.failures.length === 1 ? '' : 's'}${causes.length > 0 ? `, root cause at ${where(causes[0] as AuditFinding)}` : ''}`
  const svg = 'svg' in view.plot ? view.plot.svg.replace(/^<\?xml[^>]*>\s*/, '') : ''
  const last = Math.max(0, view.positions.length - 1)
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'nonce-${options.nonce}'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>epimesh audit of job ${escapeHtml(report.job)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Audit of job ${escapeHtml(report.job)}</h1>
<p id="verdict" class="verdict ${report.ok ? 'ok' : 'bad'}" data-ok="${report.ok ? 'true' : 'false'}">${escapeHtml(verdict)}</p>
<p class="small">${report.files.length} log file(s), ${report.entries} entries, checked offline from the files alone (no record, no network) in ${report.seconds.toFixed(2)} s.</p>
${failuresSection(view)}
<h2>What was run</h2>
<ul id="summary">
${describeJob(report.summary, report.job).map((line) => `<li>${escapeHtml(line)}</li>`).join('\n')}
</ul>
<h2>What was checked</h2>
<table id="checks">
<tr><th></th><th>what it establishes</th><th>check</th><th>checked</th><th>failed</th></tr>
${report.checks.map((check) => `<tr${check.failed === 0 ? '' : ' class="broken"'}><td>${check.failed === 0 ? 'ok' : 'FAIL'}</td><td>${escapeHtml(CHECK_MEANINGS[check.name] ?? check.name)}</td><td>${escapeHtml(check.name)}</td><td>${check.checked}</td><td>${check.failed}</td></tr>`).join('\n')}
</table>
<p class="small">Not checkable from logs: whether each region's own records are right. The logs show that the computation on them was done as stated, not what the records hold.</p>
<h2>Each peer's chain and checkpoints</h2>
<table id="chains">
<tr><th>region</th><th>chain</th><th>entries</th><th>head hash</th><th>heads published</th><th>last head countersigned by</th><th>neighbours' heads it countersigned</th><th>file</th></tr>
${view.peers.map(chainRows).join('\n')}
</table>
<h2>Round by round</h2>
${view.positions.length === 0
  ? '<p>These logs hold no round entries.</p>'
  : `<p class="small">Every peer at the same phase and phase round, as <code>audit show</code> aligns them: ${view.phases.map((phase) => `${escapeHtml(phase.phase)} (${phase.count} rounds)`).join(', then ')}.</p>
<div class="slider"><input type="range" id="round" min="0" max="${last}" value="0" step="1" aria-label="round"><output id="round-label" for="round">…</output></div>
<div id="round-around"></div>
<div id="round-peers"></div>`}
<h2>Residuals</h2>
${svg === '' ? `<p id="plot-note">${escapeHtml('note' in view.plot ? view.plot.note : 'no plot')}</p>` : `<figure id="plot">${svg}</figure>`}
${report.notes.length === 0 ? '' : `<h2>Notes</h2>\n<ul>${report.notes.map((note) => `<li>${escapeHtml(note)}</li>`).join('\n')}</ul>`}
<p class="small">epimesh audit serve, ${escapeHtml(options.generated)}.</p>
<script nonce="${options.nonce}">${SCRIPT}</script>
</body>
</html>
`
}
